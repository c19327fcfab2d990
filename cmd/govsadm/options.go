package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Commands, in ipvsadm's order (the rows of its option table).
const (
	cmdNone = iota
	cmdAdd
	cmdEdit
	cmdDel
	cmdFlush
	cmdList
	cmdAddDest
	cmdDelDest
	cmdEditDest
	cmdTimeout
	cmdStartDaemon
	cmdStopDaemon
	cmdRestore
	cmdSave
	cmdZero
)

var cmdNames = []string{
	"add-service", "edit-service", "delete-service", "flush", "list", "add-server", "delete-server",
	"edit-server", "set", "start-daemon", "stop-daemon", "restore", "save", "zero",
}

// Options, in ipvsadm's order (the columns of its option table).
const (
	optNumeric = iota
	optConnection
	optService
	optScheduler
	optPersistent
	optNetmask
	optServer
	optForward
	optWeight
	optUThreshold
	optLThreshold
	optMcast
	optTimeout
	optDaemon
	optStats
	optRate
	optThresholds
	optPersistentConn
	optNoSort
	optSyncID
	optExact
	optOnePacket
	optPE
	optSchedFlags
	optMcastGroup
	optMcastPort
	optMcastTTL
	optSyncMaxLen
	optTunInfo
	optTunType
	optTunPort
	optTunNoCsum
	optTunCsum
	optTunRemCsum
	optAgent     // govs: -L --agent, the real servers' agent figures
	optDiscovery // govs: -L --discovery, the discovery sources' status
	numOpts
)

var optNames = []string{
	"numeric", "connection", "service-address", "scheduler", "persistent", "netmask", "real-server",
	"forwarding-method", "weight", "u-threshold", "l-threshold", "mcast-interface", "timeout", "daemon",
	"stats", "rate", "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type",
	"tun-port", "tun-nocsum", "tun-csum", "tun-remcsum", "agent", "discovery",
}

