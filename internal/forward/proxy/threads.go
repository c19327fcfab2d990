package proxy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// loopsEnv sizes the proxy's event loops (docs/proxy.md#threads): unset,
// one loop per GOMAXPROCS, which Go sizes from the CPUs the process may
// run on (affinity) and its cgroup's CPU quota, and at most the quota's
// CPUs rounded up (Go keeps 2 under a smaller quota); a number, that many loops;
// "off", the goroutine-per-connection data path (tcp.go).
const loopsEnv = "GOVS_PROXY_LOOPS"

// maxLoops bounds GOVS_PROXY_LOOPS: more loops than cores only adds
// wakeups.
const maxLoops = 1024

// loopCount is how many event loops the proxy runs for TCP, 0 for the
// goroutine data path, from the value of GOVS_PROXY_LOOPS and GOMAXPROCS;
// err names the variable when its value is not understood (the default
// then applies).
func loopCount(env string, gomaxprocs int) (int, error) {
	v := strings.TrimSpace(env)
	switch strings.ToLower(v) {
	case "":
		return max(1, gomaxprocs), nil
	case "off", "0", "goroutines":
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxLoops {
		return max(1, gomaxprocs), fmt.Errorf("%s=%q: want off or a number of loops from 1 to %d; using %d (GOMAXPROCS)",
			loopsEnv, env, maxLoops, max(1, gomaxprocs))
	}
	return n, nil
}

// configuredLoops reads the environment; loops on Linux only.
func configuredLoops() (int, error) {
	if !eventLoopSupported {
		return 0, nil
	}
	// The Ps of the process without those running loops hold (a loop
	// waits in epoll_wait holding one: internal/forward/proxy/loop's
	// wait.go), so that a second proxy in the process (tests) does not
	// count the first one's.
	procs := baseProcs()
	if os.Getenv("GOMAXPROCS") == "" {
		// Go never sizes GOMAXPROCS below 2 from a quota; the loops follow
		// the quota itself. A GOMAXPROCS the operator set is taken as is.
		cpus, limited := cgroupQuota()
		procs = quotaLoops(procs, cpus, limited)
	}
	return loopCount(os.Getenv(loopsEnv), procs)
}
