package connsync

import "testing"

// FuzzParseEvent: conntrack event attributes come from the kernel, but the
// parser must still not panic on anything.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte{8, 0, 3, 0, 0, 0, 0, 32})
	f.Fuzz(func(t *testing.T, b []byte) { parseEvent(b) })
}
