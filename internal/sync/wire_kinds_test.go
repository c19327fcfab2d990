package connsync

import (
	"net/netip"
	"reflect"
	"testing"
)

// Every kind of entry survives the wire: flows, persistence templates
// (fwmark ones with their mark and the unspecified service address) and DR
// flows, IPv4 and IPv6; a flag byte naming two kinds is malformed.
func TestEntryKindsRoundTrip(t *testing.T) {
	c, err := NewCodec(testKey)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	client, vip, rs := ap("192.0.2.7:40000"), ap("198.51.100.1:80"), ap("10.0.0.21:80")
	entries := []Entry{
		{Kind: KindFlow, Proto: 6, State: 3, Orig: Tuple{client, vip}, Reply: Tuple{ap("10.0.0.21:8080"), client}, Timeout: 432000},
		{Kind: KindTemplate, Proto: 6, Orig: Tuple{ap("192.0.2.0:0"), vip}, Reply: Tuple{ap("10.0.0.22:8080"), ap("192.0.2.0:0")}, Timeout: 300},
		{Kind: KindTemplate, Proto: 17, Mark: 7, Orig: Tuple{ap("192.0.2.7:0"), ap("0.0.0.0:0")}, Reply: Tuple{ap("10.0.0.22:0"), ap("192.0.2.7:0")}, Timeout: 1800},
		{Kind: KindDR, Proto: 6, Orig: Tuple{client, vip}, Reply: Tuple{rs, client}, Timeout: 900},
		{Kind: KindDR, Proto: 17, Orig: Tuple{ap("[2001:db8::7]:5353"), ap("[2001:db8::1]:53")}, Reply: Tuple{ap("[fd00::21]:53"), ap("[2001:db8::7]:5353")}, Timeout: 300},
	}
	if n := EntrySize(&entries[3]); n != 29 {
		t.Errorf("an IPv4 DR entry takes %d bytes, want 29", n)
	}
	b, err := c.Encode(&Message{Type: TypeData, SyncID: 3, Sender: 1, Epoch: 1, Seq: 1, Time: 1, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Decode(b, 3, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Entries, entries) {
		t.Errorf("decoded\n%+v\nwant\n%+v", m.Entries, entries)
	}
	// The DR entry's flag byte with the template bit too: malformed.
	bad, _ := c.Encode(&Message{Type: TypeData, SyncID: 3, Sender: 1, Epoch: 1, Seq: 1, Time: 1, Entries: entries[3:4]})
	body := append([]byte(nil), bad[:len(bad)-macLen]...)
	body[headerLen] |= efTemplate
	if _, err := c.Decode(c.sum(body), 3, 1500); err == nil {
		t.Errorf("an entry both template and DR decoded")
	} else if de, ok := err.(*DropError); !ok || de.Reason != DropMalformed {
		t.Errorf("an entry both template and DR: %v, want malformed", err)
	}
}
