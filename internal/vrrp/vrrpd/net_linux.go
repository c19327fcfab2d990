package vrrpd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/vrrp"
)

// tosInternetControl is the IPv4 TOS / IPv6 traffic class of adverts
// (IPTOS_PREC_INTERNETCONTROL, as keepalived sends them).
const tosInternetControl = 0xc0

// connKey identifies a raw socket: one per interface, family and protocol
// (VRRP, or IPsec AH for auth_type AH), shared by the instances on it, which
// it tells apart by VRID.
type connKey struct {
	ifindex int
	v6      bool
	ah      bool
}

// conn is a raw IP protocol 112 socket bound to one interface.
type conn struct {
	log    *slog.Logger
	key    connKey
	ifname string
	pc     net.PacketConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	// ipc is the socket of an AH conn (key.ah): IPv4 protocol 51 with
	// IP_HDRINCL, read and written as whole IP packets (vrrp.AppendAH).
	ipc *net.IPConn

	mu     sync.RWMutex
	byVRID map[uint8]*instance
	joined bool
	refs   int // instances registered (guarded by the daemon's mutex)

	// Adverts that could not be handed to an instance.
	unknownVRID atomic.Uint64
	overflow    atomic.Uint64
}

func bindToDevice(name string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// openConn opens the raw socket of ifi for one family: bound to the
// interface, TTL / hop limit 255 for multicast and unicast, multicast loop
// off, and the TTL / hop limit and destination of received packets
// reported in control messages.
func openConn(log *slog.Logger, ifi *net.Interface, v6, ah bool) (*conn, error) {
	network, laddr := "ip4:112", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:112", "::"
	}
	if ah {
		network = "ip4:51"
	}
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("raw socket on %s: %w", ifi.Name, err)
	}
	c := &conn{log: log, key: connKey{ifi.Index, v6, ah}, ifname: ifi.Name, pc: pc, byVRID: map[uint8]*instance{}}
	var errs []error
	if v6 {
		p := ipv6.NewPacketConn(pc)
		c.p6 = p
		errs = append(errs,
			p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true),
			p.SetMulticastHopLimit(vrrp.TTL), p.SetHopLimit(vrrp.TTL),
			p.SetMulticastLoopback(false), p.SetMulticastInterface(ifi),
			p.SetTrafficClass(tosInternetControl))
	} else {
		p := ipv4.NewPacketConn(pc)
		c.p4 = p
		errs = append(errs,
			p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true),
			p.SetMulticastTTL(vrrp.TTL), p.SetTTL(vrrp.TTL),
			p.SetMulticastLoopback(false), p.SetMulticastInterface(ifi),
			p.SetTOS(tosInternetControl))
		if ah {
			c.ipc = pc.(*net.IPConn)
			errs = append(errs, setHeaderIncluded(c.ipc))
		}
	}
	if err := errors.Join(errs...); err != nil {
		pc.Close()
		return nil, fmt.Errorf("raw socket on %s: %w", ifi.Name, err)
	}
	go c.readLoop()
	return c, nil
}

// join joins the VRRP multicast group, once.
func (c *conn) join() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joined {
		return nil
	}
	ifi, err := net.InterfaceByIndex(c.key.ifindex)
	if err != nil {
		return err
	}
	if c.p6 != nil {
		err = c.p6.JoinGroup(ifi, &net.IPAddr{IP: vrrp.MulticastIPv6.AsSlice()})
	} else {
		err = c.p4.JoinGroup(ifi, &net.IPAddr{IP: vrrp.MulticastIPv4.AsSlice()})
	}
	if err != nil {
		return fmt.Errorf("join the VRRP multicast group on %s: %w", c.ifname, err)
	}
	c.joined = true
	return nil
}

func (c *conn) register(in *instance) {
	c.mu.Lock()
	c.byVRID[in.m.Config().VRID] = in
	c.mu.Unlock()
}

func (c *conn) unregister(in *instance) {
	c.mu.Lock()
	if c.byVRID[in.m.Config().VRID] == in {
		delete(c.byVRID, in.m.Config().VRID)
	}
	c.mu.Unlock()
}

func (c *conn) close() { c.pc.Close() }

// setHeaderIncluded sets IP_HDRINCL: we write the IPv4 header, whose
// identification the AH ICV covers.
func setHeaderIncluded(c *net.IPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_HDRINCL, 1) }); err != nil {
		return err
	}
	return serr
}

// writeRaw sends a whole IPv4 packet (an AH advert) to dst.
func (c *conn) writeRaw(b []byte, dst netip.Addr) error {
	_, err := c.ipc.WriteToIP(b, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

// write sends one advert from src to dst.
func (c *conn) write(b []byte, src, dst netip.Addr) error {
	to := &net.IPAddr{IP: dst.AsSlice()}
	if c.p6 != nil {
		if dst.IsLinkLocalMulticast() || dst.IsLinkLocalUnicast() {
			to.Zone = c.ifname
		}
		_, err := c.p6.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.key.ifindex, HopLimit: vrrp.TTL}, to)
		return err
	}
	_, err := c.p4.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: c.key.ifindex}, to)
	return err
}

