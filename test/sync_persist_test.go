package test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestSyncPersistenceTemplates: the persistence templates are synced for
// every forwarding. Persistent clients of a proxy and of a nat service
// (rr) are spread over the real servers by the master; after it dies, each
// client's new connections land on its real server on the backup, whose
// own rr, starting afresh, would have sent them elsewhere.
func TestSyncPersistenceTemplates(t *testing.T) {
	l := newSyncLab(t, "nat", false)
	svc := func(name string, port int, fwd string) string {
		return fmt.Sprintf(`  - name: %s
    address: %s:%d
    protocol: tcp
    forwarding: %s
    scheduler: rr
    persistence_timeout: 300s
    real_servers: [{address: 10.92.0.21:8080}, {address: 10.92.0.22:8080}, {address: 10.92.0.23:8080}]
`, name, syncVIP, port, fwd)
	}
	l.services = svc("pproxy", 81, "proxy") + svc("pnat", 82, "nat")
	// The clients: each its own address, so its own template.
	clients := []string{"10.91.0.3", "10.91.0.4", "10.91.0.5", "10.91.0.6", "10.91.0.7", "10.91.0.8"}
	for _, c := range append([]string{"10.91.0.9"}, clients...) {
		l.client.IP("addr", "add", c+"/24", "dev", "br0")
	}
	d1, d2 := l.dirs[0], l.dirs[1]
	l.start(d1, 150)
	l.waitMaster(d1, 8*time.Second)
	l.start(d2, 100)
	loopback.WaitFor(t, "d2's resync from d1", func() bool { return d2.syncState(t).Resync.Result == "complete" })

	// greet connects from client to port and returns the real server's name.
	greet := func(client string, port int) (string, error) {
		var c net.Conn
		err := l.client.Do(func() (err error) {
			d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}}
			c, err = d.Dial("tcp", net.JoinHostPort(syncVIP, fmt.Sprint(port)))
			return err
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		name, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(name), err
	}
	ports := []int{81, 82}
	had := map[string]string{} // client port -> real server
	for _, port := range ports {
		// One client first, so that d1's rr is not where d2's starts.
		if _, err := greet("10.91.0.9", port); err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		for _, c := range clients {
			name, err := greet(c, port)
			if err != nil {
				t.Fatalf("%s to port %d: %v", c, port, err)
			}
			had[fmt.Sprint(c, " ", port)] = name
		}
	}
	want := float64(2 * (len(clients) + 1))
	loopback.WaitFor(t, "d2 to install d1's templates", func() bool {
		v, _ := d2.syncState(t).Counters["templates_installed"].(float64)
		return v >= want
	})

	crashed := time.Now()
	l.crash(d1)
	l.waitMaster(d2, 5*time.Second)
	t.Logf("d2 took the VIP %v after the crash", time.Since(crashed).Round(time.Millisecond))
	moved := 0
	for _, port := range ports {
		for _, c := range clients {
			var name string
			loopback.WaitFor(t, fmt.Sprintf("%s to reach port %d through d2", c, port), func() bool {
				var err error
				name, err = greet(c, port)
				return err == nil
			})
			if k := fmt.Sprint(c, " ", port); name != had[k] {
				moved++
				t.Errorf("client %s port %d: %s after the failover, %s before", c, port, name, had[k])
			}
		}
	}
	if moved == 0 {
		t.Logf("all %d persistent clients kept their real server after the failover: %v", len(had), had)
	}
}
