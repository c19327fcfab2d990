package director

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"

	"github.com/govs-lb/govs/internal/config"
)

// Runtime changes: the control API (and so govsadm) changes the desired
// state through the methods below. Each one copies the configuration in
// force, edits the copy, validates it exactly as a configuration file is
// validated, and applies it with Apply. A failure at any step changes
// nothing. Changes are serialised with each other and with Reload, so no
// change is lost and none is applied on top of a configuration that a
// reload has just replaced. They are not written back to the file: the next
// reload replaces them with the file's content.

// Errors of runtime changes. Their texts are lower case; the API and
// govsadm print ipvsadm's wording for them.
var (
	ErrServiceExists = errors.New("virtual service already exists")
	ErrNoService     = errors.New("no such virtual service")
	ErrDestExists    = errors.New("real server already exists")
	ErrNoDest        = errors.New("no such real server")
)

// ChangeError is a change that validated but that the dataplane refused
// (for example, its address could not be bound).
type ChangeError struct{ Err error }

func (e *ChangeError) Error() string { return e.Err.Error() }
func (e *ChangeError) Unwrap() error { return e.Err }

// Change runs edit on a copy of the configuration in force, validates the
// copy and applies it. An error from edit, a config.ErrorList from
// validation or a *ChangeError from Apply is returned as is, and leaves
// everything as it was.
func (d *Director) Change(edit func(*config.Config) error) error {
	d.admin.Lock()
	defer d.admin.Unlock()
	cur := d.Config()
	next := &config.Config{}
	if cur != nil {
		next = CopyConfig(cur)
	}
	if err := edit(next); err != nil {
		return err
	}
	if err := sameDiscovery(cur, next); err != nil { // discovered.go
		return err
	}
	d.mergeDiscovered(next) // discovered.go: edits never add, drop or change discovered servers
	if err := next.Validate(); err != nil {
		return err
	}
	if err := d.Apply(next); err != nil {
		return &ChangeError{err}
	}
	return nil
}

// Reload applies cfg, a configuration read again from its file, in turn
// with runtime changes. It drops every runtime change.
func (d *Director) Reload(cfg *config.Config) error {
	d.admin.Lock()
	defer d.admin.Unlock()
	return d.Apply(d.withDiscovered(cfg))
}

// AddService adds a virtual service.
func (d *Director) AddService(vs *config.VirtualServer) error {
	return d.Change(func(c *config.Config) error {
		if vs.Protocol == "" {
			vs.Protocol = config.TCP
		}
		if findService(c, vs.Key()) >= 0 {
			return ErrServiceExists
		}
		c.VirtualServers = append(c.VirtualServers, vs)
		return nil
	})
}

// UpdateService runs edit on (a copy of) the virtual service with the
// given key. edit must not change the service's protocol or address.
func (d *Director) UpdateService(key string, edit func(*config.VirtualServer) error) error {
	return d.Change(func(c *config.Config) error {
		i := findService(c, key)
		if i < 0 {
			return ErrNoService
		}
		if err := edit(c.VirtualServers[i]); err != nil {
			return err
		}
		if got := c.VirtualServers[i].Key(); got != key {
			return fmt.Errorf("a virtual service's protocol and address cannot change (%s to %s): delete it and add another", key, got)
		}
		return nil
	})
}

// DeleteService removes a virtual service. Its established connections run
// on for the grace period, as after a reload.
func (d *Director) DeleteService(key string) error {
	return d.Change(func(c *config.Config) error {
		i := findService(c, key)
		if i < 0 {
			return ErrNoService
		}
		c.VirtualServers = append(c.VirtualServers[:i], c.VirtualServers[i+1:]...)
		return nil
	})
}

// Clear removes every virtual service (ipvsadm -C).
func (d *Director) Clear() error {
	return d.Change(func(c *config.Config) error {
		c.VirtualServers = nil
		return nil
	})
}

// AddRealServer adds rs to the virtual service with the given key. If edit
// is not nil it then runs on (a copy of) the service, for changes that
// must happen together with the addition.
func (d *Director) AddRealServer(key string, rs *config.RealServer, edit func(*config.VirtualServer) error) error {
	return d.UpdateService(key, func(vs *config.VirtualServer) error {
		addr := rs.Address
		if !addr.HasPort && vs.Address.HasPort {
			addr.Port, addr.HasPort = vs.Address.Port, true
		}
		if o := discoveredOrigin(vs, addr.AddrPort()); o != "" {
			return &DiscoveredError{addr.AddrPort(), o}
		}
		if findRealServer(vs, addr.AddrPort()) >= 0 {
			return ErrDestExists
		}
		vs.RealServers = append(vs.RealServers, rs)
		if edit != nil {
			return edit(vs)
		}
		return nil
	})
}

// UpdateRealServer runs edit on (a copy of) a real server of the virtual
// service with the given key; vsEdit, if not nil, then runs on its service.
func (d *Director) UpdateRealServer(key string, addr netip.AddrPort, edit func(*config.RealServer) error, vsEdit func(*config.VirtualServer) error) error {
	return d.UpdateService(key, func(vs *config.VirtualServer) error {
		i := findRealServer(vs, addr)
		if i < 0 {
			return ErrNoDest
		}
		if o := vs.RealServers[i].Origin; o != "" {
			return &DiscoveredError{addr, o}
		}
		if err := edit(vs.RealServers[i]); err != nil {
			return err
		}
		if got := vs.RealServers[i].Address; !got.IsZero() && got.HasPort && got.AddrPort() != addr {
			return fmt.Errorf("a real server's address cannot change (%s to %s): delete it and add another", addr, got)
		}
		if vsEdit != nil {
			return vsEdit(vs)
		}
		return nil
	})
}

// DeleteRealServer removes a real server from a virtual service. Its
// established connections run on for the grace period.
func (d *Director) DeleteRealServer(key string, addr netip.AddrPort) error {
	return d.UpdateService(key, func(vs *config.VirtualServer) error {
		i := findRealServer(vs, addr)
		if i < 0 {
			return ErrNoDest
		}
		if o := vs.RealServers[i].Origin; o != "" {
			return &DiscoveredError{addr, o}
		}
		vs.RealServers = append(vs.RealServers[:i], vs.RealServers[i+1:]...)
		return nil
	})
}

func findService(c *config.Config, key string) int {
	for i, vs := range c.VirtualServers {
		if vs != nil && (!vs.Address.IsZero() || vs.FWMark != 0) && vs.Key() == key {
			return i
		}
	}
	return -1
}

func findRealServer(vs *config.VirtualServer, addr netip.AddrPort) int {
	for i, rs := range vs.RealServers {
		if rs != nil && !rs.Address.IsZero() && rs.Address.AddrPort() == addr {
			return i
		}
	}
	return -1
}

// CopyConfig returns a deep copy of c: changing the copy (its services,
// real servers, health checks, settings) never changes c. Positions are
// kept, so validation errors about unchanged parts still name the file.
func CopyConfig(c *config.Config) *config.Config {
	return deepCopy(reflect.ValueOf(c)).Interface().(*config.Config)
}

// deepCopy copies v, following pointers, slices and maps in exported
// fields. Unexported fields (positions recorded by the decoder) are shared:
// they are never written after decoding.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if f := out.Field(i); f.CanSet() {
				f.Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return out
	}
	return v
}
