package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/apiclient"
)

// The listings below print what ipvsadm prints, with its printf formats,
// so that scripts parsing ipvsadm's output keep working.

// names turns addresses and ports into names when -n is not given.
type names interface {
	host(a netip.Addr) string                 // "" when the address has no name
	service(port uint16, proto string) string // "" when the port has no name
}

type printer struct {
	w      io.Writer
	format uint
	names  names
}

func protocolName(proto string) string {
	switch proto {
	case "tcp":
		return "TCP"
	case "udp":
		return "UDP"
	case "sctp":
		return "SCTP"
	}
	return "?"
}

func protocolOption(proto string) string {
	switch proto {
	case "tcp":
		return "-t"
	case "udp":
		return "-u"
	case "sctp":
		return "--sctp-service"
	}
	return "--xxx-service"
}

func protocolNumber(proto string) int {
	switch proto {
	case "tcp":
		return 6
	case "udp":
		return 17
	case "sctp":
		return 132
	}
	return 0
}

// fwdName is the Forward column: the service's forwarding method.
func fwdName(forwarding string) string {
	switch forwarding {
	case "nat":
		return "Masq"
	case "fullnat":
		return "FullNat"
	case "proxy", "":
		return "Proxy"
	case "dr", "route":
		return "Route"
	case "tun", "ipip", "tunnel":
		return "Tunnel"
	}
	return strings.ToUpper(forwarding[:1]) + forwarding[1:]
}

// fwdSwitch is the option -S writes for a forwarding method.
func fwdSwitch(forwarding string) string {
	switch forwarding {
	case "nat":
		return "-m"
	case "fullnat":
		return "--fullnat"
	case "proxy", "":
		return "--proxy"
	case "tun", "ipip", "tunnel":
		return "-i"
	}
	return "-g"
}

// anyname is ipvsadm's addrport_to_anyname.
func (p *printer) anyname(ap netip.AddrPort, proto string) string {
	open, close := "", ""
	if ap.Addr().Is6() {
		open, close = "[", "]"
	}
	if p.format&fmtNumeric != 0 || p.names == nil {
		return fmt.Sprintf("%s%s%s:%d", open, ap.Addr(), close, ap.Port())
	}
	host := p.names.host(ap.Addr())
	if host == "" {
		host = ap.Addr().String()
	}
	port := p.names.service(ap.Port(), proto)
	if port == "" {
		port = strconv.Itoa(int(ap.Port()))
	}
	return open + host + close + ":" + port
}

// largenum is ipvsadm's print_largenum.
func (p *printer) largenum(i uint64) string {
	if p.format&fmtExact != 0 {
		s := strconv.FormatUint(i, 10)
		width := len(s) + 1
		if len(s) <= 8 {
			width = 9
		}
		return fmt.Sprintf("%*d", width, i)
	}
	switch {
	case i < 100000000:
		return fmt.Sprintf("%9d", i)
	case i < 1000000000:
		return fmt.Sprintf("%8dK", i/1000)
	case i < 100000000000:
		return fmt.Sprintf("%8dM", i/1000000)
	case i < 100000000000000:
		return fmt.Sprintf("%8dG", i/1000000000)
	}
	return fmt.Sprintf("%8dT", i/1000000000000)
}

