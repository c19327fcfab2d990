package connsync

import (
	"testing"
	"time"
)

// BenchmarkSendFlow is the sender's cost of one flow: batching, encoding,
// HMAC (per message, shared by the flows in it) and history.
func BenchmarkSendFlow(b *testing.B) {
	n, _ := NewNode(Config{Node: 1, Key: testKey, Epoch: 1})
	now := t0
	flows := make([]Entry, 4096)
	for i := range flows {
		flows[i] = flow(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		n.Add(now, flows[i%len(flows)])
		if i%48 == 47 {
			n.Ready()
		}
	}
}

// BenchmarkReceiveFlow is the receiver's cost of one flow: HMAC check,
// decoding, sequence tracking (installing into conntrack not included).
func BenchmarkReceiveFlow(b *testing.B) {
	src, _ := NewNode(Config{Node: 1, Key: testKey, Epoch: 1})
	var msgs [][]byte
	for i := range 48 * 200 {
		src.Add(t0, flow(i))
	}
	src.Flush(t0)
	for _, a := range src.Ready() {
		msgs = append(msgs, a.Data)
	}
	per := 48 * 200 / len(msgs)
	b.ReportAllocs()
	b.ResetTimer()
	var dst *Node
	for i := 0; i < b.N; i += per {
		m := (i / per) % len(msgs)
		if m == 0 {
			dst, _ = NewNode(Config{Node: 2, Key: testKey, Epoch: 1})
		}
		if err := dst.Receive(t0.Add(time.Millisecond), msgs[m]); err != nil {
			b.Fatal(err)
		}
		dst.Ready()
	}
}