// readLoop hands every packet to the instance of its VRID, until the socket
// is closed. Decoding is the instance's, on its own goroutine.
func (c *conn) readLoop() {
	buf := make([]byte, 1<<16)
	for {
		var (
			n    int
			info vrrp.IPInfo
			src  net.Addr
			err  error
		)
		if c.ipc != nil {
			// The whole IPv4 packet: DecodeAH needs its header.
			var from *net.IPAddr
			if n, _, _, from, err = c.ipc.ReadMsgIP(buf, nil); from != nil {
				src = from
			}
		} else if c.p6 != nil {
			var cm *ipv6.ControlMessage
			n, cm, src, err = c.p6.ReadFrom(buf)
			if cm != nil {
				info.Dst, _ = netip.AddrFromSlice(cm.Dst)
				info.HopLimit = uint8(cm.HopLimit)
			}
		} else {
			var cm *ipv4.ControlMessage
			n, cm, src, err = c.p4.ReadFrom(buf)
			if cm != nil {
				info.Dst, _ = netip.AddrFromSlice(cm.Dst)
				info.HopLimit = uint8(cm.TTL)
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Debug("vrrp: read", "interface", c.ifname, "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		if ip, ok := src.(*net.IPAddr); ok {
			info.Src, _ = netip.AddrFromSlice(ip.IP)
		}
		info.Src, info.Dst = info.Src.Unmap(), info.Dst.Unmap()
		vridAt := 1
		if c.ipc != nil {
			vridAt = int(buf[0]&0x0f)*4 + vrrp.AHLen + 1
		}
		if n <= vridAt {
			c.unknownVRID.Add(1)
			continue
		}
		c.mu.RLock()
		in := c.byVRID[buf[vridAt]]
		c.mu.RUnlock()
		if in == nil {
			c.unknownVRID.Add(1)
			continue
		}
		info.Unicast = len(in.peers) > 0
		ev := packetEvent{in: in, b: append([]byte(nil), buf[:n]...), info: info}
		select {
		case in.u.inbox <- ev:
		default:
			c.overflow.Add(1)
		}
	}
}

// announcer sends gratuitous ARPs (through an AF_PACKET socket) and
// unsolicited neighbour advertisements (through an ICMPv6 socket); both
// sockets are opened on first use and shared by every instance.
type announcer struct {
	mu     sync.Mutex
	arpFD  int
	icmp   *ipv6.PacketConn
	icmpPC net.PacketConn
}

func newAnnouncer() *announcer { return &announcer{arpFD: -1} }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// garpPayload is a gratuitous ARP request for ip from mac: sender and
// target protocol addresses are both ip, as keepalived sends them.
func garpPayload(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // hardware type Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // protocol IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // request
	a := ip.As4()
	copy(b[8:14], mac)
	copy(b[14:18], a[:])
	copy(b[18:24], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[24:28], a[:])
	return b
}

// naPayload is an unsolicited neighbour advertisement for ip (RFC 4861
// section 7.2.6): Override set, Solicited clear, with the target link-layer
// address option. The kernel fills in the checksum.
func naPayload(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 32)
	b[0] = 136  // neighbour advertisement
	b[4] = 0x20 // Override
	a := ip.As16()
	copy(b[8:24], a[:])
	b[24], b[25] = 2, 1 // target link-layer address, 8 bytes
	copy(b[26:32], mac)
	return b
}

var allNodes = netip.MustParseAddr("ff02::1")

// announce sends one gratuitous ARP or unsolicited NA for ip on the link.
func (a *announcer) announce(ifindex int, ifname string, mac net.HardwareAddr, ip netip.Addr) error {
	if len(mac) != 6 {
		return nil // no Ethernet address (tun, loopback): nothing to announce
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip.Is4() {
		if a.arpFD < 0 {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("packet socket: %w", err)
			}
			a.arpFD = fd
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6}
		copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		return unix.Sendto(a.arpFD, garpPayload(mac, ip), 0, sa)
	}
	if a.icmp == nil {
		pc, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return fmt.Errorf("icmpv6 socket: %w", err)
		}
		p := ipv6.NewPacketConn(pc)
		var f ipv6.ICMPFilter
		f.SetAll(true) // send only
		if err := errors.Join(p.SetICMPFilter(&f), p.SetMulticastHopLimit(255), p.SetHopLimit(255)); err != nil {
			pc.Close()
			return fmt.Errorf("icmpv6 socket: %w", err)
		}
		a.icmp, a.icmpPC = p, pc
	}
	_, err := a.icmp.WriteTo(naPayload(mac, ip), &ipv6.ControlMessage{Src: ip.AsSlice(), IfIndex: ifindex, HopLimit: 255},
		&net.IPAddr{IP: allNodes.AsSlice(), Zone: ifname})
	return err
}

func (a *announcer) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.arpFD >= 0 {
		unix.Close(a.arpFD)
		a.arpFD = -1
	}
	if a.icmpPC != nil {
		a.icmpPC.Close()
		a.icmp, a.icmpPC = nil, nil
	}
}
