package discovery

import "testing"

func TestDockerStoppingSignal(t *testing.T) {
	for _, c := range []struct {
		event, stop string
		want        bool
	}{
		{"15", "", true}, // docker stop's default
		{"2", "", true},
		{"3", "", true},
		{"9", "", true},          // docker kill's default
		{"1", "", false},         // HUP: a reload
		{"10", "", false},        // USR1: a log reopen
		{"28", "SIGWINCH", true}, // httpd's STOPSIGNAL
		{"28", "WINCH", true},
		{"28", "winch", true},
		{"28", "28", true},
		{"28", "SIGUSR2", false},
		{"28", "SIGNOPE", false},
		{"", "", false},
		{"TERM", "", false}, // the engine gives numbers
		{"-15", "", false},
	} {
		if got := stoppingSignal(c.event, c.stop); got != c.want {
			t.Errorf("stoppingSignal(%q, %q) = %v, want %v", c.event, c.stop, got, c.want)
		}
	}
}
