package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/apiclient"
	"github.com/govs-lb/govs/internal/config"
)

// execute runs a parsed command against the daemon.
func (c *cli) execute(e *entry, readingStdin bool) error {
	ctx := context.Background()
	if e.unsupported != "" {
		return fail(255, "%s", e.unsupported)
	}
	proto, svcAddr := e.svc.apiID()
	hasService := e.options&(1<<optService) != 0
	switch e.cmd {
	case cmdList:
		return c.list(ctx, e, hasService, svcAddr)
	case cmdSave:
		return c.listAll(ctx, e.format|fmtRule)
	case cmdRestore:
		if readingStdin {
			return usageError{}
		}
		return c.restore()
	case cmdFlush:
		if err := c.api().Clear(ctx); err != nil {
			return c.apiError(err, false)
		}
	case cmdAdd:
		spec := map[string]any{"address": svcAddr, "protocol": e.svc.proto, "scheduler": e.svc.sched}
		if e.svc.fwmark {
			// Only the kernel matches marks: nat until a real server's
			// -g or --fullnat says otherwise (a service without real
			// servers takes its first one's method).
			spec = map[string]any{"fwmark": e.svc.mark, "scheduler": e.svc.sched, "forwarding": "nat"}
			if e.svc.v6 {
				spec["family"] = "ipv6"
			}
		}
		for k, v := range serviceSettings(e) {
			if v != nil {
				spec[k] = v
			}
		}
		if _, err := c.api().CreateService(ctx, spec); err != nil {
			return c.apiError(err, false)
		}
	case cmdEdit:
		patch := serviceSettings(e)
		patch["scheduler"] = e.svc.sched
		if _, err := c.api().PatchService(ctx, proto, svcAddr, patch); err != nil {
			return c.apiError(err, false)
		}
	case cmdDel:
		if err := c.api().DeleteService(ctx, proto, svcAddr); err != nil {
			return c.apiError(err, false)
		}
	case cmdZero:
		if !hasService {
			proto = ""
		}
		if err := c.api().Zero(ctx, proto, svcAddr); err != nil {
			return c.apiError(err, false)
		}
	case cmdAddDest, cmdEditDest:
		fwd, err := forwarding(e.dest.fwd)
		if err != nil {
			return err
		}
		settings := destSettings(e)
		if e.cmd == cmdAddDest {
			spec := map[string]any{"address": destAddrPort(e)}
			for k, v := range settings {
				if v != nil {
					spec[k] = v
				}
			}
			_, err = c.api().CreateRealServer(ctx, proto, svcAddr, spec, fwd)
		} else {
			_, err = c.api().PatchRealServer(ctx, proto, svcAddr, destAddrPort(e), settings, fwd)
		}
		if err != nil {
			return c.apiError(err, true)
		}
	case cmdDelDest:
		if err := c.api().DeleteRealServer(ctx, proto, svcAddr, destAddrPort(e)); err != nil {
			return c.apiError(err, true)
		}
	case cmdTimeout:
		return c.setTimeouts(ctx, e.timeouts)
	case cmdStartDaemon, cmdStopDaemon:
		// The sync authenticates every message with the shared key the
		// configuration's key_file names: these start and stop the
		// configured sync's roles, with the interface and sync_id given.
		req := apiclient.SyncDaemonRequest{Role: e.daemon.role, Interface: e.daemon.iface}
		if e.daemon.syncID >= 0 {
			req.SyncID = &e.daemon.syncID
		}
		path := "/api/v1/sync/start"
		if e.cmd == cmdStopDaemon {
			path = "/api/v1/sync/stop"
		}
		if err := c.api().Do(ctx, "POST", path, req, nil); err != nil {
			return c.apiError(err, false)
		}
	}
	return nil
}

// serviceSettings are the settings -A and -E set: all of them, so that -E
// returns what it does not name to its default, as with ipvsadm.
func serviceSettings(e *entry) map[string]any {
	m := map[string]any{"persistence_timeout": nil, "persistence_netmask": nil, "ops": nil, "scheduler_flags": nil}
	if e.svc.persist {
		m["persistence_timeout"] = fmt.Sprintf("%ds", e.svc.timeout)
		if mask := e.svc.netmask; mask != "" && mask != "255.255.255.255" && mask != "128" {
			m["persistence_netmask"] = mask
		}
	}
	if e.svc.onePacket {
		m["ops"] = true
	}
	if len(e.svc.flags) > 0 {
		flags := make([]any, len(e.svc.flags))
		for i, f := range e.svc.flags {
			flags[i] = f
		}
		m["scheduler_flags"] = flags
	}
	return m
}

