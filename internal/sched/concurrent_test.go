package sched

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPicks runs picks and connection churn from many goroutines
// against updates from one, for every scheduler; run it with -race.
func TestConcurrentPicks(t *testing.T) {
	for _, n := range Names() {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			ds := dests(3, 1, 2, 0, 5, 1, 1, 4)
			s := must(t, n, Options{Fallback: true, TableSize: 251, Expiration: time.Millisecond})
			s.Update(ds)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						k := clientKey(g*100000 + i%500)
						k.VIP = clientKey(i % 37).Client
						d := s.Pick(k)
						if d == nil || !d.Bind() {
							continue
						}
						d.Activate()
						d.Unbind(true)
					}
				}()
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range 300 {
				ds[rng.IntN(len(ds))].SetWeight(rng.IntN(5))
				if i%3 == 0 {
					ds[rng.IntN(len(ds))].SetThresholds(rng.IntN(3), 0, 0)
				}
				sub := append([]*Dest(nil), ds[:1+rng.IntN(len(ds))]...)
				s.Update(sub)
				if e, ok := s.(Expirer); ok && i%50 == 0 {
					e.Expire(time.Now())
				}
			}
			close(stop)
			wg.Wait()
			s.Update(nil)
		})
	}
}
