package ctevent

import "testing"

// FuzzParse: conntrack event attributes come from the kernel, but the
// parser must still not panic on anything.
func FuzzParse(f *testing.F) {
	f.Add([]byte{8, 0, 3, 0, 0, 0, 0, 32})
	f.Add([]byte{20, 0, 0x14, 0x80, 12, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
		AppendEvents(nil, b)
	})
}
