package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/moby/sys/signal"

	"github.com/govs-lb/govs/internal/config"
)

// dockerSource follows the running containers that carry a label. A
// container's address is its first network's IP address (sorted by
// network name), or its label govs.address; its port is the block's
// port, else its label govs.port, else its only exposed port; its weight
// is its label govs.weight. A container with a health check serves only
// while healthy. The source lists the containers at start, again on each
// container event of the label (start, die, stop, kill, pause, unpause,
// health_status, destroy) and every interval (an engine that went away is
// noticed even when no event comes). A container sent a signal that stops
// it (docker stop's, or TERM, INT, QUIT, KILL) leaves the pool at once,
// while it still runs: its real server drains, as a Kubernetes endpoint
// does when it starts terminating, instead of taking new connections
// until the process exits and resets them.
type dockerSource struct {
	host     string
	label    string
	port     int
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu       sync.Mutex
	warned   map[string]string // container ID: the problem logged
	stopping map[string]bool   // container IDs sent a stopping signal, until they are gone or start
}

func newDockerSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return &dockerSource{host: dc.Host, label: dc.Label, port: dc.PortNumber(), interval: dc.Interval.D(),
		timeout: dc.Timeout.D(), log: log, warned: map[string]string{}, stopping: map[string]bool{}}, nil
}

func (s *dockerSource) Run(ctx context.Context, report func(Update)) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if s.host != "" {
		opts = append(opts, client.WithHost(s.host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		report(Update{Err: fmt.Errorf("docker client: %w", err)})
		<-ctx.Done()
		return
	}
	defer cli.Close()
	sessions(ctx, s.interval, func() { s.session(ctx, cli, report) })
}

func (s *dockerSource) session(ctx context.Context, cli *client.Client, report func(Update)) {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Events first, then the list: a change between the two is not lost.
	msgs, errs := cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)), filters.Arg("label", s.label))})
	list := func() bool {
		servers, err := s.list(ctx, cli)
		if err != nil {
			report(Update{Err: err})
			return false
		}
		report(Update{Servers: servers})
		return true
	}
	if !list() {
		return
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			if ctx.Err() == nil {
				report(Update{Err: fmt.Errorf("docker events: %w", err)})
			}
			return
		case m := <-msgs:
			s.follow(ctx, cli, m)
			switch {
			case m.Action == events.ActionStart, m.Action == events.ActionDie, m.Action == events.ActionStop,
				m.Action == events.ActionKill, m.Action == events.ActionPause, m.Action == events.ActionUnPause,
				m.Action == events.ActionDestroy, strings.HasPrefix(string(m.Action), "health_status"):
				if !list() {
					return
				}
			}
		case <-tick.C:
			if !list() {
				return
			}
		}
	}
}

// follow keeps the set of containers that are stopping: a kill event with
// a stopping signal adds one; its start (docker restart) ends it, and so
// does a list without it (it stopped). Not its die event: the engine's
// list can still show a container running just after that.
func (s *dockerSource) follow(ctx context.Context, cli *client.Client, m events.Message) {
	id := m.Actor.ID
	switch m.Action {
	case events.ActionKill:
		sig := m.Actor.Attributes["signal"]
		stops := stoppingSignal(sig, "")
		if !stops {
			// Not one of the usual ones: the image's own stop signal
			// (httpd's is WINCH)?
			ictx, cancel := context.WithTimeout(ctx, s.timeout)
			c, err := cli.ContainerInspect(ictx, id)
			cancel()
			stops = err == nil && c.Config != nil && stoppingSignal(sig, c.Config.StopSignal)
		}
		if stops {
			s.mu.Lock()
			s.stopping[id] = true
			s.mu.Unlock()
		}
	case events.ActionStart:
		s.mu.Lock()
		delete(s.stopping, id)
		s.mu.Unlock()
	}
}

