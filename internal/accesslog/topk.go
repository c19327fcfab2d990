package accesslog

import "sort"

// TopK counts connections, bytes and errors per client in bounded memory:
// the Space-Saving algorithm (Metwally, Agrawal, El Abbadi 2005) over at
// most Cap clients. While there are no more distinct clients than Cap the
// counts are exact. Past that, a new client takes the place of the one with
// the fewest connections, inheriting its count as an error bound: each
// reported connection count c is within [c − Err, c], Err ≤ N/Cap for N
// lines, and every client with more than N/Cap connections is in the
// table. Bytes and errors are counted from the time the client entered
// the table (lower bounds once evictions happened).
type TopK struct {
	Cap     int
	idx     map[string]int // client -> position in h
	h       topHeap
	Evicted uint64 // evictions: non-zero means counts may be approximate
}

// ClientCount is one client's figures.
type ClientCount struct {
	Client            string
	Conns, Err        uint64 // Err: overestimate bound of Conns
	Errors            uint64
	BytesIn, BytesOut uint64
}

type topHeap []*ClientCount

// NewTopK returns a TopK of capacity c (at least 1).
func NewTopK(c int) *TopK {
	return &TopK{Cap: max(c, 1), idx: map[string]int{}}
}

// Add counts one connection of client.
func (t *TopK) Add(client []byte, isErr bool, in, out uint64) {
	i, ok := t.idx[string(client)]
	var c *ClientCount
	switch {
	case ok:
		c = t.h[i]
	case len(t.h) < t.Cap:
		c = &ClientCount{Client: string(client)}
		t.h = append(t.h, c)
		i = len(t.h) - 1
		t.idx[c.Client] = i
	default:
		// Replace the smallest: it is at the root.
		c = t.h[0]
		delete(t.idx, c.Client)
		t.Evicted++
		*c = ClientCount{Client: string(client), Conns: c.Conns, Err: c.Conns}
		i = 0
		t.idx[c.Client] = 0
	}
	c.Conns++
	c.BytesIn += in
	c.BytesOut += out
	if isErr {
		c.Errors++
	}
	t.down(i)
}

// down restores the heap after h[i]'s count grew, keeping idx in step.
func (t *TopK) down(i int) {
	h := t.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h[r].Conns < h[l].Conns {
			j = r
		}
		if h[j].Conns >= h[i].Conns {
			break
		}
		h[i], h[j] = h[j], h[i]
		t.idx[h[i].Client] = i
		t.idx[h[j].Client] = j
		i = j
	}
}

// ClientSorts are the orders Top knows.
var ClientSorts = []string{"conns", "bytes", "errors"}

// Top returns the n clients first by (all if n <= 0): "conns" (the
// default), "bytes" (in + out) or "errors"; ties by connections, then name.
// The table holds the clients with the most connections: ranked by bytes
// or errors, it is exact while no client was evicted, and otherwise ranks
// those heavy clients only.
func (t *TopK) Top(n int, by string) []ClientCount {
	out := make([]ClientCount, len(t.h))
	for i, c := range t.h {
		out[i] = *c
	}
	key := func(c *ClientCount) uint64 {
		switch by {
		case "bytes":
			return c.BytesIn + c.BytesOut
		case "errors":
			return c.Errors
		}
		return c.Conns
	}
	sort.Slice(out, func(i, j int) bool {
		if ki, kj := key(&out[i]), key(&out[j]); ki != kj {
			return ki > kj
		}
		if out[i].Conns != out[j].Conns {
			return out[i].Conns > out[j].Conns
		}
		return out[i].Client < out[j].Client
	})
	if n > 0 && n < len(out) {
		out = out[:n]
	}
	return out
}
