package main

import (
	"strings"
	"testing"
)

// Firewall-mark services through govsadm as through ipvsadm: -A/-E/-D -f,
// -a/-e/-d -f with real servers without a port (port 0: the packet's),
// -6, listed as "FWM  N" after the address services, -S/-R round trip.
func TestFWMarkServices(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	run := func(args string) {
		t.Helper()
		if _, stderr, code := govsadm(t, sock, "", strings.Fields(args)...); code != 0 {
			t.Fatalf("govsadm %s: exit %d: %s", args, code, stderr)
		}
	}
	for _, args := range []string{
		"-A -f 7 -s wlc",
		"-a -f 7 -r 10.0.0.9:443 --fullnat -w 3",
		"-A -f 1 -s rr -p 300",
		"-a -f 1 -r 10.0.0.7 -m -w 1",
		"-a -f 1 -r 10.0.0.8:0 -m -w 2",
		"-A -f 1 -6 -s wlc",
		"-a -f 1 -6 -r 2001:db8::20 -g",
	} {
		run(args)
	}
	const fwm = "FWM  1 rr persistent 300\n" +
		"  -> 10.0.0.7:0                   Masq    1      0          0         \n" +
		"  -> 10.0.0.8:0                   Masq    2      0          0         \n" +
		"FWM  1 IPv6 wlc\n" +
		"  -> [2001:db8::20]:0             Route   1      0          0         \n" +
		"FWM  7 wlc\n" +
		"  -> 10.0.0.9:443                 FullNat 3      0          0         \n"
	out, _, _ := govsadm(t, sock, "", "-L", "-n")
	if !strings.HasSuffix(out, fwm) || !strings.Contains(out, "TCP  127.0.0.1:8080 wlc\n") {
		t.Fatalf("-L -n:\n%s\nwant it to end with:\n%s", out, fwm)
	}
	if out, _, _ := govsadm(t, sock, "", "-L", "-n", "-f", "7"); out != "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"FWM  7 wlc\n  -> 10.0.0.9:443                 FullNat 3      0          0         \n" {
		t.Errorf("-L -n -f 7:\n%s", out)
	}

	saved, _, code := govsadm(t, sock, "", "-S", "-n")
	for _, want := range []string{"-A -f 1 -s rr -p 300\n", "-a -f 1 -r 10.0.0.7:0 -m -w 1\n", "-A -f 1 -6 -s wlc\n",
		"-a -f 1 -6 -r [2001:db8::20]:0 -g -w 1\n", "-a -f 7 -r 10.0.0.9:443 --fullnat -w 3\n"} {
		if code != 0 || !strings.Contains(saved, want) {
			t.Fatalf("-S lacks %q:\n%s", want, saved)
		}
	}
	run("-C")
	if _, stderr, code := govsadm(t, sock, saved, "-R"); code != 0 {
		t.Fatalf("-R: exit %d: %s\n%s", code, stderr, saved)
	}
	if again, _, _ := govsadm(t, sock, "", "-S", "-n"); again != saved {
		t.Fatalf("-S after -R:\n%s\nwant:\n%s", again, saved)
	}

	run("-E -f 1 -s wlc")
	run("-e -f 1 -r 10.0.0.7 -w 5 -m")
	run("-d -f 1 -r 10.0.0.8:0")
	run("-D -f 1 -6")
	out, _, _ = govsadm(t, sock, "", "-L", "-n")
	if !strings.Contains(out, "FWM  1 wlc\n  -> 10.0.0.7:0                   Masq    5      0          0         \nFWM  7") ||
		strings.Contains(out, "IPv6") || strings.Contains(out, "10.0.0.8") {
		t.Errorf("after -E, -e, -d, -D:\n%s", out)
	}
	run("-A -f 9")
	for _, tc := range []struct {
		args string
		code int
		msg  string
	}{
		{"-A -f 7", 255, "Service already exists\n"},
		{"-D -f 8", 255, "No such service\n"},
		{"-a -f 1 -r 10.0.0.7 -m", 255, "Destination already exists\n"},
		// Only the kernel matches marks.
		{"-a -f 9 -r 10.0.0.10:80 --proxy", 255, "a fwmark service needs forwarding nat, fullnat or dr"},
	} {
		if _, stderr, code := govsadm(t, sock, "", strings.Fields(tc.args)...); code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("govsadm %s: exit %d, %q; want %d, %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}
