package director

// SetEventHook makes the director call hook with every health event it
// records (real server transitions, quorum changes), after logging it: the
// alerts' way in. hook must not block; nil removes it.
func (d *Director) SetEventHook(hook func(HealthEvent)) {
	if hook == nil {
		d.events.Store(nil)
		return
	}
	d.events.Store(&hook)
}

func (d *Director) emit(ev HealthEvent) {
	if h := d.events.Load(); h != nil {
		(*h)(ev)
	}
}
