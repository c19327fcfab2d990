package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// apiFunc is a handler that reports failure by returning an error.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) h(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			e := s.toError(err)
			if e.Status >= 500 {
				s.log.Error("control API", "method", r.Method, "path", r.URL.Path, "err", e.Message)
			}
			writeJSON(w, e.Status, e)
		}
	})
}

// routeTable lists every endpoint; docs/openapi.yaml must list the same.
func (s *Server) routeTable() []route {
	const svc = "/api/v1/services/{proto}/{addr}"
	const rs = svc + "/servers/{server}"
	return []route{
		{"GET", "/api/v1/version", s.h(s.getVersion)},
		{"GET", "/api/v1/services", s.h(s.listServices)},
		{"POST", "/api/v1/services", s.h(s.createService)},
		{"DELETE", "/api/v1/services", s.h(s.clearServices)},
		{"GET", svc, s.h(s.getService)},
		{"PUT", svc, s.h(s.putService)},
		{"PATCH", svc, s.h(s.patchService)},
		{"DELETE", svc, s.h(s.deleteService)},
		{"POST", svc + "/zero", s.h(s.zeroService)},
		{"GET", svc + "/servers", s.h(s.listRealServers)},
		{"POST", svc + "/servers", s.h(s.createRealServer)},
		{"GET", rs, s.h(s.getRealServer)},
		{"PUT", rs, s.h(s.putRealServer)},
		{"PATCH", rs, s.h(s.patchRealServer)},
		{"DELETE", rs, s.h(s.deleteRealServer)},
		{"PUT", rs + "/drain", s.h(s.drainOn)},
		{"DELETE", rs + "/drain", s.h(s.drainOff)},
		{"GET", "/api/v1/health", s.h(s.getHealth)},
		{"GET", "/api/v1/vrrp", s.h(s.getVRRP)},
		{"GET", "/api/v1/bgp", s.h(s.getBGP)},             // bgp.go
		{"GET", "/api/v1/discovery", s.h(s.getDiscovery)}, // discovery.go
		{"GET", "/api/v1/sync", s.h(s.getSync)},
		{"POST", "/api/v1/sync/start", s.h(s.startSync)}, // sync.go
		{"POST", "/api/v1/sync/stop", s.h(s.stopSync)},
		{"GET", "/api/v1/stats", s.h(s.getStats)},
		{"GET", "/api/v1/forecasts", s.h(s.getForecasts)},
		{"GET", "/api/v1/connections", s.h(s.listConnections)},
		{"POST", "/api/v1/zero", s.h(s.zeroAll)},
		{"GET", "/metrics", s.Metrics()},
	}
}

