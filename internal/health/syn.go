package health

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The SYN probe: the tcp check's half-open mode, when the director may
// open a raw socket (root, or CAP_NET_RAW).
//
// A probe is one SYN sent from a raw IPPROTO_TCP socket (one per address
// family, shared by every check of the process), from a source port in a
// range that the kernel does not hand to its own sockets (above or below
// net.ipv4.ip_local_port_range). The real server answers SYN-ACK if the
// port listens (up) or RST if not (down); no answer by the check's timeout
// is down too. The raw socket sees a copy of the answer; the kernel's own
// TCP, which owns no socket on that port, answers the SYN-ACK with a RST,
// which ends the half-open connection on the real server: a check costs
// three packets and no handshake, no socket, no file descriptor, no
// goroutine and no timer (its timeout is a slot in the Runner's wheel).
// There is no reader goroutine either: the Runner's loop, which wakes
// every tick while it has checks due or probes out, reads the answers
// queued on the socket (synread.go) and matches them to the outstanding
// probes by (real server, port, source port) and acknowledgment number.
// The kernel stamps each answer with its arrival time (SO_TIMESTAMPNS),
// so a check's latency is the network's, not the loop's.
//
// The raw socket is given a BPF filter, so that of all the TCP packets the
// host receives only SYN-ACKs and RSTs to the probes' port range are
// queued to it.
//
// The socket is IPPROTO_TCP without IP_HDRINCL (no AF_PACKET): the kernel
// builds the IP header, routes the SYN and chooses its source address, so
// probes work in any namespace and through any route, and netfilter sees
// them as locally sent packets (OUTPUT and POSTROUTING, never PREROUTING,
// where govs's DNAT to real servers lives). The TCP checksum covers the
// source address, so for IPv4 the checker looks the route's source up once
// (a connected UDP socket's address, again after a failure); for IPv6 the
// kernel computes it (IPV6_CHECKSUM).
//
// Without root (EPERM) or when the socket cannot be opened, or with
// GOVS_HEALTH_TCP=connect in the environment, the tcp check connects, as
// before; the reason is logged once.

// asyncChecker is a check that waits for its answer without a goroutine.
type asyncChecker interface {
	// ready is false when the check must run as a Checker instead.
	ready() bool
	// begin stages try gen of job j's check in b, which the Runner's loop
	// sends; its answer comes back through j's Runner's answer (the loop
	// reads it, synread.go), or its timeout through the wheel. An error
	// is a failed check.
	begin(j *Job, gen uint32, b *synBatch) error
	// cancel forgets j's outstanding probe, if any; timedOut says it
	// timed out (called from the Runner's loop, like ready and begin).
	cancel(j *Job, timedOut bool)
}

// synProber is a family's raw socket and its outstanding probes.
type synProber struct {
	v4 bool
	// fd is the raw socket, non-blocking and not in Go's poller: the
	// Runner's loop reads it when it looks (an fd in the poller would
	// wake the poller's thread at every answer for nobody).
	fd     int
	icmp   int         // the raw ICMP socket for unreachables (synicmp.go); -1: none
	closed atomic.Bool // set before fd closes: no loop reads it then
	lo, hi uint16
	// route is the source address of the route to a target (routeSource;
	// a test's looks in its namespace).
	route func(netip.AddrPort) (netip.Addr, error)

	mu sync.Mutex
	m  matcher
}

var (
	probers  [2]*synProber // IPv4, IPv6; nil: connect instead
	proberMu sync.Mutex
	proberOK [2]bool // tried
)

// proberFor is the family's prober, opened on first use; nil means
// connect.
func proberFor(v4 bool) *synProber {
	i := 1
	if v4 {
		i = 0
	}
	proberMu.Lock()
	defer proberMu.Unlock()
	if !proberOK[i] {
		proberOK[i] = true
		p, err := openProber(v4)
		if err != nil {
			slog.Info("health: tcp checks connect (no SYN probes)", "family", map[bool]string{true: "ipv4", false: "ipv6"}[v4], "reason", err.Error())
		} else {
			probers[i] = p
		}
	}
	return probers[i]
}