// cmdVsOpts is ipvsadm's table of legal combinations of commands and
// options: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional. One
// row per command, one column per option.
var cmdVsOpts = [...]string{
	cmdAdd - 1:         "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx",
	cmdEdit - 1:        "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx",
	cmdDel - 1:         "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdFlush - 1:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdList - 1:        " 11xxxxxxxxx11       xxxxxxx xxxxx 1",
	cmdAddDest - 1:     "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	cmdDelDest - 1:     "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdEditDest - 1:    "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	cmdTimeout - 1:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdStartDaemon - 1: "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx",
	cmdStopDaemon - 1:  "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx",
	cmdRestore - 1:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdSave - 1:        " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	cmdZero - 1:        "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// Listing formats.
const (
	fmtNumeric = 1 << iota
	fmtRule
	fmtStats
	fmtRate
	fmtThresholds
	fmtPersistentConn
	fmtNoSort
	fmtExact
	fmtTunInfo
	fmtAgent
)

// Forwarding methods as ipvsadm's switches name them, plus govs's own.
const (
	fwdDefault = ""        // none given: the service's
	fwdMasq    = "masq"    // -m: nat
	fwdGate    = "gate"    // -g: direct routing (dr)
	fwdTunnel  = "ipip"    // -i: tunnelling, not supported
	fwdProxy   = "proxy"   // --proxy (govs)
	fwdFullNAT = "fullnat" // --fullnat (govs)
)

// service is a virtual service named on the command line.
type service struct {
	proto     string // "tcp" or "udp"
	addr      netip.Addr
	port      uint16
	fwmark    bool   // -f: a firewall-mark service
	mark      uint32 // -f's mark
	v6        bool   // -6: the fwmark service's family is IPv6
	sched     string
	persist   bool
	timeout   uint
	netmask   string // as given to -M, checked
	onePacket bool
	flags     []string // -b, as govs's scheduler_flags
}

// dest is a real server named on the command line.
type dest struct {
	addr      netip.Addr
	port      uint16
	hasPort   bool
	fwd       string
	weight    int
	uthresh   int
	lthresh   int
	hasUpper  bool
	hasLower  bool
	hasWeight bool
}

// entry is one parsed command line.
type entry struct {
	cmd         int
	options     uint64
	format      uint
	svc         service
	dest        dest
	unsupported string // an accepted option govs cannot serve
	timeouts    [3]int // --set tcp tcpfin udp, seconds; 0 leaves one unchanged
	daemon      daemonArgs
}

// daemonArgs are --start-daemon's and --stop-daemon's: the role, and the
// interface and sync_id overriding the configuration's (syncID -1: none).
type daemonArgs struct {
	role, iface string
	syncID      int
}

// failure ends govsadm with a message and an exit status, as ipvsadm's
// fail(): parse errors exit 2; a refused operation exits 255 (ipvsadm
// returns -1).
type failure struct {
	code int
	msg  string
}

func (f *failure) Error() string { return f.msg }

func fail(code int, format string, args ...any) *failure {
	return &failure{code, fmt.Sprintf(format, args...)}
}

// optDef is one of ipvsadm's options.
type optDef struct {
	long  string
	short byte
	arg   int // 0 none, 1 required, 2 optional
	tag   string
}

var optDefs = []optDef{
	{"add-service", 'A', 0, "A"}, {"edit-service", 'E', 0, "E"}, {"delete-service", 'D', 0, "D"},
	{"clear", 'C', 0, "C"}, {"list", 'L', 0, "L"}, {"", 'l', 0, "L"}, {"zero", 'Z', 0, "Z"},
	{"add-server", 'a', 0, "a"}, {"edit-server", 'e', 0, "e"}, {"delete-server", 'd', 0, "d"},
	{"set", 0, 0, "set"}, {"help", 'h', 0, "h"}, {"version", 'v', 0, "v"}, {"restore", 'R', 0, "R"},
	{"save", 'S', 0, "S"}, {"start-daemon", 0, 1, "start-daemon"}, {"stop-daemon", 0, 1, "stop-daemon"},
	{"tcp-service", 't', 1, "t"}, {"udp-service", 'u', 1, "u"}, {"sctp-service", 0, 1, "sctp"},
	{"fwmark-service", 'f', 1, "f"}, {"scheduler", 's', 1, "s"}, {"persistent", 'p', 2, "p"},
	{"netmask", 'M', 1, "M"}, {"real-server", 'r', 1, "r"}, {"masquerading", 'm', 0, "m"},
	{"ipip", 'i', 0, "i"}, {"gatewaying", 'g', 0, "g"}, {"weight", 'w', 1, "w"},
	{"u-threshold", 'x', 1, "x"}, {"l-threshold", 'y', 1, "y"}, {"numeric", 'n', 0, "n"},
	{"connection", 'c', 0, "c"}, {"mcast-interface", 0, 1, "mcast-interface"}, {"syncid", 0, 1, "syncid"},
	{"timeout", 0, 0, "timeout"}, {"daemon", 0, 0, "daemon"}, {"stats", 0, 0, "stats"}, {"rate", 0, 0, "rate"},
	{"thresholds", 0, 0, "thresholds"}, {"persistent-conn", 0, 0, "persistent-conn"},
	{"nosort", 0, 0, "nosort"}, {"sort", 0, 0, "sort"}, {"exact", 'X', 0, "X"}, {"ipv6", '6', 0, "6"},
	{"ops", 'o', 0, "o"}, {"pe", 0, 1, "pe"}, {"sched-flags", 'b', 1, "b"},
	{"mcast-group", 0, 1, "mcast-group"}, {"mcast-port", 0, 1, "mcast-port"}, {"mcast-ttl", 0, 1, "mcast-ttl"},
	{"sync-maxlen", 0, 1, "sync-maxlen"}, {"tun-info", 0, 0, "tun-info"}, {"tun-type", 0, 1, "tun-type"},
	{"tun-port", 0, 1, "tun-port"}, {"tun-nocsum", 0, 0, "tun-nocsum"}, {"tun-csum", 0, 0, "tun-csum"},
	{"tun-remcsum", 0, 0, "tun-remcsum"},
	// govs: forwarding methods ipvsadm has no switch for.
	{"proxy", 0, 0, "proxy"}, {"fullnat", 0, 0, "fullnat"},
	// govs: the agents' figures (docs/agent.md).
	{"agent", 0, 0, "agent"},
	// govs: the discovery sources' status (docs/discovery.md).
	{"discovery", 0, 0, "discovery"},
}

// token is one option as found on the command line.
type token struct {
	def  *optDef
	arg  string
	text string // as written, for messages
}

// scan splits args (without the program name) into options and leftover
// arguments the way popt does: clustered short options (-Ln), attached or
// separate arguments (-t1.2.3.4:80, -t 1.2.3.4:80, --tcp-service=...),
// and -p's optional timeout.
func scan(args []string) (toks []token, rest []string, err *failure) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			return toks, rest, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			d := findLong(name)
			if d == nil {
				return toks, rest, fail(255, "%s: unknown option", a)
			}
			t := token{def: d, text: "--" + name}
			switch {
			case d.arg == 0 && hasVal:
				return toks, rest, fail(255, "%s: option does not take an argument", a)
			case d.arg != 0 && hasVal:
				t.arg = val
			case d.arg == 1:
				if i+1 >= len(args) {
					return toks, rest, fail(255, "%s: missing argument", a)
				}
				i++
				t.arg = args[i]
			case d.arg == 2 && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
				i++
				t.arg = args[i]
			}
			toks = append(toks, t)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				d := findShort(a[j])
				if d == nil {
					return toks, rest, fail(255, "-%c: unknown option", a[j])
				}
				t := token{def: d, text: "-" + string(a[j])}
				if d.arg != 0 {
					switch {
					case j+1 < len(a):
						t.arg = a[j+1:]
					case d.arg == 1 && i+1 < len(args):
						i++
						t.arg = args[i]
					case d.arg == 1:
						return toks, rest, fail(255, "-%c: missing argument", a[j])
					case d.arg == 2 && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
						i++
						t.arg = args[i]
					}
					toks = append(toks, t)
					break
				}
				toks = append(toks, t)
			}
		default:
			rest = append(rest, a)
		}
	}
	return toks, rest, nil
}

