package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/govs-lb/govs/internal/config"
)

// connectRetry is how soon a peer that did not answer is tried again.
// gobgp's default is 120s, far too slow for a director that restarts.
const connectRetry = 3

// Speaker is the thin adapter over gobgp's server: peers in, routes out.
type Speaker struct {
	log *slog.Logger
	s   *server.BgpServer
	asn uint32

	mu     sync.Mutex
	peers  map[netip.Addr]*config.BGPPeer
	routes map[netip.Prefix]*apiutil.Path
	stop   bool
}

// PeerStatus is one peer's session as the API shows it.
type PeerStatus struct {
	Address    string    `json:"address"`
	ASN        uint32    `json:"asn"`
	State      string    `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Up         bool      `json:"up"`
	Since      time.Time `json:"since,omitzero"` // when the session was established
	Flaps      uint32    `json:"flaps"`          // times the session went down
	Advertised uint64    `json:"advertised"`     // prefixes sent to the peer
	BFD        string    `json:"bfd,omitempty"`  // the BFD session's state, when BFD is on
	HoldTime   uint64    `json:"hold_time"`      // negotiated, seconds
}

// NewSpeaker starts a BGP speaker with cfg's identity and peers.
func NewSpeaker(log *slog.Logger, cfg *config.BGP) (*Speaker, error) {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn) // gobgp is chatty at info
	s := server.NewBgpServer(server.LoggerOption(log.With("component", "gobgp"), lvl))
	go s.Serve()
	sp := &Speaker{log: log, s: s, asn: uint32(cfg.ASN), peers: map[netip.Addr]*config.BGPPeer{}, routes: map[netip.Prefix]*apiutil.Path{}}
	port := int32(-1) // no listener: the speaker connects out
	if cfg.ListenPort != 0 {
		port = int32(cfg.ListenPort)
	} else if slices.ContainsFunc(cfg.Peers, func(p *config.BGPPeer) bool { return p.Passive }) {
		port = 179
	}
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: uint32(cfg.ASN), RouterId: cfg.RouterID.String(), ListenPort: port,
	}}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("start bgp: %w", err)
	}
	// What the speaker learns from its peers is never installed (no zebra):
	// the director originates routes, it does not route by them. (A global
	// import policy that rejects would reject the director's own paths
	// too: gobgp applies it to local paths.)
	if err := sp.SetPeers(cfg.Peers); err != nil {
		sp.Stop()
		return nil, err
	}
	return sp, nil
}

// SetPeers makes the peer list cfg's: new peers are added, removed ones
// dropped, changed ones replaced (their sessions restart).
func (sp *Speaker) SetPeers(peers []*config.BGPPeer) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	ctx := context.Background()
	want := map[netip.Addr]*config.BGPPeer{}
	var errs []error
	for _, p := range peers {
		want[p.Address.Addr] = p
	}
	for a, old := range sp.peers {
		if p, ok := want[a]; ok && samePeer(p, old) {
			continue
		}
		if err := sp.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp peer %s: remove: %w", a, err))
		}
		delete(sp.peers, a)
	}
	for a, p := range want {
		if _, ok := sp.peers[a]; ok {
			continue
		}
		ap, err := apiPeer(p)
		if err == nil {
			err = sp.s.AddPeer(ctx, &api.AddPeerRequest{Peer: ap})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp peer %s: %w", a, err))
			continue
		}
		sp.peers[a] = p
	}
	return errors.Join(errs...)
}

func samePeer(a, b *config.BGPPeer) bool {
	return a.Address == b.Address && a.ASN == b.ASN && a.Port == b.Port && a.PasswordFile == b.PasswordFile &&
		a.HoldTime == b.HoldTime && a.Keepalive == b.Keepalive && a.Passive == b.Passive &&
		a.LocalAddress == b.LocalAddress && a.BFD == b.BFD && a.BFDInterval == b.BFDInterval
}

// readPassword reads the MD5 password: the file's first line.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" || len(pw) > 80 { // TCP_MD5SIG_MAXKEYLEN
		return "", fmt.Errorf("password_file %s: the first line must hold a password of 1-80 bytes", path)
	}
	return pw, nil
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

func apiPeer(p *config.BGPPeer) (*api.Peer, error) {
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: uint32(p.ASN)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: uint64(p.HoldTime.D() / time.Second), KeepaliveInterval: uint64(p.Keepalive.D() / time.Second),
			ConnectRetry: connectRetry, IdleHoldTimeAfterReset: connectRetry,
		}},
		Transport: &api.Transport{PassiveMode: p.Passive, RemotePort: uint32(p.Port)},
		// A session carries the VIPs of its own family: an IPv4 peer the
		// /32s, an IPv6 peer the /128s, each with a next hop of that family.
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(p.Address.Addr), Enabled: true}}},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.PasswordFile != "" {
		pw, err := readPassword(p.PasswordFile)
		if err != nil {
			return nil, err
		}
		ap.Conf.AuthPassword = pw
	}
	if p.BFD {
		us := uint32(p.BFDInterval.D() / time.Microsecond)
		ap.Bfd = &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: us, RequiredMinimumReceive: us, DetectionMultiplier: 3}
	}
	return ap, nil
}

// path builds the gobgp path announcing r.
func (sp *Speaker) path(r Route) (*apiutil.Path, error) {
	nlri, err := bgppkt.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, err
	}
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0)} // IGP
	fam := bgppkt.RF_IPv4_UC
	if r.Prefix.Addr().Is4() {
		nh, err := bgppkt.NewPathAttributeNextHop(netip.IPv4Unspecified()) // the session's local address
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = bgppkt.RF_IPv6_UC
		mp, err := bgppkt.NewPathAttributeMpReachNLRI(fam, []bgppkt.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	if r.Attrs.Prepend > 0 {
		// gobgp adds the local ASN once toward an eBGP peer; these are the
		// extra copies.
		as := make([]uint32, r.Attrs.Prepend)
		for i := range as {
			as[i] = sp.asn
		}
		attrs = append(attrs, bgppkt.NewPathAttributeAsPath([]bgppkt.AsPathParamInterface{
			bgppkt.NewAs4PathParam(bgppkt.BGP_ASPATH_ATTR_TYPE_SEQ, as)}))
	}
	if r.Attrs.MED != nil {
		attrs = append(attrs, bgppkt.NewPathAttributeMultiExitDisc(*r.Attrs.MED))
	}
	if len(r.Attrs.Communities) > 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeCommunities(r.Attrs.Communities))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs}, nil
}

// Announce sends r to every peer of its family (replacing an earlier
// announcement of the prefix).
func (sp *Speaker) Announce(r Route) error {
	p, err := sp.path(r)
	if err != nil {
		return fmt.Errorf("announce %s: %w", r.Prefix, err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.stop {
		return nil
	}
	if _, err := sp.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		return fmt.Errorf("announce %s: %w", r.Prefix, err)
	}
	sp.routes[r.Prefix] = p
	return nil
}

// Withdraw takes the prefix back from every peer.
func (sp *Speaker) Withdraw(p netip.Prefix) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	path, ok := sp.routes[p]
	if !ok {
		return nil
	}
	delete(sp.routes, p)
	// By the path itself: gobgp's path UUIDs do not survive its own
	// bookkeeping of a local path once the sessions have changed.
	if err := sp.s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		return fmt.Errorf("withdraw %s: %w", p, err)
	}
	return nil
}

// Announced lists the prefixes sent, sorted.
func (sp *Speaker) Announced() []netip.Prefix {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	out := make([]netip.Prefix, 0, len(sp.routes))
	for p := range sp.routes {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

var stateNames = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "idle",
	api.PeerState_SESSION_STATE_CONNECT:     "connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "active",
	api.PeerState_SESSION_STATE_OPENSENT:    "opensent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "openconfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: "established",
}

// Peers reports every peer's session, sorted by address.
func (sp *Speaker) Peers(ctx context.Context) []PeerStatus {
	var out []PeerStatus
	err := sp.s.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		st := p.GetState()
		ps := PeerStatus{Address: st.GetNeighborAddress(), ASN: st.GetPeerAsn(), State: stateNames[st.GetSessionState()],
			Flaps: st.GetFlops()}
		if ps.Address == "" {
			ps.Address = p.GetConf().GetNeighborAddress()
		}
		if ps.State == "" {
			ps.State = "idle"
		}
		ps.Up = st.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
		if ts := p.GetTimers().GetState(); ts != nil {
			ps.HoldTime = ts.GetNegotiatedHoldTime()
			if ps.Up && ts.GetUptime() != nil && ts.GetUptime().GetSeconds() > 0 {
				ps.Since = ts.GetUptime().AsTime()
			}
		}
		for _, af := range p.GetAfiSafis() {
			ps.Advertised += af.GetState().GetAdvertised()
		}
		if p.GetBfd().GetEnabled() || st.GetBfdState() != nil {
			ps.BFD = strings.ToLower(strings.TrimPrefix(st.GetBfdState().GetSessionState().String(), "BFD_SESSION_STATE_"))
		}
		out = append(out, ps)
	})
	if err != nil {
		sp.log.Debug("bgp: list peers", "err", err)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// WithdrawAll takes every route back and announces nothing more.
func (sp *Speaker) WithdrawAll() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.stop = true
	if len(sp.routes) == 0 {
		return
	}
	if err := sp.s.DeletePath(apiutil.DeletePathRequest{DeleteAll: true}); err != nil {
		sp.log.Warn("bgp: withdraw all", "err", err)
	}
	clear(sp.routes)
}

// Stop ends every session (a NOTIFICATION Cease to each peer) and the
// speaker.
func (sp *Speaker) Stop() {
	sp.WithdrawAll()
	sp.s.Stop() // StopBgp (a Cease to every peer), then the BFD server
}
