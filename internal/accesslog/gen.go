package accesslog

import (
	"bufio"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Synth writes n synthetic lines for tests and benchmarks (bench/logs.sh):
// 4 real servers of 2 services, 5,000 clients with a skewed popularity, a
// connection every 1 ms from start, log-normal durations, 5% error codes,
// and a silence of 30 s at the middle. Deterministic for a seed. Lines are
// written in time order, as Record.AppendJSON writes them.
func Synth(w io.Writer, n int, seed uint64, start time.Time) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 1<<20)
	servers := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"),
		netip.MustParseAddrPort("10.0.0.3:8080"), netip.MustParseAddrPort("[2001:db8::4]:80")}
	services := []string{"web", "web", "api", "web6"}
	codes := []Termination{{'C', 'D'}, {'S', 'C'}, {'s', 'D'}, {'c', 'D'}, {'S', 'D'}, {'D', 'D'}}
	buf := make([]byte, 0, 512)
	t := start
	for i := range n {
		if i == n/2 {
			t = t.Add(30 * time.Second)
		}
		t = t.Add(time.Millisecond)
		k := r.IntN(len(servers))
		if k == 3 && r.IntN(2) == 0 { // the IPv6 one gets less
			k = r.IntN(3)
		}
		c := min(int(r.ExpFloat64()*500), 4999)
		rec := Record{
			Time: t, Service: services[k], RealServer: servers[k],
			Client:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(2 + c/250), byte(c % 250)}), uint16(1024+r.IntN(60000))),
			ConnectMs:  -1,
			DurationMs: float64(int64(math.Exp(3+1.2*r.NormFloat64())*1000)) / 1000,
			BytesIn:    uint64(r.IntN(2000)), BytesOut: uint64(r.IntN(200000)),
			Termination: Normal,
		}
		if k != 2 { // the api service's lines have no connect time (as kernel forwarding's)
			rec.ConnectMs = float64(int64(r.ExpFloat64()*800)) / 1000
		}
		if r.IntN(20) == 0 {
			rec.Termination = codes[r.IntN(len(codes))]
		}
		buf = rec.AppendJSON(buf[:0])
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
