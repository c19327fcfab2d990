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
		{"37", "SIGRTMIN+3", true}, // systemd in a container
		{"37", "RTMIN+3", true},
		{"34", "SIGRTMIN", true},
		{"64", "SIGRTMAX", true},
		{"62", "SIGRTMAX-2", true},
		{"37", "SIGRTMIN+4", false},
		{"37", "SIGRTMIN-3", false},
		{"37", "SIGRTMIN+x", false},
		{"65", "SIGRTMIN+31", false}, // beyond RTMAX
	} {
		if got := stoppingSignal(c.event, c.stop); got != c.want {
			t.Errorf("stoppingSignal(%q, %q) = %v, want %v", c.event, c.stop, got, c.want)
		}
	}
}