// openProber opens the family's raw socket, with its port range and filter.
func openProber(v4 bool) (*synProber, error) {
	if m := os.Getenv("GOVS_HEALTH_TCP"); m == "connect" {
		return nil, errors.New("GOVS_HEALTH_TCP=connect")
	}
	lo, hi, err := probePorts()
	if err != nil {
		return nil, err
	}
	family := unix.AF_INET6
	if v4 {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	p := &synProber{v4: v4, fd: fd, icmp: -1, lo: lo, hi: hi, m: newMatcher(), route: routeSource}
	if err := p.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := p.openICMP(); err != nil {
		// Probes work without: a server behind an unreachable goes down
		// at its timeout.
		slog.Info("health: ICMP unreachables not read for SYN probes", "family", map[bool]string{true: "ipv4", false: "ipv6"}[v4], "reason", err.Error())
	}
	return p, nil
}

// openICMP opens the raw ICMP socket that reads the unreachables quoting
// the probes.
func (p *synProber) openICMP() error {
	family, proto := unix.AF_INET6, unix.IPPROTO_ICMPV6
	if p.v4 {
		family, proto = unix.AF_INET, unix.IPPROTO_ICMP
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("raw ICMP socket: %w", err)
	}
	filter, err := assemble(unreachProgram(p.v4, p.lo, p.hi))
	if err == nil {
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		err = unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("ICMP filter: %w", err)
	}
	p.icmp = fd
	return nil
}

// setup gives the raw socket its filter, buffer, timestamps and (IPv6)
// checksum offload.
func (p *synProber) setup() error {
	filter, err := replyFilter(p.v4, p.lo, p.hi)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(p.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	// Room for the answers of a few ticks (the loop reads them once a
	// tick), and for a tick's burst of SYNs until the device has sent
	// them. As root the FORCE options pass net.core.[rw]mem_max;
	// otherwise the kernel caps the sizes there.
	setBuf(p.fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 4<<20)
	setBuf(p.fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, 1<<20)
	// The answers' arrival time: the loop reads them up to a tick late.
	if err := unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	if !p.v4 {
		// The kernel computes (and checks) the checksum at offset 16.
		if err := unix.SetsockoptInt(p.fd, unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16); err != nil {
			return fmt.Errorf("IPV6_CHECKSUM: %w", err)
		}
	}
	return nil
}

// setBuf sets a socket buffer's size with force (CAP_NET_ADMIN), or
// else as far as the sysctl lets it.
func setBuf(fd, force, opt, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, size)
	}
}

// close closes the raw socket (tests: the process's probers stay open).
func (p *synProber) close() {
	p.closed.Store(true)
	unix.Close(p.fd)
	if p.icmp >= 0 {
		unix.Close(p.icmp)
	}
}

// probePorts is the source port range of the probes: the ports above the
// kernel's ephemeral ports (61000-65535 by default), or those below them
// (1024 and up) if too few are above, so that no connection of the
// kernel's uses a probe's port. A probe's key includes the real server's
// address and port, so a few hundred ports are plenty.
func probePorts() (lo, hi uint16, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range: %q", b)
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("ip_local_port_range: %w", err)
	}
	return portsOutside(elo, ehi)
}

// portsOutside picks the probe range outside the ephemeral range [elo, ehi].
func portsOutside(elo, ehi int) (lo, hi uint16, err error) {
	above, below := 65535-ehi, elo-1024
	switch {
	case above >= 256: // above first: fewer servers listen up there
		return uint16(ehi + 1), 65535, nil
	case below >= 256:
		return 1024, uint16(elo - 1), nil
	}
	return 0, 0, fmt.Errorf("ip_local_port_range %d-%d leaves no port range for SYN probes", elo, ehi)
}

// replyFilter is a classic BPF program that accepts only SYN-ACKs and
// RSTs to a port in [lo, hi]: the raw socket would otherwise get a copy of
// every TCP packet the host receives.
func replyFilter(v4 bool, lo, hi uint16) ([]unix.SockFilter, error) {
	return assemble(replyProgram(v4, lo, hi))
}

// assemble is a classic BPF program in the kernel's form.
func assemble(prog []bpf.Instruction) ([]unix.SockFilter, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, err
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}

// replyProgram is replyFilter's program, before assembly (the tests run
// it in x/net/bpf's VM).
func replyProgram(v4 bool, lo, hi uint16) []bpf.Instruction {
	var prog []bpf.Instruction
	if v4 {
		// X = IP header length; then TCP fields at X+off.
		prog = append(prog,
			bpf.LoadMemShift{Off: 0},
			bpf.LoadIndirect{Off: 2, Size: 2},
		)
	} else {
		prog = append(prog, bpf.LoadAbsolute{Off: 2, Size: 2})
	}
	// A = destination port.
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: uint32(lo), SkipTrue: 7},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(hi), SkipTrue: 6},
	)
	if v4 {
		prog = append(prog, bpf.LoadIndirect{Off: 13, Size: 1})
	} else {
		prog = append(prog, bpf.LoadAbsolute{Off: 13, Size: 1})
	}
	prog = append(prog,
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: tcpRST, SkipTrue: 3},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpSYN | tcpACK},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: tcpSYN | tcpACK, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff}, // accept (RST lands here too)
		bpf.RetConstant{Val: 0},      // wrong port
	)
	return prog
}

