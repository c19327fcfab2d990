package nft

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/ctevent"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// TestNATLogFloodNeverBlocks: a flood of destroy events while the access
// log's sink takes nothing (a syslog server that accepts and never reads)
// goes through the reader without waiting: every flow is counted per real
// server and code, the lines the queue has no room for are dropped and
// counted, and the memory held is the writer's bounded queue.
func TestNATLogFloodNeverBlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read
		}
	}()
	w, err := accesslog.OpenWriter("syslog+tcp://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	prev := accesslog.SetWriter(w)
	defer func() {
		accesslog.SetWriter(prev)
		go w.Close() // it cannot write its queue: do not wait for it
	}()
	accesslog.Terminations.Reset()

	cfg, err := config.Parse("flood.yaml", []byte(`logging: {access_log: true}
virtual_servers:
  - {name: web, address: "10.9.0.100:80", forwarding: nat, real_servers: [{address: "10.9.1.1:80"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := director.New(log, stubDataplane{})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(0)
	vs := d.Services()[0]
	vip, rs := netip.MustParseAddrPort("10.9.0.100:80"), netip.MustParseAddrPort("10.9.1.1:80")
	nl := &natLog{d: New(log, Options{}), timeouts: defaultTimeouts}
	nl.follow(&view{byVIP: map[vipKey]*director.VirtualService{{proto: 6, addr: vip}: vs}, dr: map[*director.VirtualService]bool{},
		want: map[*director.VirtualService]*desired.Service{vs: vs.Desired()}})

	const n = 200000
	start := time.Now().Add(-time.Minute).UnixNano()
	for i := range n {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, byte(i >> 16), byte(i >> 8)}), uint16(i))
		ev := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpTimeWait,
			Status: ctevent.StatusDstNAT | ctevent.StatusAssured | ctevent.StatusSeenReply,
			Orig:   ctevent.Tuple{Src: client, Dst: vip}, Reply: ctevent.Tuple{Src: rs, Dst: client},
			OrigPackets: 6, OrigBytes: 400, ReplyPackets: 5, ReplyBytes: 300, HasCounters: true,
			Start: start, Stop: start + int64(121*time.Second)}
		nl.event(&ev)
	}
	if got := accesslog.Terminations.Get("web", rs, accesslog.Normal); got != n {
		t.Errorf("%d flows counted, want %d", got, n)
	}
	if dropped := w.Dropped(); dropped == 0 || dropped > n {
		t.Errorf("%d lines dropped of %d: want the queue's overflow counted", dropped, n)
	}
	t.Logf("%d lines dropped, %d written, queue %d", w.Dropped(), w.Written(), accesslog.QueueSize)
}

// BenchmarkNATLogEvent is the cost of one destroy event of a service's
// flow: the line built, counted and queued to a file writer (/dev/null).
func BenchmarkNATLogEvent(b *testing.B) {
	w, err := accesslog.OpenWriter("/dev/null", nil)
	if err != nil {
		b.Fatal(err)
	}
	prev := accesslog.SetWriter(w)
	defer func() { accesslog.SetWriter(prev); w.Close() }()
	cfg, err := config.Parse("bench.yaml", []byte(`logging: {access_log: true}
virtual_servers:
  - {name: web, address: "10.9.0.100:80", forwarding: nat, real_servers: [{address: "10.9.1.1:80"}]}
`))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := director.New(log, stubDataplane{})
	if err := d.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(0)
	vip, rs := netip.MustParseAddrPort("10.9.0.100:80"), netip.MustParseAddrPort("10.9.1.1:80")
	nl := &natLog{d: New(log, Options{}), timeouts: defaultTimeouts}
	vs := d.Services()[0]
	nl.follow(&view{byVIP: map[vipKey]*director.VirtualService{{proto: 6, addr: vip}: vs}, dr: map[*director.VirtualService]bool{},
		want: map[*director.VirtualService]*desired.Service{vs: vs.Desired()}})
	client := netip.MustParseAddrPort("10.8.0.1:40000")
	start := time.Now().UnixNano()
	ev := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpTimeWait,
		Status: ctevent.StatusDstNAT | ctevent.StatusAssured | ctevent.StatusSeenReply,
		Orig:   ctevent.Tuple{Src: client, Dst: vip}, Reply: ctevent.Tuple{Src: rs, Dst: client},
		OrigPackets: 6, OrigBytes: 400, ReplyPackets: 5, ReplyBytes: 300, HasCounters: true,
		Start: start, Stop: start + int64(121*time.Second)}
	b.ReportAllocs()
	for b.Loop() {
		nl.event(&ev)
	}
}