func findLong(name string) *optDef {
	for i := range optDefs {
		if optDefs[i].long == name && name != "" {
			return &optDefs[i]
		}
	}
	return nil
}

func findShort(c byte) *optDef {
	for i := range optDefs {
		if optDefs[i].short == c {
			return &optDefs[i]
		}
	}
	return nil
}

// usageError is ipvsadm's tryhelp_exit: the command line has no command.
type usageError struct{}

func (usageError) Error() string { return "usage" }

// parse parses one command line (without the program name) as ipvsadm's
// parse_options and process_options do, checking the combinations of
// commands and options. It returns a *failure, usageError, or a help or
// version request as the command "h" or "v".
func parse(args []string) (*entry, string, error) {
	toks, rest, ferr := scan(args)
	if len(toks) == 0 {
		return nil, "", usageError{}
	}
	e := &entry{dest: dest{weight: 1}}
	first := toks[0]
	switch first.def.tag {
	case "A":
		e.cmd = cmdAdd
	case "E":
		e.cmd = cmdEdit
	case "D":
		e.cmd = cmdDel
	case "a":
		e.cmd = cmdAddDest
	case "e":
		e.cmd = cmdEditDest
	case "d":
		e.cmd = cmdDelDest
	case "C":
		e.cmd = cmdFlush
	case "L":
		e.cmd = cmdList
	case "Z":
		e.cmd = cmdZero
	case "set":
		e.cmd = cmdTimeout
	case "R":
		e.cmd = cmdRestore
	case "S":
		e.cmd = cmdSave
	case "start-daemon":
		e.cmd = cmdStartDaemon
		if first.arg != "master" && first.arg != "backup" {
			return nil, "", fail(2, "illegal start-daemon parameter specified")
		}
		e.daemon = daemonArgs{role: first.arg, syncID: -1}
	case "stop-daemon":
		e.cmd = cmdStopDaemon
		if first.arg != "master" && first.arg != "backup" {
			return nil, "", fail(2, "illegal start_daemon specified")
		}
		e.daemon = daemonArgs{role: first.arg, syncID: -1}
	case "h", "v":
		return nil, first.def.tag, nil
	default:
		return nil, "", usageError{}
	}
	var schedFlags, netmask string
	netmaskV6 := false
	for _, t := range toks[1:] {
		if err := e.option(t, &schedFlags, &netmask, &netmaskV6); err != nil {
			return nil, "", err
		}
	}
	if ferr != nil {
		return nil, "", ferr
	}
	if e.cmd == cmdTimeout {
		if len(rest) < 3 {
			return nil, "", fail(2, "--set option requires 3 timeout values")
		}
		for i, v := range rest[:3] {
			// As ipvsadm: whole seconds up to 31 days, 0 for unchanged.
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 86400*31 {
				return nil, "", fail(2, "invalid timeout value `%s' specified", v)
			}
			e.timeouts[i] = n
		}
		rest = rest[3:]
	}
	if len(rest) > 0 {
		return nil, "", fail(2, "unexpected argument %s", rest[0])
	}
	if schedFlags != "" {
		flags, err := parseSchedFlags(e.svc.sched, schedFlags)
		if err != nil {
			return nil, "", err
		}
		e.svc.flags = flags
	}
	if e.options&(1<<optNetmask) != 0 {
		if netmaskV6 {
			n, err := strconv.Atoi(netmask)
			if err != nil || n < 1 || n > 128 {
				return nil, "", fail(2, "illegal ipv6 netmask specified")
			}
		} else if _, ok := parseNetmask(netmask); !ok {
			return nil, "", fail(2, "illegal virtual server persistent mask specified")
		}
		e.svc.netmask = netmask
	}
	if err := e.check(); err != nil {
		return nil, "", err
	}
	return e, "", nil
}

