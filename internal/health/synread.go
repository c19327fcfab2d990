package health

import (
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading the SYN probes' answers (syn.go). No goroutine waits on the raw
// socket: the Runner's loop reads what is queued each time it wakes (every
// tick while it has checks due or probes out, less often while only slow
// probes are out), many answers a system call, and completes their probes
// there. The kernel's arrival stamp of each answer gives the check's
// latency, however late the loop reads it.

var (
	synUp   = Result{OK: true, Msg: "syn-ack"}
	synDown = Result{Msg: "connect: " + syscall.ECONNREFUSED.Error()}
)

// recvBatchSize is the answers read by one recvmmsg.
const recvBatchSize = 64

// cmsgSpace is room for one control message holding a struct timespec
// (SCM_TIMESTAMPNS): a 16-byte header and 16 bytes of data.
const cmsgSpace = 32

// recvBatch reads a raw socket's packets with recvmmsg, many a system call,
// with their arrival times; a Runner's loop owns one.
type recvBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrInet6
	ctrl  [][cmsgSpace]byte
	done  []synAnswer
}

// synAnswer is a matched answer, to complete once the prober's lock is
// released.
type synAnswer struct {
	j   *Job
	gen uint32
	up  bool
	err syscall.Errno // an ICMP unreachable's
	at  time.Time
}

func newRecvBatch(n int) *recvBatch {
	b := &recvBatch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n),
		bufs: make([][]byte, n), names: make([]unix.RawSockaddrInet6, n), ctrl: make([][cmsgSpace]byte, n)}
	for i := range n {
		// An answer is an IP header and a TCP header with options: 128
		// bytes hold it; a longer packet is truncated, which parseReply
		// does not mind (it reads the headers only).
		b.bufs[i] = make([]byte, 128)
		b.iovs[i] = unix.Iovec{Base: &b.bufs[i][0]}
		b.iovs[i].SetLen(len(b.bufs[i]))
	}
	return b
}

// recv reads up to len(b.hdrs) packets without blocking.
func (b *recvBatch) recv(fd int) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i] = unix.Mmsghdr{}
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Control = &b.ctrl[i][0]
		b.hdrs[i].Hdr.SetControllen(cmsgSpace)
	}
	// Raw: it never blocks (MSG_DONTWAIT), see synBatch.send.
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// packet is the i-th packet read.
func (b *recvBatch) packet(i int) []byte { return b.bufs[i][:b.hdrs[i].Len] }

// from is the i-th packet's sender when it is IPv6 (an IPv4 packet's is
// in its header).
func (b *recvBatch) from(i int) netip.Addr {
	if b.names[i].Family == unix.AF_INET6 {
		return netip.AddrFrom16(b.names[i].Addr)
	}
	return netip.Addr{}
}

// stamp is the i-th packet's arrival time, or the zero time if the kernel
// gave none.
func (b *recvBatch) stamp(i int) time.Time {
	return parseStamp(b.ctrl[i][:b.hdrs[i].Hdr.Controllen])
}

// parseStamp reads an SCM_TIMESTAMPNS control message (a struct cmsghdr,
// then a struct timespec; 64-bit layout) without allocating.
func parseStamp(c []byte) time.Time {
	if len(c) < cmsgSpace {
		return time.Time{}
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_TIMESTAMPNS || h.Len < cmsgSpace {
		return time.Time{}
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&c[unix.SizeofCmsghdr]))
	return time.Unix(ts.Sec, ts.Nsec)
}

// poll reads every answer queued on p's socket, and every unreachable on
// its ICMP socket, without waiting, and completes the probes they answer
// (on their Runners); it returns how many packets it read.
func (p *synProber) poll(rb *recvBatch) int {
	total := p.pollTCP(rb)
	if p.icmp >= 0 {
		total += p.pollICMP(rb)
	}
	return total
}

// pollICMP reads the unreachables that quote probes: their probes are down.
func (p *synProber) pollICMP(rb *recvBatch) int {
	total := 0
	for !p.closed.Load() {
		n, err := rb.recv(p.icmp)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total
		}
		total += n
		p.mu.Lock()
		for i := range n {
			u, ok := parseUnreach(rb.packet(i), p.v4)
			if !ok {
				continue
			}
			o, ok := p.m.matchQuote(u)
			if !ok {
				continue
			}
			if o.j.pkey == u.key {
				o.j.pset = false
			}
			rb.done = append(rb.done, synAnswer{j: o.j, gen: o.gen, err: u.err, at: rb.stamp(i)})
		}
		p.mu.Unlock()
		p.complete(rb)
		if n < len(rb.hdrs) {
			return total
		}
	}
	return total
}

// complete completes the matched answers in rb.done.
func (p *synProber) complete(rb *recvBatch) {
	for i, a := range rb.done {
		res := synDown
		switch {
		case a.err != 0:
			res = Result{Msg: "connect: " + a.err.Error()}
		case a.up:
			res = synUp
		}
		a.j.r.answer(a.j, a.gen, res, a.at)
		rb.done[i] = synAnswer{}
	}
	rb.done = rb.done[:0]
}

// pollTCP reads the answers queued on p's raw TCP socket.
func (p *synProber) pollTCP(rb *recvBatch) int {
	total := 0
	for !p.closed.Load() {
		n, err := rb.recv(p.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total // EAGAIN: all read
		}
		total += n
		p.mu.Lock()
		for i := range n {
			r, ok := parseReply(rb.packet(i), p.v4, rb.from(i))
			if !ok {
				continue
			}
			o, up, ok := p.m.match(r)
			if !ok {
				continue
			}
			if o.j.pkey == keyOf(r.from, r.sport, r.dport) {
				o.j.pset = false
			}
			rb.done = append(rb.done, synAnswer{j: o.j, gen: o.gen, up: up, at: rb.stamp(i)})
		}
		p.mu.Unlock()
		p.complete(rb)
		if n < len(rb.hdrs) {
			return total // the queue was empty: no call just to hear EAGAIN
		}
	}
	return total
}
