package test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
)

// govs logs, the binary: two files (one gzipped, one with a bad line)
// merged, CSV and JSON reports equal to counts made here with
// encoding/json; stdin; the bad line reported with its file and line, and
// not fatal.
func TestLogsCommand(t *testing.T) {
	dir := t.TempDir()
	var all bytes.Buffer
	if err := accesslog.Synth(&all, 20000, 11, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(all.String(), "\n")
	lines = lines[:len(lines)-1]
	var one, two bytes.Buffer
	for i, l := range lines {
		if i%2 == 0 {
			one.WriteString(l)
		} else {
			two.WriteString(l)
		}
		if i == 10 {
			one.WriteString("this is not json\n")
		}
	}
	plain, gz := filepath.Join(dir, "access.log"), filepath.Join(dir, "access.log.1.gz")
	writeFile(t, plain, one.String())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(two.Bytes())
	zw.Close()
	if err := os.WriteFile(gz, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{}
	wantErr := map[string]int{}
	for _, l := range lines {
		var m struct {
			RealServer  string `json:"real_server"`
			Termination string `json:"termination"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		want[m.RealServer]++
		if m.Termination != "--" {
			wantErr[m.RealServer]++
		}
	}

	cmd := exec.Command(govsBin, "logs", "--report", "servers", "--format", "csv", plain, gz)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("govs logs: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), plain+":7: col 1: not a JSON object") {
		t.Errorf("bad line not reported with its place: %q", stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	sc.Scan()
	if !strings.HasPrefix(sc.Text(), "real_server,conns,errors,error_pct,") {
		t.Errorf("csv header %q", sc.Text())
	}
	got := map[string][2]string{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		got[f[0]] = [2]string{f[1], f[2]}
	}
	if len(got) != len(want) {
		t.Errorf("%d servers, want %d", len(got), len(want))
	}
	for rs, n := range want {
		if g := got[rs]; g[0] != itoa(n) || g[1] != itoa(wantErr[rs]) {
			t.Errorf("%s: conns,errors %v, want %d,%d", rs, g, n, wantErr[rs])
		}
	}

	// JSON through stdin, terminations.
	cmd = exec.Command(govsBin, "logs", "--report", "terminations,gaps", "--format", "json", "--gap", "10s")
	cmd.Stdin = strings.NewReader(all.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Lines   uint64                      `json:"lines"`
		Bad     uint64                      `json:"bad_lines"`
		Reports map[string][]map[string]any `json:"reports"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if doc.Lines != uint64(len(lines)) || doc.Bad != 0 || len(doc.Reports["gaps"]) != 1 {
		t.Errorf("json: %d lines, %d bad, gaps %v", doc.Lines, doc.Bad, doc.Reports["gaps"])
	}
	var sum float64
	for _, r := range doc.Reports["terminations"] {
		sum += r["conns"].(float64)
	}
	if sum != float64(len(lines)) {
		t.Errorf("terminations sum to %v, want %d", sum, len(lines))
	}

	// The SVG, and a bad flag refused with its name.
	svg := filepath.Join(dir, "plot.svg")
	if out, err := exec.Command(govsBin, "logs", "--svg", svg, plain).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b, _ := os.ReadFile(svg); !bytes.HasPrefix(b, []byte("<svg")) {
		t.Error("no svg written")
	}
	if out, err := exec.Command(govsBin, "logs", "--report", "nope", plain).CombinedOutput(); err == nil || !strings.Contains(string(out), `report "nope"`) {
		t.Errorf("bad report accepted: %s", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
