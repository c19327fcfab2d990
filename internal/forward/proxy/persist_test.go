package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// askFrom is ask from a chosen loopback source address.
func askFrom(t *testing.T, src, vip string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(line)[0]
}

func TestPersistence(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	// Templates live 1 s: the client's pauses between connections (and a
	// reload) on a loaded machine must not outlast them, as 300 ms could.
	const timeout = time.Second
	conf := func(netmask, weightA string, reals ...*backend) string {
		s := fmt.Sprintf("virtual_servers:\n  - address: %s\n    scheduler: rr\n    persistence_timeout: %v\n", vip, timeout)
		if netmask != "" {
			s += "    persistence_netmask: " + netmask + "\n"
		}
		s += "    real_servers:\n"
		for _, r := range reals {
			w := "1"
			if r == a {
				w = weightA
			}
			s += fmt.Sprintf("      - {address: %s, weight: %s}\n", r.addr, w)
		}
		return s
	}
	d := startDirector(t, conf("", "1", a, b, c))

	// Under rr each client keeps its first real server while its template lives.
	first := map[string]string{}
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		first[src] = askFrom(t, src, vip)
	}
	if first["127.0.0.2"] == first["127.0.0.3"] || first["127.0.0.3"] == first["127.0.0.4"] {
		t.Fatalf("rr did not spread new clients: %v", first)
	}
	for range 3 {
		for src, want := range first {
			if got := askFrom(t, src, vip); got != want {
				t.Fatalf("client %s moved from %s to %s", src, want, got)
			}
		}
	}

	// A quiesced real server (weight 0) keeps its persistent clients.
	var onA string
	for src, rs := range first {
		if rs == "a" {
			onA = src
		}
	}
	if err := apply(t, d, conf("", "0", a, b, c)); err != nil {
		t.Fatal(err)
	}
	if got := askFrom(t, onA, vip); got != "a" {
		t.Errorf("persistent client of a quiesced server went to %s", got)
	}
	// A removed one drops its templates: its clients are scheduled afresh.
	if err := apply(t, d, conf("", "1", b, c)); err != nil {
		t.Fatal(err)
	}
	if got := askFrom(t, onA, vip); got == "a" {
		t.Errorf("client still sent to a removed real server")
	}

	// With a /24 netmask the whole group shares one template.
	if err := apply(t, d, conf("255.255.255.0", "1", a, b, c)); err != nil {
		t.Fatal(err)
	}
	group := askFrom(t, "127.0.0.10", vip)
	for _, src := range []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"} {
		if got := askFrom(t, src, vip); got != group {
			t.Errorf("%s went to %s, its /24 group to %s", src, got, group)
		}
	}
	// Once the template has expired, rr decides again.
	time.Sleep(timeout + 100*time.Millisecond)
	moved := false
	for range 3 {
		if askFrom(t, "127.0.0.10", vip) != group {
			moved = true
			break
		}
		time.Sleep(timeout + 100*time.Millisecond)
	}
	if !moved {
		t.Errorf("client stayed on %s after its template expired", group)
	}
}
