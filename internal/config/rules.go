package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// VirtualRule is a policy routing rule a VRRP instance installs with its
// VIPs while it is master (keepalived's virtual_rules), or govs at start
// (static_rules), written as ip rule does: [from PREFIX] [to PREFIX]
// [fwmark N[/MASK]] [iif IFACE] [oif IFACE] [priority N] and an action:
// table N, blackhole, unreachable or prohibit. Without priority the kernel
// picks one (keepalived's importer writes keepalived's).
type VirtualRule struct {
	From, To     netip.Prefix
	FWMark, Mask uint32
	HasMask      bool
	IIf, OIf     string
	Priority     int // 0: unset
	HasPriority  bool
	Table        int
	Action       string // "" (table), blackhole, unreachable, prohibit
}

var ruleActions = map[string]bool{"blackhole": true, "unreachable": true, "prohibit": true}

// ParseVirtualRule reads a rule in the form VirtualRule documents
// (keepalived's preference and pref are read as priority).
func ParseVirtualRule(s string) (VirtualRule, error) {
	var r VirtualRule
	err := r.decodeScalar(s)
	return r, err
}

func (r *VirtualRule) decodeScalar(s string) error {
	f := strings.Fields(s)
	var out VirtualRule
	prefix := func(w string) (netip.Prefix, error) {
		if w == "all" {
			return netip.Prefix{}, nil
		}
		p, err := netip.ParsePrefix(w)
		if err != nil {
			a, aerr := netip.ParseAddr(w)
			if aerr != nil {
				return p, fmt.Errorf("rule %q: invalid address %q", s, w)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Masked() != p {
			return p, fmt.Errorf("rule %q: %s has host bits set (%s)", s, p, p.Masked())
		}
		return p, nil
	}
	for i := 0; i < len(f); i++ {
		w := f[i]
		if ruleActions[w] {
			out.Action = w
			continue
		}
		if i+1 >= len(f) {
			return fmt.Errorf("rule %q: %q needs a value", s, w)
		}
		v := f[i+1]
		i++
		var err error
		switch w {
		case "from":
			out.From, err = prefix(v)
		case "to":
			out.To, err = prefix(v)
		case "fwmark":
			m, mask, hasMask := strings.Cut(v, "/")
			n, perr := strconv.ParseUint(m, 0, 32)
			if perr != nil {
				return fmt.Errorf("rule %q: invalid fwmark %q", s, v)
			}
			out.FWMark = uint32(n)
			if hasMask {
				mk, merr := strconv.ParseUint(mask, 0, 32)
				if merr != nil {
					return fmt.Errorf("rule %q: invalid fwmark mask %q", s, v)
				}
				out.Mask, out.HasMask = uint32(mk), true
			}
		case "iif":
			out.IIf = v
		case "oif":
			out.OIf = v
		case "priority", "preference", "pref":
			n, perr := strconv.ParseUint(v, 10, 32)
			if perr != nil {
				return fmt.Errorf("rule %q: invalid priority %q", s, v)
			}
			out.Priority, out.HasPriority = int(n), true
		case "table", "lookup":
			n, perr := strconv.ParseUint(v, 10, 32)
			if perr != nil || n == 0 {
				return fmt.Errorf("rule %q: invalid table %q", s, v)
			}
			out.Table = int(n)
		default:
			return fmt.Errorf("rule %q: unknown option %q (from, to, fwmark, iif, oif, priority, table, blackhole, unreachable, prohibit)", s, w)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case out.Table == 0 && out.Action == "":
		return fmt.Errorf("rule %q: no action (table N, blackhole, unreachable or prohibit)", s)
	case out.Table != 0 && out.Action != "":
		return fmt.Errorf("rule %q: table and %s", s, out.Action)
	case out.From.IsValid() && out.To.IsValid() && out.From.Addr().Is4() != out.To.Addr().Is4():
		return fmt.Errorf("rule %q: from and to are of different families", s)
	}
	for _, dev := range []string{out.IIf, out.OIf} {
		if dev != "" && !validIfName(dev) {
			return fmt.Errorf("rule %q: invalid interface name %q", s, dev)
		}
	}
	*r = out
	return nil
}

// Is6 reports whether the rule is IPv6 (IPv4 when it names no address).
func (r VirtualRule) Is6() bool {
	if r.From.IsValid() {
		return r.From.Addr().Is6()
	}
	return r.To.IsValid() && r.To.Addr().Is6()
}

func (r VirtualRule) String() string {
	var w []string
	if r.From.IsValid() {
		w = append(w, "from", r.From.String())
	}
	if r.To.IsValid() {
		w = append(w, "to", r.To.String())
	}
	if r.FWMark != 0 || r.HasMask {
		m := strconv.FormatUint(uint64(r.FWMark), 10)
		if r.HasMask {
			m += "/" + strconv.FormatUint(uint64(r.Mask), 10)
		}
		w = append(w, "fwmark", m)
	}
	if r.IIf != "" {
		w = append(w, "iif", r.IIf)
	}
	if r.OIf != "" {
		w = append(w, "oif", r.OIf)
	}
	if r.HasPriority {
		w = append(w, "priority", strconv.Itoa(r.Priority))
	}
	if r.Table != 0 {
		w = append(w, "table", strconv.Itoa(r.Table))
	} else {
		w = append(w, r.Action)
	}
	return strings.Join(w, " ")
}

// MarshalYAML writes the rule in ip rule's form.
func (r VirtualRule) MarshalYAML() (any, error) { return r.String(), nil }
