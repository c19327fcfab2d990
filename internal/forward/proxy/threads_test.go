package proxy

import "testing"

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
