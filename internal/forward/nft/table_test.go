package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/netns"
)

// tableYAML has a service of each kind of chain: queue-scheduled with its
// marks map, mh (a Maglev map in several messages) with fullnat's map of
// source addresses, IPv6, and fullnat with one range of sources.
func tableYAML(w int) string {
	return fmt.Sprintf(`virtual_servers:
  - address: 10.9.0.100:80
    forwarding: nat
    scheduler: wlc
    real_servers: [{address: "10.9.1.1:80", weight: %[1]d}, {address: "10.9.1.2:80"}]
  - address: 10.9.0.101:80
    forwarding: fullnat
    scheduler: mh
    local_addresses: [10.9.0.10, 10.9.0.11]
    real_servers: [{address: "10.9.1.1:80", weight: %[1]d}, {address: "10.9.1.2:80"}]
  - address: "[fd00:9::100]:80"
    forwarding: nat
    scheduler: rr
    real_servers: [{address: "[fd00:9:1::1]:80"}, {address: "[fd00:9:1::2]:80", weight: %[1]d}]
  - address: 10.9.0.102:53
    protocol: udp
    forwarding: fullnat
    scheduler: wrr
    local_addresses: [10.9.0.20-10.9.0.29]
    real_servers: [{address: "10.9.1.1:53", weight: %[1]d}, {address: "10.9.1.2:53"}]
`, w)
}

// tableState is what a listing of the table shows.
type tableState struct {
	handles map[string]uint64 // chain -> handle
	sets    map[string]*nftables.Set
	rules   map[string]int // chain -> rules
}

func listTable(t *testing.T, c *nftables.Conn, nsFD int, name string) tableState {
	t.Helper()
	tb := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	st := tableState{handles: map[string]uint64{}, sets: map[string]*nftables.Set{}, rules: map[string]int{}}
	// Chains and rules are dumped here: google/nftables does not report a
	// chain's handle (a chain deleted and added again gets a new one), and
	// cannot parse back some of the rules (ct's direction).
	for _, a := range dump(t, nsFD, unix.NFT_MSG_GETCHAIN) {
		if cstr(a[unix.NFTA_CHAIN_TABLE]) == name {
			st.handles[cstr(a[unix.NFTA_CHAIN_NAME])] = binary.BigEndian.Uint64(a[unix.NFTA_CHAIN_HANDLE])
		}
	}
	for _, a := range dump(t, nsFD, unix.NFT_MSG_GETRULE) {
		if cstr(a[unix.NFTA_RULE_TABLE]) == name {
			st.rules[cstr(a[unix.NFTA_RULE_CHAIN])]++
		}
	}
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		st.sets[s.Name] = s
	}
	return st
}

// cstr is a string attribute without its NUL.
func cstr(b []byte) string { return string(bytes.TrimSuffix(b, []byte{0})) }

// dump lists the objects of one kind (a NFT_MSG_GET* message) of family
// inet in the namespace nsFD, each as its top-level attributes.
func dump(t *testing.T, nsFD int, kind uint16) []map[uint16][]byte {
	t.Helper()
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | kind),
			Flags: netlink.Request | netlink.Dump},
		Data: []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, // struct nfgenmsg
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[uint16][]byte
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[uint16][]byte{}
		for ad.Next() {
			attrs[ad.Type()] = ad.Bytes()
		}
		if err := ad.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, attrs)
	}
	return out
}

