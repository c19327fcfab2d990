// Command adaptive is the load side of bench/adaptive.sh: HTTP real servers of
// different speeds (one with periodic stalls) and an open-loop load generator
// with Poisson arrivals, both on loopback only.
//
//	adaptive backends -server NAME=127.0.0.1:PORT,MEAN[,stall=LEN/PERIOD][,antagonist=FACTORx/ON/OFF][,agent=127.0.0.1:PORT] ... [-slots 1] [-sigma 0.5] [-lifetime 10m] [-seed 1]
//	adaptive load -addr 127.0.0.1:PORT[,127.0.0.1:PORT...] -rate 1000 -duration 10s [-seed 1] [-timeout 5s] [-max-inflight 2000]
//
// backends: every server has -slots workers and a FIFO queue in front of them
// (the kernel accepts every connection; a request waits for a free worker),
// so a slow server has less capacity, not only more latency. A request's
// service time is lognormal with the server's mean and -sigma (0: constant).
// A server with stall=LEN/PERIOD freezes for LEN every PERIOD (from its
// start, offset by half a period): requests in service or arriving during a
// stall wait until it ends, as a process in a long GC pause or a frozen VM.
// A server with antagonist=FACTORx/ON/OFF shares its host with a hidden
// batch job that comes and goes (present for ON, absent for OFF on average,
// each length uniform in [0.5, 1.5] x its mean, from -seed: the same
// schedule on every such server) and, while present, takes all but
// 1/FACTOR of the CPU: the work of every request in service runs FACTOR
// times slower (see workEnd). GET /health is answered without a worker (but
// not during a stall; the antagonist leaves it alone: it is hidden). A
// server with agent=ADDR answers an HAProxy agent check there with "up
// inflight:N latency:D", N its requests in flight (queued and in service,
// from every director) and D its estimate of a new request's latency
// (latencyAt: what a Prequal server reports), which govs's prober passes to
// prequal and predict (predict uses the count only); the agent
// answers during a stall too, as a separate process on the host would. The
// response body is the server's NAME, so the load generator can tell where
// each request went. The process exits after -lifetime, or on SIGTERM.
//
// load: one new TCP connection per request ("Connection: close", so every
// request is a scheduling decision), at Poisson arrival times of -rate per
// second for -duration. With several -addr (several directors in front of
// the same real servers), each request goes to one of them drawn at random
// (from the seed too), as clients spread over the directors of an ECMP
// group or a DNS round robin. Latency runs from the request's scheduled arrival
// time to the end of the response, so a generator or proxy that falls
// behind is charged for it (no coordinated omission, unlike a closed-loop
// client such as wrk). Requests beyond -max-inflight are not sent and are
// counted as dropped; each request is bounded by -timeout. It prints one line
// of key=value figures (see printReport) and exits; the run is bounded by
// -duration + -timeout.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var loopback = netip.MustParsePrefix("127.0.0.0/8")

func checkLoopback(what, addr string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Unmap().Is4() || !loopback.Contains(ap.Addr().Unmap()) {
		fmt.Fprintf(os.Stderr, "adaptive: %s %q: want an IPv4 loopback address and port (127.0.0.0/8)\n", what, addr)
		os.Exit(2)
	}
	return ap
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: adaptive backends|load [flags] (see the top of bench/adaptive/main.go)")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "backends":
		backends(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "adaptive: unknown command %q (backends or load)\n", os.Args[1])
		os.Exit(2)
	}
}

// ---- backends -----------------------------------------------------------------

type server struct {
	name        string
	addr        netip.AddrPort
	mean        time.Duration
	stall       time.Duration // 0: none
	stallPeriod time.Duration
	antFactor   float64        // 0: no antagonist; else service runs this many times slower during episodes
	antOn       time.Duration  // its mean presence
	antOff      time.Duration  // and absence
	episodes    []episode      // its schedule
	agent       netip.AddrPort // the agent's address; invalid: none
	inflight    atomic.Int64
	slots       chan struct{}
	start       time.Time
	sigma       float64
	served      atomic.Int64
	mu          sync.Mutex
	svcEWMA     time.Duration // recent service times (in a worker), for the agent's latency:
}