// title is ipvsadm's print_title.
func (p *printer) title() {
	f := p.format
	switch {
	case f&fmtStats != 0:
		fmt.Fprintf(p.w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&fmtRate != 0:
		fmt.Fprintf(p.w, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&fmtThresholds != 0:
		fmt.Fprintf(p.w, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&fmtPersistentConn != 0:
		fmt.Fprintf(p.w, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&fmtAgent != 0:
		fmt.Fprint(p.w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Weight Agent% CPU% Mem% Load  PSI% IO% InFlight Latency\n")
	case f&fmtTunInfo != 0:
		fmt.Fprint(p.w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&fmtRule == 0:
		fmt.Fprint(p.w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// all is ipvsadm's list_all.
func (p *printer) all(services []apiclient.Service) {
	if p.format&fmtRule == 0 {
		fmt.Fprintf(p.w, "IP Virtual Server version %d.%d.%d (size=%d)\n", 1, 2, 1, 4096)
	}
	if p.format&fmtNoSort == 0 {
		sortServices(services)
	}
	p.title()
	for i := range services {
		p.service(&services[i])
	}
}

// one is ipvsadm's list_service.
func (p *printer) one(svc *apiclient.Service) {
	p.title()
	p.service(svc)
}

type parsedService struct {
	ap      netip.AddrPort
	v6      bool
	timeout uint   // persistence, seconds; 0: not persistent
	mask    string // " mask ..." text, "" for the default
	rule    string // " -M ..." text
}

// svcID is the service's protocol and address in the API's paths.
func svcID(svc *apiclient.Service) (proto, addr string) {
	if svc.FWMark != 0 {
		if svc.Family == "ipv6" {
			return "fwm6", strconv.FormatUint(uint64(svc.FWMark), 10)
		}
		return "fwm", strconv.FormatUint(uint64(svc.FWMark), 10)
	}
	return svc.Protocol, svc.Address
}

// parseDest reads a real server's address: ADDRESS:PORT, or a fwmark
// service's ADDRESS alone, which ipvsadm lists as port 0.
func parseDest(s string) netip.AddrPort {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap
	}
	a, _ := netip.ParseAddr(strings.Trim(s, "[]"))
	return netip.AddrPortFrom(a, 0)
}

func parseAPIService(svc *apiclient.Service) parsedService {
	ps := parsedService{}
	ps.ap, _ = netip.ParseAddrPort(svc.Address)
	ps.v6 = ps.ap.Addr().Is6() || svc.Family == "ipv6"
	if d, err := time.ParseDuration(svc.PersistenceTimeout); err == nil && d > 0 {
		ps.timeout = uint((d + time.Second - 1) / time.Second)
	}
	if ps.timeout == 0 || svc.PersistenceNetmask == "" {
		return ps
	}
	m := strings.TrimPrefix(strings.TrimSpace(svc.PersistenceNetmask), "/")
	if !ps.v6 {
		var mask netip.Addr
		if a, err := netip.ParseAddr(m); err == nil {
			mask = a
		} else if n, err := strconv.Atoi(m); err == nil && n >= 0 && n <= 32 {
			b := [4]byte{}
			v := ^uint32(0) << (32 - n)
			if n == 0 {
				v = 0
			}
			b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
			mask = netip.AddrFrom4(b)
		}
		if mask.IsValid() && mask != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			ps.mask, ps.rule = " mask "+mask.String(), " -M "+mask.String()
		}
		return ps
	}
	if n, err := strconv.Atoi(m); err == nil && n != 128 {
		ps.mask, ps.rule = fmt.Sprintf(" mask %d", n), fmt.Sprintf(" -M %d", n)
	}
	return ps
}

// schedFlags are the service's scheduler flags as ipvsadm's
// print_sched_flags writes them, "" for none.
func schedFlags(svc *apiclient.Service) string {
	has := map[string]bool{}
	for _, f := range svc.SchedulerFlags {
		has[f] = true
	}
	var out []string
	for _, f := range []string{svc.Scheduler + "-fallback", svc.Scheduler + "-port"} {
		if has[f] && (svc.Scheduler == "sh" || svc.Scheduler == "mh") {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

// service is ipvsadm's print_service_entry.
func (p *printer) service(svc *apiclient.Service) {
	ps := parseAPIService(svc)
	var name string
	switch {
	case svc.FWMark != 0 && p.format&fmtRule != 0:
		// ipvsadm's print_service_entry: "-f N" ("-f N -6"), "FWM  N"
		// ("FWM  N IPv6").
		name = fmt.Sprintf("-f %d", svc.FWMark)
		if ps.v6 {
			name += " -6"
		}
	case svc.FWMark != 0:
		name = fmt.Sprintf("FWM  %d", svc.FWMark)
		if ps.v6 {
			name += " IPv6"
		}
	case p.format&fmtRule != 0:
		name = protocolOption(svc.Protocol) + " " + p.anyname(ps.ap, svc.Protocol)
	default:
		name = fmt.Sprintf("%-4s %s", protocolName(svc.Protocol), p.anyname(ps.ap, svc.Protocol))
		if !ps.ap.Addr().Is6() && len(name) > 33 {
			name = name[:33]
		}
	}
	flags := schedFlags(svc)
	st := svc.Status
	switch {
	case p.format&fmtRule != 0:
		fmt.Fprintf(p.w, "-A %s -s %s", name, svc.Scheduler)
		if ps.timeout > 0 {
			fmt.Fprintf(p.w, " -p %d%s", ps.timeout, ps.rule)
		}
		if svc.OnePacket {
			fmt.Fprint(p.w, " -o")
		}
		if flags != "" {
			fmt.Fprintf(p.w, " -b %s", flags)
		}
	case p.format&fmtStats != 0:
		fmt.Fprintf(p.w, "%-33s%s%s%s%s%s", name, p.largenum(st.Stats.Connections), p.largenum(st.Stats.InPackets),
			p.largenum(st.Stats.OutPackets), p.largenum(st.Stats.InBytes), p.largenum(st.Stats.OutBytes))
	case p.format&fmtRate != 0:
		fmt.Fprintf(p.w, "%-33s%s%s%s%s%s", name, p.largenum(st.Rates.CPS), p.largenum(st.Rates.InPPS),
			p.largenum(st.Rates.OutPPS), p.largenum(st.Rates.InBPS), p.largenum(st.Rates.OutBPS))
	default:
		fmt.Fprintf(p.w, "%s %s", name, svc.Scheduler)
		if flags != "" {
			fmt.Fprintf(p.w, " (%s)", flags)
		}
		if ps.timeout > 0 {
			fmt.Fprintf(p.w, " persistent %d%s", ps.timeout, ps.mask)
		}
		if svc.OnePacket {
			fmt.Fprint(p.w, " ops")
		}
	}
	fmt.Fprint(p.w, "\n")

	dests := append([]apiclient.RealServer(nil), svc.RealServers...)
	if p.format&fmtNoSort == 0 {
		sortDests(dests)
	}
	for i := range dests {
		p.dest(svc, name, &dests[i])
	}
}

// dest prints one real server of print_service_entry.
func (p *printer) dest(svc *apiclient.Service, svcName string, rs *apiclient.RealServer) {
	ap := parseDest(rs.Address)
	dname := p.anyname(ap, svc.Protocol)
	if p.format&fmtRule == 0 && !ap.Addr().Is6() && len(dname) > 28 {
		dname = dname[:28]
	}
	st := rs.Status
	switch {
	case p.format&fmtRule != 0:
		fmt.Fprintf(p.w, "-a %s -r %s %s -w %d", svcName, dname, fwdSwitch(svc.Forwarding), rs.Weight)
		// ipvsadm does not save thresholds; govs does, so -R gets them back.
		if rs.UpperThreshold != 0 {
			fmt.Fprintf(p.w, " -x %d", rs.UpperThreshold)
		}
		if rs.LowerThreshold != 0 {
			fmt.Fprintf(p.w, " -y %d", rs.LowerThreshold)
		}
		fmt.Fprint(p.w, "\n")
	case p.format&fmtStats != 0:
		fmt.Fprintf(p.w, "  -> %-28s%s%s%s%s%s\n", dname, p.largenum(st.Stats.Connections), p.largenum(st.Stats.InPackets),
			p.largenum(st.Stats.OutPackets), p.largenum(st.Stats.InBytes), p.largenum(st.Stats.OutBytes))
	case p.format&fmtRate != 0:
		fmt.Fprintf(p.w, "  -> %-28s %8d %8d %8d%s%s\n", dname, st.Rates.CPS, st.Rates.InPPS, st.Rates.OutPPS,
			p.largenum(st.Rates.InBPS), p.largenum(st.Rates.OutBPS))
	case p.format&fmtThresholds != 0:
		fmt.Fprintf(p.w, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname, rs.UpperThreshold, rs.LowerThreshold,
			st.ActiveConnections, st.InactiveConnections)
	case p.format&fmtPersistentConn != 0:
		fmt.Fprintf(p.w, "  -> %-28s %-9d %-11d %-10d %-10d\n", dname, st.Weight, st.PersistentConnections,
			st.ActiveConnections, st.InactiveConnections)
	case p.format&fmtAgent != 0:
		fmt.Fprintf(p.w, "  -> %-28s %s\n", dname, agentColumns(st))
	case p.format&fmtTunInfo != 0:
		fmt.Fprintf(p.w, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, fwdName(svc.Forwarding), "n/a",
			st.Weight, st.ActiveConnections, st.InactiveConnections)
	default:
		fmt.Fprintf(p.w, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, fwdName(svc.Forwarding),
			st.Weight, st.ActiveConnections, st.InactiveConnections)
	}
}

// sortServices orders services as ipvsadm does (ipvs_cmp_services): by
// fwmark (address services, mark 0, first), address family, protocol,
// address and port.
func sortServices(s []apiclient.Service) {
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].FWMark != s[j].FWMark {
			return s[i].FWMark < s[j].FWMark
		}
		if s[i].FWMark != 0 {
			return s[i].Family != "ipv6" && s[j].Family == "ipv6"
		}
		a, _ := netip.ParseAddrPort(s[i].Address)
		b, _ := netip.ParseAddrPort(s[j].Address)
		if a.Addr().Is4() != b.Addr().Is4() {
			return a.Addr().Is4()
		}
		if pa, pb := protocolNumber(s[i].Protocol), protocolNumber(s[j].Protocol); pa != pb {
			return pa < pb
		}
		return a.Compare(b) < 0
	})
}

// sortDests orders real servers by address and port.
func sortDests(d []apiclient.RealServer) {
	sort.SliceStable(d, func(i, j int) bool {
		a, b := parseDest(d[i].Address), parseDest(d[j].Address)
		if a.Addr().Is4() != b.Addr().Is4() {
			return a.Addr().Is4()
		}
		return a.Compare(b) < 0
	})
}

// conns is ipvsadm's list_conn: the connection table, one entry a line
// (print_conn). ipvsadm prints the kernel's hash order; govs sorts by
// virtual service, then templates after connections, then client, so that
// the output is stable.
func (p *printer) conns(list []apiclient.Connection) {
	fmt.Fprintf(p.w, "IPVS connection entries\n")
	if p.format&fmtPersistentConn != 0 {
		fmt.Fprintf(p.w, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n", "state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(p.w, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	type row struct {
		c                 *apiclient.Connection
		client, vip, dest netip.AddrPort
	}
	rows := make([]row, 0, len(list))
	for i := range list {
		c := &list[i]
		r := row{c: c}
		var err1, err2, err3 error
		r.client, err1 = netip.ParseAddrPort(c.Client)
		r.vip, err2 = netip.ParseAddrPort(c.Virtual)
		r.dest, err3 = netip.ParseAddrPort(c.RealServer)
		if err1 != nil || err2 != nil || err3 != nil {
			continue // not from a govs that lists addresses as ADDR:PORT
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if c := a.vip.Compare(b.vip); c != 0 {
			return c < 0
		}
		if a.c.Protocol != b.c.Protocol {
			return a.c.Protocol < b.c.Protocol
		}
		if a.c.Template != b.c.Template {
			return !a.c.Template
		}
		return a.client.Compare(b.client) < 0
	})
	for _, r := range rows {
		// No govs entry carries persistence-engine data, so the pe
		// columns stay empty even with --persistent-conn, as print_conn
		// does for entries without them.
		exp := max(r.c.ExpiresSeconds, 0)
		fmt.Fprintf(p.w, "%-3s %-6s %-11s %-18s %-18s %s\n", protocolName(r.c.Protocol),
			fmt.Sprintf("%02d:%02d", exp/60, exp%60), r.c.State,
			p.anyname(r.client, r.c.Protocol), p.anyname(r.vip, r.c.Protocol), p.anyname(r.dest, r.c.Protocol))
	}
}

// sysNames resolves names as ipvsadm does: the host's resolver (files
// first) and /etc/services.
type sysNames struct {
	hosts    map[netip.Addr]string
	services map[string]string
}

func (n *sysNames) host(a netip.Addr) string {
	if name, ok := n.hosts[a]; ok {
		return name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	name := ""
	if list, err := net.DefaultResolver.LookupAddr(ctx, a.String()); err == nil && len(list) > 0 {
		name = strings.TrimSuffix(list[0], ".")
	}
	if n.hosts == nil {
		n.hosts = map[netip.Addr]string{}
	}
	n.hosts[a] = name
	return name
}

func (n *sysNames) service(port uint16, proto string) string {
	if n.services == nil {
		n.services = readServices("/etc/services")
	}
	return n.services[fmt.Sprintf("%d/%s", port, proto)]
}

// readServices maps "PORT/PROTO" to the first name /etc/services gives.
func readServices(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		if _, ok := out[fields[1]]; !ok {
			out[fields[1]] = fields[0]
		}
	}
	return out
}

// agentColumns are -L --agent's columns: what the real server's agent said
// last ("-" for what it did not say, or all "-" without an agent).
func agentColumns(st apiclient.RealServerStatus) string {
	a := st.Agent
	if a == nil {
		a = &apiclient.AgentFigures{}
	}
	i := func(v *int) string {
		if v == nil {
			return "-"
		}
		return strconv.Itoa(*v)
	}
	load, lat := "-", "-"
	if a.LoadPerCPU != nil {
		load = strconv.FormatFloat(*a.LoadPerCPU, 'f', 2, 64)
	}
	if a.LatencySeconds != nil {
		lat = time.Duration(*a.LatencySeconds * float64(time.Second)).Round(time.Microsecond).String()
	}
	return fmt.Sprintf("%-6d %-6s %-4s %-4s %-5s %-4s %-3s %-8s %s", st.Weight, i(a.WeightPercent), i(a.CPUPercent),
		i(a.MemoryPercent), load, i(a.PressurePct), i(a.IOPercent), i(a.InFlight), lat)
}