// requestError is an error about a decoded request body.
type requestError struct {
	err error
	doc *document
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func invalid(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &Error{Message: msg, Field: field, Code: CodeInvalid}
}

// toError turns any error of a handler into the API's error answer.
func (s *Server) toError(err error) *Error {
	var doc *document
	var re *requestError
	if errors.As(err, &re) {
		doc = re.doc
	}
	var e *Error
	var list config.ErrorList
	var ce *director.ChangeError
	switch {
	case errors.As(err, &e):
		out := *e
		if out.Status == 0 {
			out.Status = statusOf(out.Code)
		}
		return &out
	case errors.Is(err, director.ErrServiceExists):
		return &Error{Message: err.Error(), Code: CodeServiceExists, Status: http.StatusConflict}
	case errors.Is(err, director.ErrNoService):
		return &Error{Message: err.Error(), Code: CodeNoService, Status: http.StatusNotFound}
	case errors.Is(err, director.ErrDestExists):
		return &Error{Message: err.Error(), Code: CodeDestExists, Status: http.StatusConflict}
	case errors.Is(err, director.ErrDiscovered):
		return &Error{Message: err.Error(), Code: CodeForbidden, Status: http.StatusConflict}
	case errors.Is(err, director.ErrNoDest):
		return &Error{Message: err.Error(), Code: CodeNoDest, Status: http.StatusNotFound}
	case errors.As(err, &list):
		out := fieldErrors(list, doc)
		out.Status = http.StatusBadRequest
		return out
	case errors.As(err, &ce):
		return &Error{Message: "the dataplane refused the change, nothing changed: " + ce.Err.Error(), Code: CodeRefused, Status: http.StatusConflict}
	}
	return &Error{Message: err.Error(), Code: CodeInternal, Status: http.StatusInternalServerError}
}

func statusOf(code string) int {
	switch code {
	case CodeNotFound, CodeNoService, CodeNoDest:
		return http.StatusNotFound
	case CodeServiceExists, CodeDestExists, CodeRefused:
		return http.StatusConflict
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// target is a virtual service (and real server) named by a request path.
type target struct {
	proto, vip string // as in the configuration: "tcp", "10.0.0.1:80"; "fwm" (or "fwm6"), "7"
	key        string
	backend    netip.AddrPort
	fwmark     uint32 // a fwmark service's mark, from /services/fwm/MARK
}

// ServiceID is the protocol and address segments of a virtual service's
// API path: "tcp", "10.0.0.1:80"; "fwm" (IPv6: "fwm6"), "7" for a fwmark
// service.
func ServiceID(vs *config.VirtualServer) (proto, addr string) {
	if vs.FWMark != 0 {
		p, n, _ := strings.Cut(vs.Key(), "/")
		return p, n
	}
	return string(vs.Protocol), vs.Address.String()
}

// backendID is t's real server as the configuration writes it: without a
// port when it has none (a fwmark service's, which keeps the packet's).
func (t target) backendID() string {
	if t.fwmark != 0 && t.backend.Port() == 0 {
		return t.backend.Addr().String()
	}
	return t.backend.String()
}

func serviceTarget(r *http.Request) (target, error) {
	proto := strings.ToLower(r.PathValue("proto"))
	if proto == "fwm" || proto == "fwm6" {
		m, err := config.ParseFWMark(r.PathValue("addr"))
		if err != nil {
			return target{}, invalid("fwmark", "%v in path", err)
		}
		key := config.FWMarkKey(m, proto == "fwm6")
		_, n, _ := strings.Cut(key, "/")
		return target{proto: proto, vip: n, key: key, fwmark: m}, nil
	}
	if proto != string(config.TCP) && proto != string(config.UDP) {
		return target{}, invalid("protocol", "invalid protocol %q in path (tcp or udp; fwm or fwm6 for a firewall-mark service)", r.PathValue("proto"))
	}
	ap, err := config.ParseAddrPort(r.PathValue("addr"))
	if err != nil {
		return target{}, invalid("address", "invalid virtual service address in path: %v; want VIP:PORT or [VIP]:PORT", err)
	}
	return target{proto: proto, vip: ap.String(), key: proto + "/" + ap.String()}, nil
}

func backendTarget(r *http.Request) (target, error) {
	t, err := serviceTarget(r)
	if err != nil {
		return t, err
	}
	ap, err := config.ParseAddrPort(r.PathValue("server"))
	if err != nil && t.fwmark != 0 {
		// A fwmark service's real server may have no port (ADDRESS, or
		// port 0 as ipvsadm lists it): it keeps the packet's.
		srv := r.PathValue("server")
		if a, aerr := netip.ParseAddr(strings.Trim(srv, "[]")); aerr == nil {
			ap, err = netip.AddrPortFrom(a.Unmap(), 0), nil
		} else if p, perr := netip.ParseAddrPort(srv); perr == nil && p.Port() == 0 {
			ap, err = netip.AddrPortFrom(p.Addr().Unmap(), 0), nil
		}
	}
	if err != nil {
		return t, invalid("server", "invalid real server address in path: %v; want ADDRESS:PORT or [ADDRESS]:PORT", err)
	}
	t.backend = ap
	return t, nil
}

// serviceConfig returns the running configuration of a virtual service.
func (s *Server) serviceConfig(key string) (*config.VirtualServer, error) {
	if cfg := s.d.Config(); cfg != nil {
		for _, vs := range cfg.VirtualServers {
			if vs.Key() == key {
				return vs, nil
			}
		}
	}
	return nil, director.ErrNoService
}

func realServerConfig(vs *config.VirtualServer, addr netip.AddrPort) (*config.RealServer, int) {
	for i, rs := range vs.RealServers {
		if rs.Address.AddrPort() == addr {
			return rs, i
		}
	}
	return nil, -1
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, Version{Version: s.version, API: "v1"})
	return nil
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) error {
	out := []object{}
	if cfg := s.d.Config(); cfg != nil {
		for _, vc := range cfg.VirtualServers {
			o, err := s.serviceObject(vc)
			if err != nil {
				return err
			}
			out = append(out, o)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	_, vc, err := s.targetService(r)
	if err != nil {
		return err
	}
	return s.writeService(w, http.StatusOK, vc)
}

func (s *Server) writeService(w http.ResponseWriter, status int, vc *config.VirtualServer) error {
	o, err := s.serviceObject(vc)
	if err != nil {
		return err
	}
	writeJSON(w, status, o)
	return nil
}

func (s *Server) createService(w http.ResponseWriter, r *http.Request) error {
	obj, err := readObject(w, r)
	if err != nil {
		return err
	}
	vs, doc, err := decodeService(obj)
	if err != nil {
		return &requestError{err, doc}
	}
	if err := s.checkCommands(nil, serviceCommands(vs)); err != nil {
		return err
	}
	if err := s.d.AddService(vs); err != nil {
		return &requestError{err, doc}
	}
	s.log.Info("virtual service added through the API", append(s.svcAttrs(vs.Key()), "forwarding", string(vs.Forwarding))...)
	w.Header().Set("Location", ServicePath(ServiceID(vs)))
	// vs is now part of the configuration in force, which is never
	// changed in place: it is what was written, whatever changes follow.
	return s.writeService(w, http.StatusCreated, vs)
}

// putService replaces a virtual service's configuration. Without a
// real_servers key its real servers are kept.
func (s *Server) putService(w http.ResponseWriter, r *http.Request) error {
	t, err := serviceTarget(r)
	if err != nil {
		return err
	}
	obj, err := readObject(w, r)
	if err != nil {
		return err
	}
	return s.changeService(w, t, func(*config.VirtualServer) (map[string]any, error) { return obj, nil })
}

// patchService merges a JSON merge patch (RFC 7396) into a virtual
// service's configuration.
func (s *Server) patchService(w http.ResponseWriter, r *http.Request) error {
	t, err := serviceTarget(r)
	if err != nil {
		return err
	}
	patch, err := readObject(w, r)
	if err != nil {
		return err
	}
	return s.changeService(w, t, func(cur *config.VirtualServer) (map[string]any, error) {
		o, err := spec(cur)
		if err != nil {
			return nil, err
		}
		return mergePatch(toMap(o), patch), nil
	})
}

// changeService replaces a virtual service's configuration with the body
// that build makes from the current one. It runs within the director's
// change, so concurrent changes cannot interleave between reading the
// current configuration and replacing it.
func (s *Server) changeService(w http.ResponseWriter, t target, build func(*config.VirtualServer) (map[string]any, error)) error {
	var doc *document
	var applied *config.VirtualServer
	var before, after config.VirtualServer
	err := s.d.UpdateService(t.key, func(cur *config.VirtualServer) error {
		before = copyService(cur)
		obj, err := build(cur)
		if err != nil {
			return err
		}
		if t.fwmark != 0 {
			if err := sameMark(obj, t); err != nil {
				return err
			}
		} else {
			if err := sameIdentity(obj, "protocol", t.proto); err != nil {
				return err
			}
			if err := sameIdentity(obj, "address", t.vip); err != nil {
				return err
			}
		}
		_, hasReals := obj["real_servers"]
		vs, d, err := decodeService(obj)
		doc = d
		if err != nil {
			return err
		}
		if !hasReals {
			vs.RealServers = cur.RealServers
		}
		if err := s.checkCommands(serviceCommands(cur), serviceCommands(vs)); err != nil {
			return err
		}
		*cur = *vs
		applied = cur
		after = copyService(vs)
		return nil
	})
	if err != nil {
		return &requestError{err, doc}
	}
	s.log.Info("virtual service changed through the API", append(s.svcAttrs(t.key), "changes", changes(&before, &after, "real_servers"))...)
	// The answer describes the service as this change wrote it (applied
	// is in the configuration it applied), not as a later change left it.
	return s.writeService(w, http.StatusOK, applied)
}

// sameIdentity fills in an identity key from the path, or checks that the
// body agrees with it.
func sameIdentity(obj map[string]any, key, want string) error {
	v, ok := obj[key]
	if !ok {
		obj[key] = want
		return nil
	}
	got, _ := v.(string)
	if key == "protocol" {
		got = strings.ToLower(got)
	}
	if key == "address" {
		if ap, err := config.ParseAddrPort(got); err == nil {
			got = ap.String()
		} else if a, err := netip.ParseAddr(strings.Trim(got, "[]")); err == nil {
			// No port: a real server then has its service's port; the
			// path says which, and the address must agree.
			if w, err := netip.ParseAddrPort(want); err == nil && a.Unmap() == w.Addr() {
				got = want
			}
		}
	}
	if got != want {
		return invalid(key, "%v differs from the path's %s: the %s identifies the entry and cannot change (delete it and create another)", v, want, key)
	}
	obj[key] = want
	return nil
}

// sameMark is sameIdentity for a fwmark service: its fwmark and family.
func sameMark(obj map[string]any, t target) error {
	if v, ok := obj["fwmark"]; ok {
		m, err := config.ParseFWMark(fmt.Sprint(v))
		if err != nil || m != t.fwmark {
			return invalid("fwmark", "%v differs from the path's %d: the fwmark identifies the service and cannot change (delete it and create another)", v, t.fwmark)
		}
	}
	obj["fwmark"] = t.fwmark
	want := config.FamilyIPv4
	if t.proto == "fwm6" {
		want = config.FamilyIPv6
	}
	if v, ok := obj["family"]; ok {
		got := fmt.Sprint(v)
		if got == "" {
			got = config.FamilyIPv4
		}
		if got != want {
			return invalid("family", "%v differs from the path's %s: the family identifies the service and cannot change (delete it and create another)", v, want)
		}
	}
	if want == config.FamilyIPv6 {
		obj["family"] = want
	}
	return nil
}

func (s *Server) deleteService(w http.ResponseWriter, r *http.Request) error {
	t, err := serviceTarget(r)
	if err != nil {
		return err
	}
	attrs := s.svcAttrs(t.key)
	if err := s.d.DeleteService(t.key); err != nil {
		return err
	}
	s.log.Info("virtual service deleted through the API", attrs...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) clearServices(w http.ResponseWriter, r *http.Request) error {
	if err := s.d.Clear(); err != nil {
		return err
	}
	s.log.Info("virtual service table cleared through the API")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRealServers(w http.ResponseWriter, r *http.Request) error {
	_, vc, err := s.targetService(r)
	if err != nil {
		return err
	}
	o, err := s.serviceObject(vc)
	if err != nil {
		return err
	}
	rs := o.get("real_servers")
	if rs == nil {
		rs = []any{}
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

func (s *Server) getRealServer(w http.ResponseWriter, r *http.Request) error {
	t, err := backendTarget(r)
	if err != nil {
		return err
	}
	return s.writeRealServer(w, http.StatusOK, t)
}

func (s *Server) writeRealServer(w http.ResponseWriter, status int, t target) error {
	vc, err := s.serviceConfig(t.key)
	if err != nil {
		return err
	}
	rc, _ := realServerConfig(vc, t.backend)
	if rc == nil {
		return director.ErrNoDest
	}
	return s.writeRealServerConfig(w, status, t.key, rc)
}

func (s *Server) writeRealServerConfig(w http.ResponseWriter, status int, key string, rc *config.RealServer) error {
	o, err := s.realServerObject(key, rc)
	if err != nil {
		return err
	}
	writeJSON(w, status, o)
	return nil
}

// forwardingParam is the ?forwarding= of real server changes (govsadm -m):
// govs forwards per virtual service, so a real server's forwarding method
// must be its service's. A service without real servers takes the method
// of its first one.
func forwardingParam(r *http.Request) (func(*config.VirtualServer) error, error) {
	f := strings.ToLower(r.URL.Query().Get("forwarding"))
	if f == "" {
		return nil, nil
	}
	switch config.Forwarding(f) {
	case config.Proxy, config.NAT, config.FullNAT, config.DR:
	default:
		return nil, invalid("forwarding", "invalid forwarding %q (proxy, nat, fullnat or dr)", f)
	}
	return func(vs *config.VirtualServer) error {
		if vs.Forwarding == config.Forwarding(f) {
			return nil
		}
		if len(vs.RealServers) > 1 {
			return invalid("forwarding", "virtual service %s forwards by %s; govs sets the forwarding method per virtual service, not per real server (change the service's forwarding first)", vs.Key(), vs.Forwarding)
		}
		vs.Forwarding = config.Forwarding(f)
		return nil
	}, nil
}

func (s *Server) createRealServer(w http.ResponseWriter, r *http.Request) error {
	t, err := serviceTarget(r)
	if err != nil {
		return err
	}
	fwd, err := forwardingParam(r)
	if err != nil {
		return err
	}
	obj, err := readObject(w, r)
	if err != nil {
		return err
	}
	rs, doc, err := decodeRealServer(obj, t)
	if err != nil {
		return &requestError{err, doc}
	}
	if err := s.checkCommands(nil, realServerCommands(rs)); err != nil {
		return err
	}
	fwdBefore := s.forwardingOf(t.key)
	if err := s.d.AddRealServer(t.key, rs, fwd); err != nil {
		return &requestError{err, doc}
	}
	t.backend = rs.Address.AddrPort()
	s.log.Info("real server added through the API", append(s.svcAttrs(t.key), "backend", t.backend.String(), "weight", rs.Weight)...)
	s.logForwardingChange(t.key, fwdBefore)
	w.Header().Set("Location", RealServerPath(t.proto, t.vip, t.backendID()))
	// rs is in the configuration applied: the answer describes what was
	// written even if another request deletes or changes it meanwhile
	// (reading it back by address answered 404 then).
	return s.writeRealServerConfig(w, http.StatusCreated, t.key, rs)
}

func (s *Server) putRealServer(w http.ResponseWriter, r *http.Request) error {
	t, err := backendTarget(r)
	if err != nil {
		return err
	}
	obj, err := readObject(w, r)
	if err != nil {
		return err
	}
	return s.changeRealServer(w, r, t, func(*config.RealServer) (map[string]any, error) { return obj, nil })
}

func (s *Server) patchRealServer(w http.ResponseWriter, r *http.Request) error {
	t, err := backendTarget(r)
	if err != nil {
		return err
	}
	patch, err := readObject(w, r)
	if err != nil {
		return err
	}
	return s.changeRealServer(w, r, t, func(cur *config.RealServer) (map[string]any, error) {
		o, err := spec(cur)
		if err != nil {
			return nil, err
		}
		return mergePatch(toMap(o), patch), nil
	})
}

// changeRealServer is changeService for a real server.
func (s *Server) changeRealServer(w http.ResponseWriter, r *http.Request, t target, build func(*config.RealServer) (map[string]any, error)) error {
	fwd, err := forwardingParam(r)
	if err != nil {
		return err
	}
	var doc *document
	var applied *config.RealServer
	var before, after config.RealServer
	fwdBefore := s.forwardingOf(t.key)
	err = s.d.UpdateRealServer(t.key, t.backend, func(cur *config.RealServer) error {
		before = *cur
		obj, err := build(cur)
		if err != nil {
			return err
		}
		if err := sameIdentity(obj, "address", t.backendID()); err != nil {
			return err
		}
		rs, d, err := decodeRealServer(obj, t)
		doc = d
		if err != nil {
			return err
		}
		if err := s.checkCommands(realServerCommands(cur), realServerCommands(rs)); err != nil {
			return err
		}
		*cur = *rs
		applied = cur
		after = *rs
		return nil
	}, fwd)
	if err != nil {
		return &requestError{err, doc}
	}
	s.log.Info("real server changed through the API", append(s.svcAttrs(t.key), "backend", t.backend.String(), "changes", changes(&before, &after))...)
	s.logForwardingChange(t.key, fwdBefore)
	return s.writeRealServerConfig(w, http.StatusOK, t.key, applied)
}

func (s *Server) deleteRealServer(w http.ResponseWriter, r *http.Request) error {
	t, err := backendTarget(r)
	if err != nil {
		return err
	}
	if err := s.d.DeleteRealServer(t.key, t.backend); err != nil {
		return err
	}
	s.log.Info("real server deleted through the API", append(s.svcAttrs(t.key), "backend", t.backend.String())...)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) drainOn(w http.ResponseWriter, r *http.Request) error { return s.drainReq(w, r, true) }
func (s *Server) drainOff(w http.ResponseWriter, r *http.Request) error {
	return s.drainReq(w, r, false)
}

func (s *Server) drainReq(w http.ResponseWriter, r *http.Request, on bool) error {
	t, err := backendTarget(r)
	if err != nil {
		return err
	}
	if err := s.setDrain(t.key, t.backend, on); err != nil {
		return err
	}
	s.log.Info("real server drain changed through the API", append(s.svcAttrs(t.key), "backend", t.backend.String(), "drain", on)...)
	return s.writeRealServer(w, http.StatusOK, t)
}

func (s *Server) zeroService(w http.ResponseWriter, r *http.Request) error {
	t, err := serviceTarget(r)
	if err != nil {
		return err
	}
	vs := s.d.Service(t.key)
	if vs == nil {
		return director.ErrNoService
	}
	s.stats.zero(vs)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) zeroAll(w http.ResponseWriter, r *http.Request) error {
	for _, vs := range s.d.Services() {
		s.stats.zero(vs)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	out := []BackendHealth{}
	for _, vs := range s.d.Services() {
		st := vs.Settings()
		for _, rs := range vs.RealServers() {
			rt := s.realServerRuntime(vs, rs)
			out = append(out, BackendHealth{Service: st.Name, Key: vs.Key, Backend: rs.Addr.String(),
				Up: rt.Up, Drained: rt.Drained, Weight: rt.Weight, Health: rt.Health})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getVRRP(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.vrrpState())
	return nil
}

func (s *Server) getStats(w http.ResponseWriter, r *http.Request) error {
	rep := StatsReport{Services: []ServiceStats{}}
	for _, vs := range s.d.Services() {
		ss := ServiceStats{Service: vs.Settings().Name, Key: vs.Key, Stats: s.stats.stats(&vs.Stats), Rates: s.stats.rates(&vs.Stats),
			RealServers: []BackendStats{}}
		for _, rs := range vs.RealServers() {
			ss.RealServers = append(ss.RealServers, BackendStats{Backend: rs.Addr.String(),
				Stats: s.stats.stats(&rs.Stats), Rates: s.stats.rates(&rs.Stats)})
		}
		rep.Services = append(rep.Services, ss)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// listConnections is the connection table. ?service=KEY keeps one
// service's entries; ?limit=N stops after N (the kernel's table can hold
// millions).
func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	service := q.Get("service")
	if service != "" && s.d.Service(service) == nil {
		return &Error{Message: "service: no virtual service " + service, Field: "service", Code: CodeNoService}
	}
	limit := -1
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return invalid("limit", "%q is not a count", v)
		}
		limit = n
	}
	out := []Connection{}
	err := s.d.Connections(func(c director.Connection) bool {
		if service != "" && c.Service != service {
			return true
		}
		if limit >= 0 && len(out) >= limit {
			return false
		}
		out = append(out, Connection{
			Service: c.Service, Protocol: string(c.Protocol), State: c.State,
			ExpiresSeconds: int64(c.Expires / time.Second), Client: c.Client.String(),
			Virtual: c.Virtual.String(), RealServer: c.RealServer.String(), Template: c.Template,
			InBytes: c.InBytes, OutBytes: c.OutBytes, InPackets: c.InPackets, OutPackets: c.OutPackets,
		})
		return true
	})
	if err != nil {
		return fmt.Errorf("listing connections: %w", err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// targetService resolves the virtual service a request's path names, with
// its running configuration.
func (s *Server) targetService(r *http.Request) (target, *config.VirtualServer, error) {
	t, err := serviceTarget(r)
	if err != nil {
		return t, nil, err
	}
	vc, err := s.serviceConfig(t.key)
	return t, vc, err
}