// observeService folds a request's time in a worker into the EWMA (1/16
// per request, as the simulator's servers do).
func (s *server) observeService(d time.Duration) {
	s.mu.Lock()
	s.svcEWMA += (d - s.svcEWMA) / 16
	s.mu.Unlock()
}

// latencyAt is what the agent reports as latency: the server's estimate of
// the latency of a request that finds rif requests in flight, as a Prequal
// server computes it and as govs sim's probes answer: the recent service
// time, stretched by the queue it would wait in when every worker is busy.
func (s *server) latencyAt(rif int64) time.Duration {
	s.mu.Lock()
	e := s.svcEWMA
	s.mu.Unlock()
	c := int64(cap(s.slots))
	return time.Duration(float64(e) * (1 + float64(max(rif+1-c, 0))/float64(c)))
}

// parseServer reads NAME=ADDR,MEAN[,stall=LEN/PERIOD][,antagonist=FACTORx/ON/OFF][,agent=ADDR].
func parseServer(s string) (*server, error) {
	const want = "want NAME=ADDR,MEAN[,stall=LEN/PERIOD][,antagonist=FACTORx/ON/OFF][,agent=ADDR]"
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return nil, errors.New(want)
	}
	parts := strings.Split(rest, ",")
	if len(parts) < 2 {
		return nil, errors.New(want)
	}
	sv := &server{name: name, addr: checkLoopback("-server", parts[0])}
	var err error
	if sv.mean, err = time.ParseDuration(parts[1]); err != nil || sv.mean < 0 {
		return nil, fmt.Errorf("mean %q: want a duration", parts[1])
	}
	seen := map[string]bool{}
	for _, opt := range parts[2:] {
		key, v, ok := strings.Cut(opt, "=")
		if !ok || seen[key] {
			return nil, fmt.Errorf("%q: %s (each option once)", opt, want)
		}
		seen[key] = true
		switch key {
		case "agent":
			sv.agent = checkLoopback("agent", v)
		case "stall":
			l, p, ok := strings.Cut(v, "/")
			if !ok {
				return nil, fmt.Errorf("%q: want stall=LEN/PERIOD", opt)
			}
			if sv.stall, err = time.ParseDuration(l); err != nil {
				return nil, err
			}
			if sv.stallPeriod, err = time.ParseDuration(p); err != nil {
				return nil, err
			}
			if sv.stall <= 0 || sv.stallPeriod <= sv.stall {
				return nil, fmt.Errorf("stall %q: want 0 < LEN < PERIOD", v)
			}
		case "antagonist":
			f, on, off, err := parseAntagonist(v)
			if err != nil {
				return nil, fmt.Errorf("antagonist %q: %w", v, err)
			}
			sv.antFactor, sv.antOn, sv.antOff = f, on, off
		default:
			return nil, fmt.Errorf("%q: unknown option; %s", opt, want)
		}
	}
	if sv.stall > 0 && sv.antFactor > 0 {
		return nil, fmt.Errorf("%s: stall and antagonist on one server: choose one", name)
	}
	return sv, nil
}

// parseAntagonist reads FACTORx/ON/OFF, such as 8x/4s/6s.
func parseAntagonist(v string) (factor float64, on, off time.Duration, err error) {
	f := strings.Split(v, "/")
	if len(f) != 3 {
		return 0, 0, 0, errors.New("want FACTORx/ON/OFF such as 8x/4s/6s")
	}
	factor, err = strconv.ParseFloat(strings.TrimSuffix(f[0], "x"), 64)
	if err != nil || !(factor > 1 && factor <= 100) {
		return 0, 0, 0, errors.New("factor: want a number above 1 and at most 100, such as 8x")
	}
	if on, err = time.ParseDuration(f[1]); err != nil || on < 10*time.Millisecond {
		return 0, 0, 0, errors.New("ON: want a duration of at least 10ms")
	}
	if off, err = time.ParseDuration(f[2]); err != nil || off < 10*time.Millisecond {
		return 0, 0, 0, errors.New("OFF: want a duration of at least 10ms")
	}
	return factor, on, off, nil
}

// episode is a span of an antagonist's presence, as offsets from the start.
type episode struct{ from, to time.Duration }

