package health

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/registry"
	"github.com/govs-lb/govs/internal/script"
)

// Spec is one real server's health check, resolved from the configuration:
// what to check, where, and how often. Two Specs that are reflect.DeepEqual
// check the same way, so a reload that keeps one keeps its checker running.
type Spec struct {
	Type   string
	Target netip.AddrPort // the real server, with port overridden by the check's port

	Interval         time.Duration
	Timeout          time.Duration
	Retry            int
	DelayBeforeRetry time.Duration

	// http, https
	Path         string
	ExpectStatus []int // empty: 200..299
	ExpectDigest string
	Host         string
	// URLs are the check's URLs when it has several (keepalived's url
	// blocks): each must answer as it expects. Empty: Path, ExpectStatus
	// and ExpectDigest are the one URL.
	URLs      []URLSpec
	SNI       string
	TLSVerify bool
	TLSCA     string
	// dns
	QueryName string
	QueryType string
	// udp
	Payload      []byte
	RequireReply bool
	ExpectReply  []byte // (value, mask) pairs, see config.ParseHex
	// smtp: Hosts, when set, are asked instead of Target.
	HeloName string
	Hosts    []HostSpec
	// script
	Command string
	Dynamic bool
	// RunAs is who the script runs as (script_user, script_security).
	RunAs script.Policy
	// file
	File       string
	FileWeight int
	// AgentPort adds an HAProxy agent check to any other check.
	AgentPort uint16
}

// HostSpec is one server an smtp check asks, from Bind when valid.
type HostSpec struct {
	Target netip.AddrPort
	Bind   netip.Addr
}

// URLSpec is one URL of an http check.
type URLSpec struct {
	Path         string
	ExpectStatus []int // empty: 200..299
	ExpectDigest string
	Host         string // empty: the check's Host
}

// SpecFor resolves a validated configuration's check of the real server at addr.
func SpecFor(hc *config.HealthCheck, addr netip.AddrPort) Spec {
	s := Spec{
		Type:             hc.Type,
		Target:           addr,
		Interval:         hc.Interval.D(),
		Timeout:          hc.Timeout.D(),
		DelayBeforeRetry: hc.DelayBeforeRetry.D(),
		Path:             hc.Path,
		ExpectStatus:     hc.ExpectStatus,
		ExpectDigest:     hc.ExpectDigest,
		Host:             hc.Host,
		SNI:              hc.SNI,
		TLSVerify:        hc.TLSVerify,
		TLSCA:            hc.TLSCA,
		QueryName:        hc.QueryName,
		QueryType:        hc.QueryType,
		RequireReply:     hc.RequireReply || hc.ExpectReply != "",
		HeloName:         hc.HeloName,
		Command:          hc.Command,
		Dynamic:          hc.Dynamic,
		RunAs:            hc.RunAs,
		File:             hc.File,
		AgentPort:        uint16(hc.AgentPort),
	}
	for _, u := range hc.URLs {
		s.URLs = append(s.URLs, URLSpec{Path: u.Path, ExpectStatus: u.ExpectStatus, ExpectDigest: u.ExpectDigest, Host: u.Host})
	}
	if hc.Retry != nil {
		s.Retry = *hc.Retry
	}
	if hc.Port != 0 {
		s.Target = netip.AddrPortFrom(addr.Addr(), uint16(hc.Port))
	}
	for _, h := range hc.Hosts {
		hs := HostSpec{Target: s.Target, Bind: h.Bind.Addr}
		if h.Address.IsValid() {
			hs.Target = netip.AddrPortFrom(h.Address.Addr, hs.Target.Port())
		}
		if h.Port != 0 {
			hs.Target = netip.AddrPortFrom(hs.Target.Addr(), uint16(h.Port))
		}
		s.Hosts = append(s.Hosts, hs)
	}
	if hc.FileWeight != nil {
		s.FileWeight = *hc.FileWeight
	}
	s.Payload, _ = config.ParseHex(hc.Payload, false)
	s.ExpectReply, _ = config.ParseHex(hc.ExpectReply, true)
	return s
}

// Checker runs one kind of check against one real server. Check returns
// when ctx is done at the latest; the Runner gives it the check's timeout.
// A Checker is used by one goroutine at a time.
type Checker interface {
	Check(ctx context.Context) Result
}

// Factory builds the Checker of a Spec.
type Factory func(Spec) (Checker, error)

var checkTypes = registry.New[Factory]("health: duplicate check type")

// Register makes a check type available by name. It panics on a duplicate:
// registration happens in init functions.
func Register(typ string, f Factory) { checkTypes.Register(typ, f) }

// Types lists the registered check types, sorted.
func Types() []string { return checkTypes.Names() }

// New builds the checker of s; with an agent port, an agent is asked after
// each check of the main type (see agent.go).
func New(s Spec) (Checker, error) {
	f, ok := checkTypes.Lookup(s.Type)
	if !ok {
		return nil, fmt.Errorf("unknown health check type %q (known: %v)", s.Type, Types())
	}
	c, err := f(s)
	if err != nil {
		return nil, fmt.Errorf("%s check of %s: %w", s.Type, s.Target, err)
	}
	if s.AgentPort != 0 && s.Type != "agent" {
		c = &withAgent{main: c, agent: newAgent(netip.AddrPortFrom(s.Target.Addr(), s.AgentPort))}
	}
	return c, nil
}