// option handles one option after the command.
func (e *entry) option(t token, schedFlags, netmask *string, netmaskV6 *bool) error {
	set := func(o int) error {
		if e.options&(1<<o) != 0 {
			return fail(2, "multiple '%s' options specified", optNames[o])
		}
		e.options |= 1 << o
		return nil
	}
	var err error
	switch t.def.tag {
	case "t", "u", "sctp":
		if err = set(optService); err != nil {
			return err
		}
		e.svc.proto = map[string]string{"t": "tcp", "u": "udp", "sctp": "sctp"}[t.def.tag]
		addr, port, res := parseService(t.arg, e.svc.proto)
		if res&serviceAddr == 0 {
			return fail(2, "illegal virtual server address[:port] specified")
		}
		e.svc.addr, e.svc.port = addr, port
		if t.def.tag == "sctp" {
			e.unsupported = "SCTP virtual services are not supported by govs"
		}
	case "f":
		if err = set(optService); err != nil {
			return err
		}
		// As ipvsadm's parse_fwmark: decimal, 1 to 2^32-1; the protocol
		// is set to a sane value though a fwmark service does not use it.
		n, perr := strconv.ParseUint(t.arg, 10, 32)
		if perr != nil || n == 0 {
			return fail(2, "invalid fwmark value `%s' specified", t.arg)
		}
		e.svc.proto, e.svc.fwmark, e.svc.mark = "tcp", true, uint32(n)
	case "s":
		err = set(optScheduler)
		e.svc.sched = t.arg
	case "p":
		err = set(optPersistent)
		e.svc.persist = true
		e.svc.timeout = 300 // IPVS_SVC_PERSISTENT_TIMEOUT
		if t.arg != "" {
			n, ok := stringToNumber(t.arg, 1, 86400*31)
			if !ok {
				return fail(2, "invalid timeout value `%s' specified", t.arg)
			}
			e.svc.timeout = uint(n)
		}
	case "M":
		err = set(optNetmask)
		*netmask = t.arg
		*netmaskV6 = e.svc.addr.Is6() || e.svc.v6
	case "r":
		if err = set(optServer); err != nil {
			return err
		}
		addr, port, res := parseService(t.arg, e.svc.proto)
		if res&serviceAddr == 0 {
			return fail(2, "illegal real server address[:port] specified")
		}
		e.dest.addr, e.dest.port, e.dest.hasPort = addr, port, res&servicePort != 0
	case "i", "g", "m", "proxy", "fullnat":
		err = set(optForward)
		e.dest.fwd = map[string]string{"i": fwdTunnel, "g": fwdGate, "m": fwdMasq, "proxy": fwdProxy, "fullnat": fwdFullNAT}[t.def.tag]
	case "w":
		err = set(optWeight)
		n, ok := stringToNumber(t.arg, 0, 65535)
		if !ok {
			return fail(2, "illegal weight specified")
		}
		e.dest.weight, e.dest.hasWeight = n, true
	case "x":
		err = set(optUThreshold)
		n, ok := stringToNumber(t.arg, 0, 1<<31-1)
		if !ok {
			return fail(2, "illegal u_threshold specified")
		}
		e.dest.uthresh, e.dest.hasUpper = n, true
	case "y":
		err = set(optLThreshold)
		n, ok := stringToNumber(t.arg, 0, 1<<31-1)
		if !ok {
			return fail(2, "illegal l_threshold specified")
		}
		e.dest.lthresh, e.dest.hasLower = n, true
	case "c":
		err = set(optConnection)
	case "n":
		err = set(optNumeric)
		e.format |= fmtNumeric
	case "timeout":
		err = set(optTimeout)
	case "daemon":
		err = set(optDaemon)
	case "stats":
		err = set(optStats)
		e.format |= fmtStats
	case "rate":
		err = set(optRate)
		e.format |= fmtRate
	case "thresholds":
		err = set(optThresholds)
		e.format |= fmtThresholds
	case "persistent-conn":
		err = set(optPersistentConn)
		e.format |= fmtPersistentConn
	case "nosort":
		err = set(optNoSort)
		e.format |= fmtNoSort
	case "sort": // the default; accepted for compatibility
	case "X":
		err = set(optExact)
		e.format |= fmtExact
	case "6":
		if !e.svc.fwmark {
			return fail(2, "-6 used before -f\n")
		}
		e.svc.v6 = true
	case "o":
		err = set(optOnePacket)
		e.svc.onePacket = true
	case "pe":
		err = set(optPE)
		e.unsupported = "persistence engines (--pe) are not supported by govs"
	case "b":
		err = set(optSchedFlags)
		*schedFlags = t.arg
	case "mcast-interface":
		err = set(optMcast)
		e.daemon.iface = t.arg
	case "syncid":
		err = set(optSyncID)
		n, ok := stringToNumber(t.arg, 0, 255)
		if !ok {
			return fail(2, "illegal syncid specified")
		}
		e.daemon.syncID = n
	// The sync's group, port, message size and TTL are the configuration's
	// (docs/sync.md): refused rather than silently ignored.
	case "mcast-group":
		err = set(optMcastGroup)
		e.unsupported = "--mcast-group: govs takes the sync's group (or unicast peers) from the sync section of its configuration (docs/sync.md)"
	case "mcast-port":
		err = set(optMcastPort)
		if _, ok := stringToNumber(t.arg, 1, 65535); !ok {
			return fail(2, "illegal mcast-port specified")
		}
		e.unsupported = "--mcast-port: govs takes the sync's port from the sync section of its configuration (docs/sync.md)"
	case "mcast-ttl":
		err = set(optMcastTTL)
		if _, ok := stringToNumber(t.arg, 1, 255); !ok {
			return fail(2, "illegal mcast-ttl specified")
		}
		e.unsupported = "--mcast-ttl: govs sends the sync with TTL 1, to its own link only (docs/sync.md)"
	case "sync-maxlen":
		err = set(optSyncMaxLen)
		if _, ok := stringToNumber(t.arg, 1, 65535-20-8); !ok {
			return fail(2, "illegal sync-maxlen specified")
		}
		e.unsupported = "--sync-maxlen: govs sizes sync messages to the interface's MTU (docs/sync.md)"
	case "agent":
		err = set(optAgent)
		e.format |= fmtAgent
	case "discovery":
		err = set(optDiscovery)
	case "tun-info":
		err = set(optTunInfo)
		e.format |= fmtTunInfo
	case "tun-type":
		err = set(optTunType)
		if t.arg != "ipip" && t.arg != "gue" {
			return fail(2, "illegal tunnel type specified")
		}
	case "tun-port":
		err = set(optTunPort)
		if _, ok := stringToNumber(t.arg, 1, 65535); !ok {
			return fail(2, "illegal tunnel port specified")
		}
	case "tun-nocsum":
		err = set(optTunNoCsum)
	case "tun-csum":
		err = set(optTunCsum)
	case "tun-remcsum":
		err = set(optTunRemCsum)
	default:
		return fail(2, "invalid option `%s'", t.text)
	}
	return err
}