// antagonistEpisodes draws an antagonist's schedule for a lifetime: it is
// absent first, then present and absent in turn, each length uniform in
// [0.5, 1.5] x its mean (a batch job whose runs and pauses vary, but
// neither vanish nor last for ever), from the seed alone: every server
// given the same seed and means gets the same schedule, so that each
// scheduler's set meets the same antagonist at the same moments.
func antagonistEpisodes(seed uint64, on, off, lifetime time.Duration) []episode {
	rng := rand.New(rand.NewPCG(seed, 0xa47a90a157))
	draw := func(mean time.Duration) time.Duration {
		return time.Duration(float64(mean) * (0.5 + rng.Float64()))
	}
	var eps []episode
	for t := draw(off); t < lifetime; {
		l := draw(on)
		eps = append(eps, episode{t, t + l})
		t += l + draw(off)
	}
	return eps
}

// workEnd returns when work w started at offset x ends: the server works at
// full speed outside the episodes and at 1/factor of it during them (the
// antagonist takes the rest of the CPU), so a request in service when the
// antagonist comes slows down for the rest of its work, and one that
// started during an episode speeds up when it ends.
func workEnd(eps []episode, factor float64, x, w time.Duration) time.Duration {
	i := sort.Search(len(eps), func(i int) bool { return eps[i].to > x })
	for ; i < len(eps); i++ {
		ep := eps[i]
		if x < ep.from {
			free := ep.from - x
			if w <= free {
				return x + w
			}
			w -= free
			x = ep.from
		}
		span := ep.to - x
		if slow := time.Duration(float64(w) * factor); slow <= span {
			return x + slow
		}
		w -= time.Duration(float64(span) / factor)
		x = ep.to
	}
	return x + w
}

// antagonistShare returns the share of [0, upto) during which the
// antagonist is present, and the number of episodes that begin in it.
func antagonistShare(eps []episode, upto time.Duration) (float64, int) {
	var on time.Duration
	n := 0
	for _, ep := range eps {
		if ep.from >= upto {
			break
		}
		n++
		on += min(ep.to, upto) - ep.from
	}
	return float64(on) / float64(upto), n
}

// stallEnd returns the end of the stall t falls in, or the zero time.
func (s *server) stallEnd(t time.Time) time.Time {
	if s.stall == 0 {
		return time.Time{}
	}
	// Stalls start at start + PERIOD/2 + k PERIOD.
	since := t.Sub(s.start) - s.stallPeriod/2
	if since < 0 {
		return time.Time{}
	}
	if in := since % s.stallPeriod; in < s.stall {
		return t.Add(s.stall - in)
	}
	return time.Time{}
}

// waitStall sleeps until the current stall, if any, is over.
func (s *server) waitStall() {
	for {
		end := s.stallEnd(time.Now())
		if end.IsZero() {
			return
		}
		time.Sleep(time.Until(end))
	}
}

func (s *server) serviceTime() time.Duration {
	if s.sigma <= 0 || s.mean == 0 {
		return s.mean
	}
	mu := math.Log(float64(s.mean)) - s.sigma*s.sigma/2
	return time.Duration(math.Exp(mu + s.sigma*rand.NormFloat64()))
}

// nextStall returns the start of the first stall after t.
func (s *server) nextStall(t time.Time) time.Time {
	first := s.start.Add(s.stallPeriod / 2)
	if t.Before(first) {
		return first
	}
	k := t.Sub(first)/s.stallPeriod + 1
	return first.Add(k * s.stallPeriod)
}

// sleepWork spends d of "work": time during a stall does not count, as a
// frozen process makes no progress.
func (s *server) sleepWork(d time.Duration) {
	if s.antFactor > 0 {
		time.Sleep(time.Until(s.start.Add(workEnd(s.episodes, s.antFactor, time.Since(s.start), d))))
		return
	}
	s.waitStall()
	end := time.Now().Add(d)
	if s.stall > 0 && s.nextStall(time.Now()).Before(end) {
		end = end.Add(s.stall) // a stall begins during the work
	}
	time.Sleep(time.Until(end))
}

