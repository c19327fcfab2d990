package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
)

// A stop closes an idle connection that owes its client nothing with a FIN
// once it has been quiet for stopQuiet, and does not wait for the grace
// period.
func TestStopClosesQuietConnection(t *testing.T) {
	be := startBackend(t, "a")
	vip := loopback.Addr(t, "tcp")
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf("virtual_servers:\n  - address: %s\n    real_servers: [{address: %s}]\n", vip, be.addr)))
	if err != nil {
		t.Fatal(err)
	}
	d := director.New(testLog(), New(testLog()))
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "hi\n")
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(30 * time.Second) }()
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("quiet connection at stop: %v, want EOF", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("stop still waits for a quiet connection")
	}
}