// stoppingSignal says whether the kill event's signal (its number, as the
// engine gives it) stops the container: TERM, INT, QUIT and KILL do, and
// so does the container's configured stop signal, read as the engine reads
// it (moby/sys/signal: a number, NAME or SIGNAME, RTMIN+3 for systemd
// images). Others (HUP, USR1: a reload, a log reopen) do not.
func stoppingSignal(event, stopSignal string) bool {
	n, err := strconv.Atoi(event)
	if err != nil || n <= 0 {
		return false
	}
	switch syscall.Signal(n) {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGKILL:
		return true
	}
	if stopSignal == "" {
		return false
	}
	sig, err := signal.ParseSignal(stopSignal)
	return err == nil && sig == syscall.Signal(n)
}

func (s *dockerSource) list(ctx context.Context, cli *client.Client) ([]Server, error) {
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cs, err := cli.ContainerList(lctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", s.label), filters.Arg("status", "running"))})
	if err != nil {
		return nil, fmt.Errorf("docker list of containers labelled %s: %w", s.label, err)
	}
	out := make([]Server, 0, len(cs))
	s.mu.Lock()
	running := make(map[string]bool, len(cs))
	for _, c := range cs {
		running[c.ID] = true
	}
	for id := range s.stopping {
		if !running[id] { // stopped
			delete(s.stopping, id)
		}
	}
	stopping := maps.Clone(s.stopping)
	s.mu.Unlock()
	for _, c := range cs {
		if stopping[c.ID] {
			continue // draining: it was told to stop
		}
		if strings.Contains(c.Status, "(unhealthy)") || strings.Contains(c.Status, "(health: starting)") {
			continue // serves once healthy
		}
		srv, err := s.server(c)
		if err != nil {
			s.warn(c.ID, err.Error())
			continue
		}
		out = append(out, srv)
	}
	return out, nil
}

func (s *dockerSource) warn(id, problem string) {
	s.mu.Lock()
	logged := s.warned[id] == problem
	s.warned[id] = problem
	s.mu.Unlock()
	if !logged {
		s.log.Warn("docker discovery: container left out", "container", id[:min(12, len(id))], "problem", problem)
	}
}

func (s *dockerSource) server(c container.Summary) (Server, error) {
	name := strings.TrimPrefix(strings.Join(c.Names, ","), "/")
	var addr netip.Addr
	if a := c.Labels["govs.address"]; a != "" {
		p, err := netip.ParseAddr(a)
		if err != nil {
			return Server{}, fmt.Errorf("label govs.address %q is not an IP address", a)
		}
		addr = p
	} else if c.NetworkSettings != nil {
		nets := make([]string, 0, len(c.NetworkSettings.Networks))
		for n := range c.NetworkSettings.Networks {
			nets = append(nets, n)
		}
		sort.Strings(nets)
		for _, n := range nets {
			ep := c.NetworkSettings.Networks[n]
			if ep == nil {
				continue
			}
			for _, a := range []string{ep.IPAddress, ep.GlobalIPv6Address} {
				if p, err := netip.ParseAddr(a); err == nil {
					addr = p
					break
				}
			}
			if addr.IsValid() {
				break
			}
		}
	}
	if !addr.IsValid() {
		return Server{}, fmt.Errorf("no IP address (no network with one, no govs.address label)")
	}
	port := s.port
	if port == 0 {
		if l := c.Labels["govs.port"]; l != "" {
			p, err := config.ParsePort(l)
			if err != nil {
				return Server{}, fmt.Errorf("label govs.port %q is not a port", l)
			}
			port = int(p)
		} else {
			seen := map[uint16]bool{}
			for _, p := range c.Ports {
				if p.Type == "tcp" || p.Type == "" {
					seen[p.PrivatePort] = true
				}
			}
			if len(seen) != 1 {
				return Server{}, fmt.Errorf("no port: give the block's port or a govs.port label (%d exposed ports)", len(seen))
			}
			for p := range seen {
				port = int(p)
			}
		}
	}
	srv := Server{Addr: netip.AddrPortFrom(addr.Unmap(), uint16(port)), Weight: -1, Name: name}
	if l := c.Labels["govs.weight"]; l != "" {
		w, err := strconv.Atoi(l)
		if err != nil || w < 0 || w > 65535 {
			return Server{}, fmt.Errorf("label govs.weight %q is not a weight (0..65535)", l)
		}
		srv.Weight = w
	}
	return srv, nil
}