// After the first transaction, which replaces the table, updates keep the
// table and its base chains (same handles: their hooks were never
// unregistered, so packets queued to govs survive an update) and replace
// the service chains and maps by a new generation's, in one transaction
// the kernel accepts: the jumps to the old chains and the lookups of the
// old maps are flushed in the same batch that deletes them.
func TestProgramKeepsBaseChains(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "nfttable")
	fd := ns.FD()
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(fd), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseLasting() })
	const name = "govs"
	log := slog.New(slog.DiscardHandler)
	dp := New(log, Options{})
	plansOf := func(yaml string, drain bool) []*plan {
		t.Helper()
		cfg, err := config.Parse("table.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		d := director.New(log, stubDataplane{})
		if err := d.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Shutdown(0) })
		plans, _, err := dp.plan(d.Snapshot().Services, nil, drain)
		if err != nil {
			t.Fatal(err)
		}
		return plans
	}
	q := queueConfig{DefaultQueueBase, 2}
	// The base chains, and the chain that keeps conntrack on: kept.
	base := []string{"queue", "dnat", "snat", holdChain}

	// A crashed run's table, with a chain of its own.
	stale := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	c.AddTable(stale)
	c.AddChain(&nftables.Chain{Name: "left_over", Table: stale})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	r := &ruleset{table: name}
	if err := r.program(c, nil, queueConfig{}, false); err != nil {
		t.Fatalf("first program: %v", err)
	}
	first := listTable(t, c, fd, name)
	if len(first.handles) != 4 || len(first.sets) != 0 || first.rules[holdChain] != 1 {
		t.Fatalf("after start: chains %v, sets %d; want the three base chains and %s alone", first.handles, len(first.sets), holdChain)
	}

	// check verifies the table serves generation gen of 4 services (or
	// drops them all) and kept the base chains of first.
	check := func(step string, gen uint64, drain bool) {
		t.Helper()
		st := listTable(t, c, fd, name)
		for _, b := range base {
			if st.handles[b] != first.handles[b] {
				t.Errorf("%s: base chain %s has handle %d, was %d: it was re-created", step, b, st.handles[b], first.handles[b])
			}
		}
		var want []string
		if !drain {
			for i := range 4 {
				want = append(want, fmt.Sprintf("s%dg%d", i, gen))
			}
		}
		var got []string
		for ch := range st.handles {
			if !slices.Contains(base, ch) {
				got = append(got, ch)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: service chains %v, want %v", step, got, want)
		}
		var wantSets []string
		if !drain {
			g := fmt.Sprintf("g%d_", gen)
			wantSets = []string{"s0" + g + "marks", "s0" + g + "slots", "s1" + g + "slots", "s1" + g + "snat", "s2" + g + "slots", "s3" + g + "slots"}
		}
		var sets []string
		for s := range st.sets {
			sets = append(sets, s)
		}
		slices.Sort(sets)
		if !slices.Equal(sets, wantSets) {
			t.Errorf("%s: maps %v, want %v", step, sets, wantSets)
		}
		if s := st.sets[fmt.Sprintf("s1g%d_slots", gen)]; s != nil {
			elems, err := c.GetSetElements(s)
			if err != nil || len(elems) != MaglevTableSize {
				t.Errorf("%s: the Maglev map has %d elements (%v), want %d", step, len(elems), err, MaglevTableSize)
			}
		}
		// The rule that keeps conntrack on stays, draining too: the
		// drain's rules alone need no conntrack.
		wantRules := map[string]int{"queue": 1, "dnat": 4, "snat": 2, holdChain: 1}
		if drain {
			wantRules = map[string]int{"queue": 0, "dnat": 4, "snat": 0, holdChain: 1}
		}
		for ch, n := range wantRules {
			if st.rules[ch] != n {
				t.Errorf("%s: chain %s has %d rules, want %d", step, ch, st.rules[ch], n)
			}
		}
	}

	for i, w := range []int{1, 3, 2} {
		if err := r.program(c, plansOf(tableYAML(w), false), q, false); err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
		check(fmt.Sprintf("update %d", i+1), r.gen, false)
	}
	// For the eye (not checked: nft 1.0 cannot print every rule govs
	// writes), with the maps' elements cut short.
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", name).CombinedOutput()
	var b strings.Builder
	elems := 0
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.Contains(line, "elements = {") && !strings.Contains(line, "}"):
			elems = 1
		case elems > 0 && strings.Contains(line, "}"):
			if elems > 3 {
				b.WriteString("\t\t\t     ...\n")
			}
			elems = 0
		case elems > 0:
			if elems++; elems > 3 {
				continue
			}
		}
		b.WriteString(line)
	}
	t.Logf("nft list table inet %s (%v):\n%s", name, err, b.String())
	if err := r.program(c, plansOf(tableYAML(2), true), q, true); err != nil {
		t.Fatalf("drain: %v", err)
	}
	check("drain", r.gen, true)

	// Someone deleted the table: the update fails, and the next one
	// replaces the table again.
	c.DelTable(stale)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.program(c, plansOf(tableYAML(1), false), q, false); err == nil {
		t.Fatal("an update of a table that is gone succeeded")
	}
	if err := r.program(c, plansOf(tableYAML(1), false), q, false); err != nil {
		t.Fatalf("the update after a failed one: %v", err)
	}
	st := listTable(t, c, fd, name)
	if len(st.handles) != 8 || len(st.sets) != 6 || st.handles[fmt.Sprintf("s0g%d", r.gen)] == 0 {
		t.Fatalf("after the table was re-created: chains %v, %d maps", st.handles, len(st.sets))
	}
}