func (s *server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	health := bytes.HasPrefix(line, []byte("GET /health "))
	for { // headers
		l, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(bytes.TrimRight(l, "\r\n")) == 0 {
			break
		}
	}
	if health {
		s.waitStall()
	} else {
		s.inflight.Add(1)
		s.slots <- struct{}{}
		t0 := time.Now()
		s.sleepWork(s.serviceTime())
		s.observeService(time.Since(t0))
		<-s.slots
		s.inflight.Add(-1)
		s.served.Add(1)
	}
	body := s.name + "\n"
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func backends(args []string) {
	fs := flag.NewFlagSet("backends", flag.ExitOnError)
	var servers []*server
	fs.Func("server", "NAME=127.0.0.1:PORT,MEAN[,stall=LEN/PERIOD][,antagonist=FACTORx/ON/OFF][,agent=127.0.0.1:PORT] (repeat)", func(v string) error {
		s, err := parseServer(v)
		if err == nil {
			servers = append(servers, s)
		}
		return err
	})
	slots := fs.Int("slots", 1, "workers per server")
	sigma := fs.Float64("sigma", 0.5, "lognormal sigma of service times (0: constant)")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long")
	seed := fs.Uint64("seed", 1, "seed of the antagonists' schedule (the same for every server)")
	fs.Parse(args)
	if len(servers) == 0 || *slots < 1 || *sigma < 0 || *lifetime <= 0 {
		fmt.Fprintln(os.Stderr, "adaptive backends: need at least one -server, -slots >= 1, -sigma >= 0, -lifetime > 0")
		os.Exit(2)
	}
	start := time.Now()
	var lns []net.Listener
	for _, s := range servers {
		s.slots = make(chan struct{}, *slots)
		s.start = start
		s.sigma = *sigma
		s.svcEWMA = s.mean
		if s.antFactor > 0 {
			s.episodes = antagonistEpisodes(*seed, s.antOn, s.antOff, *lifetime)
		}
		ln, err := net.Listen("tcp4", s.addr.String())
		if err != nil {
			fmt.Fprintf(os.Stderr, "adaptive backends: %v\n", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				go s.handle(c)
			}
		}()
		if s.agent.IsValid() {
			aln, err := net.Listen("tcp4", s.agent.String())
			if err != nil {
				fmt.Fprintf(os.Stderr, "adaptive backends: agent: %v\n", err)
				os.Exit(1)
			}
			lns = append(lns, aln)
			go func() {
				for {
					c, err := aln.Accept()
					if err != nil {
						if errors.Is(err, net.ErrClosed) {
							return
						}
						time.Sleep(10 * time.Millisecond)
						continue
					}
					c.SetDeadline(time.Now().Add(time.Second))
					rif := s.inflight.Load()
					fmt.Fprintf(c, "up inflight:%d latency:%v\n", rif, s.latencyAt(rif).Round(time.Microsecond))
					c.Close()
				}
			}()
		}
		stall, ant := "none", "none"
		if s.stall > 0 {
			stall = fmt.Sprintf("%v every %v", s.stall, s.stallPeriod)
		}
		if s.antFactor > 0 {
			ant = fmt.Sprintf("%gx for %v every %v on average", s.antFactor, s.antOn, s.antOn+s.antOff)
		}
		fmt.Printf("server %s %s mean=%v slots=%d sigma=%.2f stall=%s antagonist=%s\n", s.name, s.addr, s.mean, *slots, *sigma, stall, ant)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(*lifetime):
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, s := range servers {
		fmt.Printf("served %s %d\n", s.name, s.served.Load())
		if s.antFactor > 0 {
			share, n := antagonistShare(s.episodes, time.Since(start))
			fmt.Printf("antagonist %s episodes=%d share=%.3f\n", s.name, n, share)
		}
	}
}

// ---- load generator ---------------------------------------------------------

type result struct {
	lat     time.Duration // scheduled arrival to end of response; <0: failed
	lag     time.Duration // scheduled arrival to the start of the dial
	backend string
}

func load(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "", "address to load (127.0.0.0/8); several, comma separated: each request to one drawn at random")
	rate := fs.Float64("rate", 1000, "requests per second (Poisson arrivals)")
	duration := fs.Duration("duration", 10*time.Second, "length of the arrival process")
	seed := fs.Uint64("seed", 1, "seed of the arrival times")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of one request")
	maxInflight := fs.Int("max-inflight", 2000, "requests in flight at most; more are dropped")
	fs.Parse(args)
	var aps []netip.AddrPort
	for _, a := range strings.Split(*addr, ",") {
		aps = append(aps, checkLoopback("-addr", a))
	}
	if *rate <= 0 || *rate > 20000 || *duration <= 0 || *duration > 5*time.Minute || *timeout <= 0 || *maxInflight < 1 {
		fmt.Fprintln(os.Stderr, "adaptive load: need 0 < -rate <= 20000, 0 < -duration <= 5m, -timeout > 0, -max-inflight >= 1")
		os.Exit(2)
	}

	// The arrival times first, so that the seed alone fixes them.
	rng := rand.New(rand.NewPCG(*seed, 0x9e3779b97f4a7c15))
	var arrivals []time.Duration
	var targets []string
	for t := time.Duration(0); ; {
		t += time.Duration(rng.ExpFloat64() / *rate * float64(time.Second))
		if t >= *duration {
			break
		}
		arrivals = append(arrivals, t)
	}
	for range arrivals {
		targets = append(targets, aps[rng.IntN(len(aps))].String())
	}
	res := make([]result, len(arrivals))
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: govs-bench-adaptive\r\nConnection: close\r\n\r\n")
	dialer := net.Dialer{Timeout: *timeout}
	var inflight atomic.Int64
	var dropped atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now().Add(20 * time.Millisecond)
	for i, at := range arrivals {
		sched := start.Add(at)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		if inflight.Load() >= int64(*maxInflight) {
			dropped.Add(1)
			res[i].lat = -2
			continue
		}
		inflight.Add(1)
		wg.Add(1)
		go func(r *result, target string) {
			defer func() { inflight.Add(-1); wg.Done() }()
			r.lag = time.Since(sched)
			backend, err := do(&dialer, target, req, sched.Add(*timeout))
			if err != nil {
				r.lat = -1
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			r.lat, r.backend = time.Since(sched), backend
		}(&res[i], targets[i])
	}
	wg.Wait()
	printReport(res, dropped.Load(), firstErr.Load(), *duration)
}

// do sends one request on a new connection and returns the body (the real
// server's name).
func do(d *net.Dialer, addr string, req []byte, deadline time.Time) (string, error) {
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	var buf [512]byte
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	resp := buf[:n]
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
		return "", fmt.Errorf("bad response %q", resp[:min(len(resp), 40)])
	}
	_, body, ok := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !ok {
		return "", fmt.Errorf("truncated response")
	}
	return string(bytes.TrimSpace(body)), nil
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p*float64(len(sorted)))) - 1
	return float64(sorted[min(max(k, 0), len(sorted)-1)]) / 1e6
}