// destSettings are the settings -a and -e set; -e returns the weight to 1
// and the thresholds to none unless given, as with ipvsadm.
func destSettings(e *entry) map[string]any {
	m := map[string]any{"weight": e.dest.weight, "upper_threshold": nil, "lower_threshold": nil}
	if e.dest.uthresh != 0 {
		m["upper_threshold"] = e.dest.uthresh
	}
	if e.dest.lthresh != 0 {
		m["lower_threshold"] = e.dest.lthresh
	}
	return m
}

// apiID is the service's protocol and address in the API's paths:
// "fwm" (IPv6 "fwm6") and the mark for a fwmark service.
func (s *service) apiID() (proto, addr string) {
	if s.fwmark {
		if s.v6 {
			return "fwm6", strconv.FormatUint(uint64(s.mark), 10)
		}
		return "fwm", strconv.FormatUint(uint64(s.mark), 10)
	}
	return s.proto, netip.AddrPortFrom(s.addr, s.port).String()
}

// destAddrPort is the real server's address for the API: ADDRESS:PORT,
// without a port the virtual service's, as with ipvsadm; or, for a fwmark
// service's real server without a port (or port 0, as ipvsadm -S writes
// it), its address alone: it keeps each packet's port.
func destAddrPort(e *entry) string {
	port := e.dest.port
	if !e.dest.hasPort {
		port = e.svc.port
	}
	if e.svc.fwmark && port == 0 {
		return e.dest.addr.String()
	}
	return netip.AddrPortFrom(e.dest.addr, port).String()
}

// forwarding maps a forwarding switch to govs's method.
func forwarding(fwd string) (string, error) {
	switch fwd {
	case fwdMasq:
		return string(config.NAT), nil
	case fwdFullNAT:
		return string(config.FullNAT), nil
	case fwdProxy:
		return string(config.Proxy), nil
	case fwdGate:
		return string(config.DR), nil
	case fwdTunnel:
		// LVS-TUN needs IPIP tunnels, which govs does not use (and the
		// kernels it was built on lack: govs check --kernel reports ipip).
		return "", fail(255, "forwarding method not supported: tunnelling (-i) needs IPIP tunnels (CONFIG_NET_IPIP), which govs does not offer; use -g (direct routing) or -m")
	}
	return "", nil
}

// list is ipvsadm -L.
func (c *cli) list(ctx context.Context, e *entry, hasService bool, svcAddr string) error {
	switch {
	case e.options&(1<<optConnection) != 0:
		conns, err := c.api().Connections(ctx)
		if err != nil {
			return c.apiError(err, false)
		}
		p := &printer{w: c.stdout, format: e.format, names: c.names}
		p.conns(conns)
		return nil
	case e.options&(1<<optTimeout) != 0:
		return c.listTimeouts(ctx)
	case e.options&(1<<optDaemon) != 0:
		return c.listDaemon(ctx)
	case e.options&(1<<optDiscovery) != 0:
		return c.listDiscovery(ctx)
	}
	if !hasService {
		return c.listAll(ctx, e.format)
	}
	proto, _ := e.svc.apiID()
	svc, err := c.api().Service(ctx, proto, svcAddr)
	if err != nil {
		f := c.apiError(err, false)
		if f.code == 255 {
			f.code = 1 // as list_service
		}
		return f
	}
	p := &printer{w: c.stdout, format: e.format, names: c.names}
	p.one(svc)
	return nil
}

// listDaemon prints ipvsadm's daemon lines, one per role that runs. By
// default govs's sync both sends its flows and takes its peers': IPVS's
// master and backup daemons at once.
func (c *cli) listDaemon(ctx context.Context) error {
	var st apiclient.SyncState
	if err := c.api().Do(ctx, "GET", "/api/v1/sync", nil, &st); err != nil {
		return c.apiError(err, false)
	}
	if st.Status != "running" && st.Status != "resyncing" {
		return nil // no sync daemon runs: ipvsadm prints nothing
	}
	for _, role := range st.Roles {
		fmt.Fprintf(c.stdout, "%s sync daemon (mcast=%s, syncid=%d)\n", role, st.Interface, st.SyncID)
	}
	return nil
}

