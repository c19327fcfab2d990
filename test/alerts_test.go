package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestAlerts runs govs with alerts in the VRRP lab: router r1 holds a
// VRRP instance and a virtual service whose real server is a TCP listener
// in the client namespace, where a real MTA (Debian's exim4) and a webhook
// receiver listen too. r1 becoming MASTER (its instance, and the sync group
// the instance is in) and the real server being killed produce keepalived's
// mails, delivered by the MTA, and the webhook's POSTs.
func TestAlerts(t *testing.T) {
	l := newVRRPLab(t, false)
	r1 := l.routers[0]
	const clientIP = "10.88.0.2"

	// The MTA, in the client namespace.
	const smtpPort = 2525
	smtpAddr := net.JoinHostPort(clientIP, strconv.Itoa(smtpPort))
	mbox := loopback.MTA(t, smtpAddr, []string{"ip", "netns", "exec", l.client.Name}, func() bool {
		return l.client.Do(func() error {
			c, err := net.Dial("tcp", smtpAddr)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	})

	// The webhook receiver and the real server, in the client namespace.
	var hookLn, rsLn net.Listener
	if err := l.client.Do(func() error {
		var err error
		if hookLn, err = net.Listen("tcp", clientIP+":0"); err != nil {
			return err
		}
		rsLn, err = net.Listen("tcp", clientIP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hooks []map[string]any
	hookSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		hooks = append(hooks, ev)
		mu.Unlock()
	})}
	go hookSrv.Serve(hookLn)
	t.Cleanup(func() { hookSrv.Close() })
	go func() {
		for {
			c, err := rsLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	rsAddr := rsLn.Addr().String()

	top := fmt.Sprintf(`alerts:
  router_id: LVS_TEST
  email:
    to: [ops@example.test]
    from: lb@example.test
    smtp_server: %s:%d
    timeout: 10s
  webhooks: [http://%s/hook]
vrrp_sync_groups:
  - {name: VG_1, instances: [VI_1]}
virtual_servers:
  - address: 10.88.0.11:8080
    forwarding: proxy
    health_check: {type: tcp, interval: 1s, timeout: 1s, rise: 1, fall: 1}
    real_servers:
      - address: %s
`, clientIP, smtpPort, hookLn.Addr(), rsAddr)
	r1.startGovs(vrrpOpts{version: 2, interval: time.Second, priority: 150, master: true, top: top})
	l.waitMaster(r1, 10*time.Second)

	hookWith := func(field, value string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hooks {
			if h[field] == value {
				return true
			}
		}
		return false
	}
	mail := func() string { b, _ := os.ReadFile(mbox); return string(b) }
	loopback.WaitFor(t, "the MASTER mail", func() bool {
		return strings.Contains(mail(), "Subject: [LVS_TEST] VRRP Instance VI_1 - Entering MASTER state\n")
	})
	loopback.WaitFor(t, "the MASTER webhook", func() bool { return hookWith("subject", "[LVS_TEST] VRRP Instance VI_1 - Entering MASTER state") })
	loopback.WaitFor(t, "the sync group's MASTER mail", func() bool {
		return strings.Contains(mail(), "Subject: [LVS_TEST] VRRP Group VG_1 - Entering MASTER state\n")
	})
	loopback.WaitFor(t, "the sync group's webhook", func() bool { return hookWith("group", "VG_1") })

	rsLn.Close() // the real server dies
	rsSubject := fmt.Sprintf("[LVS_TEST] Realserver [%s]:tcp:%d of virtual server [10.88.0.11]:tcp:8080 - DOWN",
		clientIP, rsLn.Addr().(*net.TCPAddr).Port)
	loopback.WaitFor(t, "the real server's DOWN mail", func() bool { return strings.Contains(mail(), "Subject: "+rsSubject+"\n") })
	loopback.WaitFor(t, "the real server's DOWN webhook", func() bool { return hookWith("subject", rsSubject) })
	m := mail()
	for _, want := range []string{"\n=> TCP CHECK failed on service <=\n", "\n=> VRRP Instance is now owning VRRP VIPs <=\n",
		"\n=> All VRRP group instances are now in MASTER state <=\n",
		"From: lb@example.test\n", "To: ops@example.test\n", "X-Mailer: govs\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("the mails lack %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, " - UP\n") {
		t.Errorf("a real server UP mail at start, which keepalived does not send:\n%s", m)
	}
	if !hookWith("kind", "real_server") || !hookWith("router_id", "LVS_TEST") {
		t.Errorf("webhook events: %v", hooks)
	}
}
