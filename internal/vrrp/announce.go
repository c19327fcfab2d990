package vrrp

import "time"

// Gratuitous ARP / unsolicited NA bursts, spaced by GARPInterval or
// GNAInterval (keepalived's vrrp_garp_interval, vrrp_gna_interval).

// garp sends a burst of count gratuitous ARPs / NAs per VIP: at once, or
// spaced by the interval of the VIPs' family, after any still queued.
func (m *Machine) garp(now time.Time, count int) {
	iv := m.announceInterval()
	if iv <= 0 || len(m.cfg.VIPs) == 0 {
		m.emit(Action{Kind: ActGARP, Count: count})
		return
	}
	busy := m.announceLeft > 0
	m.announceLeft += count * len(m.cfg.VIPs)
	if !busy {
		m.announceOne(now)
	}
}

// announceOne sends the next spaced message and schedules the one after.
func (m *Machine) announceOne(now time.Time) {
	if m.announceLeft <= 0 {
		return
	}
	m.emit(Action{Kind: ActGARP, Count: 1, Addr: m.cfg.VIPs[m.announceNext]})
	m.announceNext = (m.announceNext + 1) % len(m.cfg.VIPs)
	if m.announceLeft--; m.announceLeft > 0 {
		m.announceAt = now.Add(m.announceInterval())
	}
}

func (m *Machine) announceInterval() time.Duration {
	if m.cfg.PrimaryIP.Is4() {
		return m.cfg.GARPInterval
	}
	return m.cfg.GNAInterval
}