func (c *cli) listAll(ctx context.Context, format uint) error {
	services, err := c.api().Services(ctx)
	if err != nil {
		f := c.apiError(err, false)
		if f.code == 255 {
			f.code = 1 // as list_all
		}
		return f
	}
	p := &printer{w: c.stdout, format: format, names: c.names}
	p.all(services)
	return nil
}

// restore is ipvsadm -R: each line of stdin is a command line. As with
// ipvsadm, each is applied on its own; a parse error stops the restore, a
// refused command is reported and the restore goes on; the status is the
// last command's.
func (c *cli) restore() error {
	sc := bufio.NewScanner(c.stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last error
	for sc.Scan() {
		args := restoreFields(sc.Text())
		if len(args) == 0 {
			continue
		}
		e, special, err := parse(args)
		if err != nil {
			return err
		}
		if special != "" {
			return usageError{}
		}
		last = c.execute(e, true)
		if f, ok := last.(*failure); ok && f.code == 2 {
			return last
		}
		if last != nil {
			c.exit(last)
		}
	}
	if err := sc.Err(); err != nil {
		return fail(255, "reading rules: %v", err)
	}
	if last != nil {
		if f, ok := last.(*failure); ok {
			return &failure{code: f.code} // already reported
		}
	}
	return nil
}

// restoreFields splits a rule line into arguments: whitespace separated,
// a leading "ipvsadm" or "govsadm" word dropped, "#" starting a comment.
func restoreFields(line string) []string {
	var out []string
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "#") {
			break
		}
		if f == "ipvsadm" || f == "govsadm" {
			continue
		}
		out = append(out, f)
	}
	return out
}

// setTimeouts is ipvsadm --set tcp tcpfin udp. IPVS's timeouts are global;
// govs's are per virtual service (idle_timeout, tcpfin_timeout), so --set
// sets them on every virtual service of the running configuration: tcp on
// the TCP services' idle_timeout, tcpfin on their tcpfin_timeout, udp on
// the UDP services' idle_timeout. A 0 leaves that timeout unchanged, as
// with ipvsadm. Services added later take their own values.
func (c *cli) setTimeouts(ctx context.Context, t [3]int) error {
	services, err := c.api().Services(ctx)
	if err != nil {
		return c.apiError(err, false)
	}
	secs := func(n int) string { return fmt.Sprintf("%ds", n) }
	for _, svc := range services {
		patch := map[string]any{}
		if strings.EqualFold(svc.Protocol, "udp") {
			if t[2] > 0 {
				patch["idle_timeout"] = secs(t[2])
			}
		} else {
			if t[0] > 0 {
				patch["idle_timeout"] = secs(t[0])
			}
			if t[1] > 0 {
				patch["tcpfin_timeout"] = secs(t[1])
			}
		}
		if len(patch) == 0 {
			continue
		}
		p, a := svcID(&svc)
		if _, err := c.api().PatchService(ctx, p, a, patch); err != nil {
			return c.apiError(err, false)
		}
	}
	return nil
}

// listTimeouts is ipvsadm -L --timeout: the timeouts of the first TCP and
// the first UDP virtual service (those --set sets on all), the defaults
// where there is none.
func (c *cli) listTimeouts(ctx context.Context) error {
	services, err := c.api().Services(ctx)
	if err != nil {
		return c.apiError(err, false)
	}
	tcp, fin, udp := config.DefaultTCPIdleTimeout, config.DefaultTCPFinTimeout, config.DefaultUDPIdleTimeout
	var seenTCP, seenUDP bool
	for _, svc := range services {
		idle, err := time.ParseDuration(svc.IdleTimeout)
		if err != nil {
			continue
		}
		switch {
		case strings.EqualFold(svc.Protocol, "udp") && !seenUDP:
			udp, seenUDP = idle, true
		case !strings.EqualFold(svc.Protocol, "udp") && !seenTCP:
			tcp, seenTCP = idle, true
			if d, err := time.ParseDuration(svc.TCPFinTimeout); err == nil {
				fin = d
			}
		}
	}
	fmt.Fprintf(c.stdout, "Timeout (tcp tcpfin udp): %d %d %d\n", int(tcp.Seconds()), int(fin.Seconds()), int(udp.Seconds()))
	return nil
}
