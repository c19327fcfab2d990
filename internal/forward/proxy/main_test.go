package proxy

import (
	"os"
	"testing"
)

// TestMain makes tcp health checks connect rather than send SYN probes
// (which root gets by default): TestKillRealServerUnderLoad counts the
// checker's handshakes at its real servers to prove that rise checks
// passed before traffic came back, and a SYN probe is never accepted.
// internal/health tests the SYN probes themselves.
func TestMain(m *testing.M) {
	os.Setenv("GOVS_HEALTH_TCP", "connect")
	os.Exit(m.Run())
}