// check is ipvsadm's generic_opt_check and the checks of process_options.
func (e *entry) check() error {
	row := cmdVsOpts[e.cmd-1]
	last, count := 0, 0
	for j := 0; j < numOpts; j++ {
		has := e.options&(1<<j) != 0
		switch {
		case !has && row[j] == '+':
			return fail(2, "You need to supply the '%s' option for the '%s' command", optNames[j], cmdNames[e.cmd-1])
		case has && row[j] == 'x':
			return fail(2, "Illegal '%s' option with the '%s' command", optNames[j], cmdNames[e.cmd-1])
		case has && row[j] == '1':
			count++
			if count == 1 {
				last = j
				continue
			}
			return fail(2, "The option '%s' conflicts with the '%s' option in the '%s' command", optNames[j], optNames[last], cmdNames[e.cmd-1])
		}
	}
	switch e.cmd {
	case cmdAdd, cmdEdit:
		if !e.svc.fwmark && e.svc.port == 0 && !e.svc.persist {
			return fail(2, "Zero port specified for non-persistent service")
		}
		if e.svc.onePacket && !e.svc.fwmark && e.svc.proto != "udp" {
			return fail(2, "One-Packet Scheduling is only for UDP virtual services")
		}
		if e.svc.sched == "" {
			e.svc.sched = "wlc"
		}
	case cmdAddDest, cmdEditDest:
		svc4 := e.svc.addr.Is4()
		if e.svc.fwmark {
			svc4 = !e.svc.v6 // a fwmark service's family is -6's
		}
		if e.dest.addr.Is4() != svc4 && e.dest.fwd != fwdTunnel {
			return fail(2, "Different address family is allowed only for tunneling servers")
		}
		if e.options&(1<<optTunType|1<<optTunPort|1<<optTunNoCsum|1<<optTunCsum|1<<optTunRemCsum) != 0 && e.dest.fwd != fwdTunnel {
			return fail(2, "Tunnel options conflict with forward method")
		}
	case cmdList:
		if e.options&(1<<optConnection|1<<optTimeout|1<<optDaemon|1<<optDiscovery) != 0 &&
			e.options&(1<<optStats|1<<optRate|1<<optThresholds|1<<optAgent) != 0 ||
			e.options&(1<<optTimeout|1<<optDaemon|1<<optDiscovery) != 0 && e.options&(1<<optPersistentConn) != 0 {
			return fail(2, "options conflicts in the list command")
		}
	}
	return nil
}

