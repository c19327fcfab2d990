package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/govs-lb/govs/internal/config"
)

// etcdSource watches a key prefix in etcd. Each key under the prefix is a
// server; its value is JSON: {"address": "IP:PORT", "weight": N, "name":
// TEXT}. Registrants attach their keys to a lease they keep alive, so a
// registrant that dies is removed when its lease expires (etcd deletes the
// key, the watch reports it). The source answers on every watch event and
// also reads the whole prefix every interval: a watch says nothing while
// etcd is unreachable (the client reconnects silently), the read says so.
type etcdSource struct {
	endpoints []string
	prefix    string
	interval  time.Duration
	timeout   time.Duration
	log       *slog.Logger

	mu      sync.Mutex
	badSeen map[string]int64 // key: mod revision of a bad value logged
}

func newEtcdSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return &etcdSource{endpoints: dc.Endpoints, prefix: dc.Prefix, interval: dc.Interval.D(), timeout: dc.Timeout.D(),
		log: log, badSeen: map[string]int64{}}, nil
}

// etcdValue is a server's value.
type etcdValue struct {
	Address string `json:"address"`
	Weight  *int   `json:"weight"`
	Name    string `json:"name"`
}

func (s *etcdSource) Run(ctx context.Context, report func(Update)) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.endpoints, DialTimeout: s.timeout, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		// Only a malformed configuration fails here: the client dials lazily.
		report(Update{Err: fmt.Errorf("etcd client: %w", err)})
		<-ctx.Done()
		return
	}
	defer cli.Close()
	sessions(ctx, s.interval, func() { s.session(ctx, cli, report) })
}

// session reads the prefix, then follows the watch from that revision,
// reading again every interval, until an error.
func (s *etcdSource) session(ctx context.Context, cli *clientv3.Client, report func(Update)) {
	set, rev, err := s.read(ctx, cli)
	if err != nil {
		report(Update{Err: err})
		return
	}
	report(Update{Servers: values(set)})
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				err := fmt.Errorf("etcd watch of %s: closed", s.prefix)
				if ok {
					err = fmt.Errorf("etcd watch of %s: %w", s.prefix, resp.Err())
				}
				report(Update{Err: err})
				return
			}
			for _, ev := range resp.Events {
				k := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					delete(set, k)
					continue
				}
				if srv, ok := s.parse(k, ev.Kv.Value, ev.Kv.ModRevision); ok {
					set[k] = srv
				} else {
					delete(set, k)
				}
			}
			report(Update{Servers: values(set)})
		case <-tick.C:
			fresh, _, err := s.read(ctx, cli)
			if err != nil {
				report(Update{Err: err})
				return // read again, and watch afresh, once it answers
			}
			set = fresh
			report(Update{Servers: values(set)})
		}
	}
}

func (s *etcdSource) read(ctx context.Context, cli *clientv3.Client) (map[string]Server, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := cli.Get(rctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd read of %s at %s: %w", s.prefix, strings.Join(s.endpoints, ","), err)
	}
	set := make(map[string]Server, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if srv, ok := s.parse(string(kv.Key), kv.Value, kv.ModRevision); ok {
			set[string(kv.Key)] = srv
		}
	}
	return set, resp.Header.Revision, nil
}

// parse reads one value; a bad one is left out (one registrant's mistake
// must not fail the whole source) and logged once per revision.
func (s *etcdSource) parse(key string, val []byte, rev int64) (Server, bool) {
	var v etcdValue
	err := json.Unmarshal(val, &v)
	var srv Server
	if err == nil {
		name := v.Name
		if name == "" {
			name = key
		}
		srv, err = parseEntry(v.Address, v.Weight, name)
	}
	if err != nil {
		s.mu.Lock()
		logged := s.badSeen[key] == rev
		s.badSeen[key] = rev
		s.mu.Unlock()
		if !logged {
			s.log.Warn("etcd discovery: value left out: want JSON {\"address\": \"IP:PORT\", \"weight\": N}", "key", key, "err", err)
		}
		return Server{}, false
	}
	return srv, true
}

func values(m map[string]Server) []Server {
	out := make([]Server, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}