// synBatch is the SYNs that the Runner's loop sends with one sendmmsg per
// prober: the checks due in a tick leave together, and their answers wake
// the reader about once, not once each.
type synBatch struct {
	ents  []synEnt
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family's
}

type synEnt struct {
	p   *synProber
	j   *Job
	gen uint32
	dst netip.Addr
	pkt [synLen]byte
}

// stage registers a probe of j to dst from src (src matters for IPv4's
// checksum only) and queues its SYN in b; registered before it is sent,
// so that no answer can beat it. next is the check's own source port
// counter (0: start anywhere): each check walks the whole range before it
// uses a port again, so that a probe's four-tuple comes back to its real
// server thousands of probes later, long after the server has forgotten
// the last one (a SYN that finds the half-open connection of an earlier
// probe still there, its RST late or lost, gets no SYN-ACK of its own).
func (p *synProber) stage(b *synBatch, j *Job, gen uint32, src netip.Addr, dst netip.AddrPort, next *uint16) error {
	seq := rand.Uint32()
	if *next < p.lo || *next > p.hi {
		*next = p.lo + uint16(rand.N(int(p.hi-p.lo)+1))
	}
	p.mu.Lock()
	k := keyOf(dst.Addr(), dst.Port(), 0)
	for range int(p.hi-p.lo) + 1 {
		k.lport = *next
		if *next == p.hi {
			*next = p.lo
		} else {
			*next++
		}
		if p.m.add(k, outstanding{j: j, gen: gen, seq: seq}) {
			j.pkey, j.pset = k, true
			break
		}
		k.lport = 0
	}
	p.mu.Unlock()
	if k.lport == 0 {
		return errors.New("no free source port")
	}
	b.ents = append(b.ents, synEnt{p: p, j: j, gen: gen, dst: dst.Addr()})
	buildSYN(b.ents[len(b.ents)-1].pkt[:], src, dst.Addr(), k.lport, dst.Port(), seq)
	return nil
}

// flush sends the staged SYNs; fail is told of each that could not be
// sent (its probe is forgotten). SYNs that the socket has no room for now
// (EAGAIN, ENOBUFS: a burst fills the send buffer faster than the device
// drains it) stay staged for the next flush: the director's own
// congestion is no real server's failure, and a probe not sent by its
// check's timeout times out as any other.
func (b *synBatch) flush(fail func(j *Job, gen uint32, err error)) {
	kept := 0
	for start := 0; start < len(b.ents); {
		end := start + 1
		for end < len(b.ents) && b.ents[end].p == b.ents[start].p {
			end++
		}
		sent := b.send(b.ents[start:end], fail)
		kept += copy(b.ents[kept:], b.ents[start+sent:end])
		start = end
	}
	clear(b.ents[kept:])
	b.ents = b.ents[:kept]
}

// send sends ents, all of one prober, with sendmmsg, and returns how many
// left or failed; the rest found no room in the socket.
func (b *synBatch) send(ents []synEnt, fail func(j *Job, gen uint32, err error)) int {
	n := len(ents)
	if cap(b.hdrs) < n {
		b.hdrs, b.iovs, b.names = make([]unix.Mmsghdr, n), make([]unix.Iovec, n), make([]unix.RawSockaddrInet6, n)
	}
	hdrs, iovs, names := b.hdrs[:n], b.iovs[:n], b.names[:n]
	p := ents[0].p
	for i := range ents {
		e := &ents[i]
		iovs[i] = unix.Iovec{Base: &e.pkt[0]}
		iovs[i].SetLen(synLen)
		hdrs[i] = unix.Mmsghdr{}
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
		hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		if p.v4 {
			sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&names[i]))
			*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: e.dst.As4()}
			hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		} else {
			names[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: e.dst.As16()}
			hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		}
	}
	off := 0
	for off < n {
		// A raw system call: the socket never blocks (MSG_DONTWAIT), so
		// the goroutine keeps its P, and the runtime's monitor has no
		// system call to retake it from.
		sent, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(p.fd),
			uintptr(unsafe.Pointer(&hdrs[off])), uintptr(n-off), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno == unix.EAGAIN || errno == unix.ENOBUFS:
			clear(hdrs)
			clear(iovs)
			return off // the rest waits for the next flush
		case errno != 0:
			// The first message failed: report it, go on with the rest.
			p.cancel(ents[off].j)
			fail(ents[off].j, ents[off].gen, fmt.Errorf("send: %w", errno))
			off++
		default:
			off += int(sent)
		}
	}
	runtime.KeepAlive(ents)
	clear(hdrs) // no pointers kept into ents
	clear(iovs)
	return n
}

// cancel forgets j's outstanding probe.
func (p *synProber) cancel(j *Job) {
	p.mu.Lock()
	if j.pset {
		p.m.forget(j.pkey, j)
		j.pset = false
	}
	p.mu.Unlock()
}