// stringToNumber is ipvsadm's string_to_number: a whole decimal number in
// [min, max].
func stringToNumber(s string, min, max int) (int, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < int64(min) || n > int64(max) {
		return 0, false
	}
	return int(n), true
}

const (
	serviceAddr = 1
	servicePort = 2
)

// parseService is ipvsadm's parse_service: host[:port], [v6addr]:port or
// v6addr, with host and service names resolved.
func parseService(buf, proto string) (netip.Addr, uint16, int) {
	if buf == "" || isDigits(buf) {
		return netip.Addr{}, 0, 0
	}
	host, port, hasPort := buf, "", false
	if strings.HasPrefix(buf, "[") {
		end := strings.IndexByte(buf, ']')
		if end < 0 || !strings.HasPrefix(buf[end+1:], ":") {
			return netip.Addr{}, 0, 0
		}
		host, port, hasPort = buf[1:end], buf[end+2:], true
	}
	var addr netip.Addr
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		addr = a
	} else {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host, port, hasPort = host[:i], host[i+1:], true
		} else if strings.HasPrefix(buf, "[") {
			hasPort = false // as ipvsadm: "[v4]:port" loses its port
		}
		a, err := netip.ParseAddr(host)
		switch {
		case err == nil && a.Is4():
			addr = a
		case err == nil:
			return netip.Addr{}, 0, 0
		default:
			ips, err := net.LookupIP(host)
			for _, ip := range ips {
				if v4 := ip.To4(); v4 != nil && err == nil {
					addr = netip.AddrFrom4([4]byte(v4))
					break
				}
			}
			if !addr.IsValid() {
				return netip.Addr{}, 0, 0
			}
		}
	}
	res := serviceAddr
	var p uint16
	if hasPort {
		res |= servicePort
		if n, ok := stringToNumber(port, 0, 65535); ok {
			p = uint16(n)
		} else if n, err := net.LookupPort(proto, port); err == nil && proto != "" {
			p = uint16(n)
		} else {
			return netip.Addr{}, 0, 0
		}
	}
	return addr, p, res
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseNetmask parses a dotted IPv4 netmask (or a host name, as
// inet_aton and gethostbyname would).
func parseNetmask(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err == nil && a.Is4() {
		return a, true
	}
	return netip.Addr{}, false
}

// parseSchedFlags is ipvsadm's parse_sched_flags, giving govs's
// scheduler_flags: flag-1 and flag-2 of sh and mh are their fallback and
// port flags.
func parseSchedFlags(sched, arg string) ([]string, error) {
	if sched == "" {
		sched = "wlc"
	}
	var out []string
	for _, f := range strings.Split(arg, ",") {
		if f == "" {
			continue
		}
		switch f {
		case "flag-1", "flag-2", "flag-3":
			switch {
			case (sched == "sh" || sched == "mh") && f == "flag-1":
				out = append(out, sched+"-fallback")
			case (sched == "sh" || sched == "mh") && f == "flag-2":
				out = append(out, sched+"-port")
			default:
				out = append(out, f) // govs rejects it for this scheduler
			}
		case "sh-fallback", "sh-port":
			if sched != "sh" {
				return nil, fail(2, "incompatible scheduler flag `%s'", f)
			}
			out = append(out, f)
		case "mh-fallback", "mh-port":
			if sched != "mh" {
				return nil, fail(2, "incompatible scheduler flag `%s'", f)
			}
			out = append(out, f)
		default:
			return nil, fail(2, "invalid scheduler flag `%s'", f)
		}
	}
	return out, nil
}
