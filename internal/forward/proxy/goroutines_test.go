package proxy

import (
	"bytes"
	"runtime"
	"strconv"
)

// goroutineIDs is the set of the goroutines alive now, by id.
func goroutineIDs() map[uint64]bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	ids := map[uint64]bool{}
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		// "goroutine 42 [running]:"
		rest, ok := bytes.CutPrefix(block, []byte("goroutine "))
		if !ok {
			continue
		}
		num, _, _ := bytes.Cut(rest, []byte(" "))
		if id, err := strconv.ParseUint(string(num), 10, 64); err == nil {
			ids[id] = true
		}
	}
	return ids
}

// goroutinesSince is how many goroutines alive now were not in before:
// those started since (and still running), which goroutines that ended
// meanwhile (a pool's, a timer's, another test's) do not offset, as they
// would a difference of runtime.NumGoroutine.
func goroutinesSince(before map[uint64]bool) int {
	n := 0
	for id := range goroutineIDs() {
		if !before[id] {
			n++
		}
	}
	return n
}