// printReport prints: sent ok err dropped rps p50_ms p90_ms p99_ms p999_ms
// max_ms mean_ms over100ms lag_p99_ms share=NAME:COUNT/... first_err="...".
func printReport(res []result, dropped int64, firstErr any, dur time.Duration) {
	var lat, lag []time.Duration
	per := map[string]int{}
	failed := 0
	var sum time.Duration
	over := 0
	for _, r := range res {
		switch {
		case r.lat == -2:
		case r.lat < 0:
			failed++
		default:
			lat = append(lat, r.lat)
			lag = append(lag, r.lag)
			per[r.backend]++
			sum += r.lat
			if r.lat > 100*time.Millisecond {
				over++
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(lag)
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	var share strings.Builder
	for i, n := range names {
		if i > 0 {
			share.WriteByte('/')
		}
		share.WriteString(n + ":" + strconv.Itoa(per[n]))
	}
	mean := math.NaN()
	if len(lat) > 0 {
		mean = float64(sum) / float64(len(lat)) / 1e6
	}
	mx := math.NaN()
	if len(lat) > 0 {
		mx = float64(lat[len(lat)-1]) / 1e6
	}
	fe := ""
	if s, ok := firstErr.(string); ok {
		fe = s
	}
	fmt.Printf("sent=%d ok=%d err=%d dropped=%d rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mean_ms=%.3f over100ms=%d lag_p99_ms=%.3f share=%s first_err=%q\n",
		len(res)-int(dropped), len(lat), failed, dropped, float64(len(lat))/dur.Seconds(),
		pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 0.999), mx, mean, over, pct(lag, 0.99), share.String(), fe)
}
