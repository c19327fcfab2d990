package proxy

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

func TestLoopCount(t *testing.T) {
	for _, c := range []struct {
		env        string
		gomaxprocs int
		want       int
		bad        bool
	}{
		{"", 2, 2, false},
		{"", 0, 1, false},
		{"off", 4, 0, false},
		{"OFF", 4, 0, false},
		{"0", 4, 0, false},
		{" 3 ", 2, 3, false},
		{"1", 8, 1, false},
		{"many", 2, 2, true},
		{"-1", 2, 2, true},
		{"100000", 2, 2, true},
	} {
		n, err := loopCount(c.env, c.gomaxprocs)
		if n != c.want || (err != nil) != c.bad {
			t.Errorf("loopCount(%q, %d) = %d, %v; want %d, error %v", c.env, c.gomaxprocs, n, err, c.want, c.bad)
		}
	}
}

// TestLoopsFollowCPUs: the loops follow GOMAXPROCS, which Go sizes from the
// CPUs the process may run on: a director started on one CPU (taskset)
// runs one loop; GOVS_PROXY_LOOPS overrides it. (The cgroup CPU quota
// acts through GOMAXPROCS too, rounded up and at least 2: docs/proxy.md.)
func TestLoopsFollowCPUs(t *testing.T) {
	if !eventLoopSupported {
		t.Skip("event loops are Linux's")
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("taskset (util-linux) is missing")
		}
		t.Skip("taskset (util-linux) is missing")
	}
	for _, c := range []struct{ env, want string }{
		{"", "loops=1 gomaxprocs=1"},
		{"3", "loops=3 gomaxprocs=1"},
		{"off", "loops=0 gomaxprocs=1"},
	} {
		cmd := exec.Command(taskset, "-c", "0", os.Args[0], "-test.run=^TestHelperPrintLoops$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GOVS_HELPER_PRINT_LOOPS=1", "GOMAXPROCS=", loopsEnv+"="+c.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("on one CPU with %s=%q: %s, want %s", loopsEnv, c.env, out, c.want)
		}
	}
}

// TestHelperPrintLoops is TestLoopsFollowCPUs's child.
func TestHelperPrintLoops(t *testing.T) {
	if os.Getenv("GOVS_HELPER_PRINT_LOOPS") != "1" {
		t.Skip("run by TestLoopsFollowCPUs")
	}
	n, err := configuredLoops()
	fmt.Printf("loops=%d gomaxprocs=%d err=%v\n", n, runtime.GOMAXPROCS(0), err)
}
