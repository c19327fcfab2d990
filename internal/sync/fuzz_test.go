package connsync

import (
	"reflect"
	"testing"
	"time"
)

// FuzzDecode feeds the decoder arbitrary datagrams, signed with the test key
// (so the payload parser is reached, not only the MAC check): it must not
// panic, and what it accepts must encode back to a message that decodes the
// same.
func FuzzDecode(f *testing.F) {
	codec, _ := NewCodec(testKey)
	seeds := []*Message{
		{Type: TypeData, Seq: 1, Entries: []Entry{flow(1), flow(2)}},
		{Type: TypeNack, Target: 3, TargetEpoch: 9, Ranges: [][2]uint32{{1, 4}, {9, 9}}},
		{Type: TypeResync, ReqID: 5},
		{Type: TypeDone, Target: 2, ReqID: 5, First: 1, Last: 8, Count: 300},
		{Type: TypeAlive, Seq: 77},
	}
	for _, m := range seeds {
		b, err := codec.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:len(b)-macLen])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		signed := codec.sum(append([]byte(nil), body...))
		m, err := codec.Decode(signed, 0, MaxMessage)
		if err != nil {
			return
		}
		b, err := codec.Encode(m)
		if err != nil {
			t.Fatalf("decoded but cannot encode: %v", err)
		}
		m2, err := codec.Decode(b, m.SyncID, MaxMessage)
		if err != nil {
			t.Fatalf("re-encoded message rejected: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
		// And a node takes it without panicking.
		n, _ := NewNode(Config{Node: 1, Key: testKey, SyncID: m.SyncID, Epoch: 1, MaxMessage: MaxMessage})
		n.Receive(time.UnixMilli(m.Time), signed)
		n.Tick(time.UnixMilli(m.Time).Add(time.Second))
	})
}
