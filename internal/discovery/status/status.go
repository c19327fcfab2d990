// Package status is a discovery source's state, as GET /api/v1/discovery
// shows it (internal/discovery fills it in).
package status

import "time"

// Held describes a change held back as a sudden drop.
type Held struct {
	From    int       `json:"from"`    // servers in the pool
	To      int       `json:"to"`      // servers in the held answer
	Since   time.Time `json:"since"`   // first seen
	Answers int       `json:"answers"` // consecutive identical answers so far
	// Confirm and ConfirmAt are what confirms it: that many answers, or
	// this time.
	Confirm   int       `json:"confirm"`
	ConfirmAt time.Time `json:"confirm_at"`
}

// Status is a source's state, as GET /api/v1/discovery shows it.
type Status struct {
	Service    string `json:"service"` // the virtual service's name
	Key        string `json:"key"`     // PROTOCOL/VIP:PORT
	Type       string `json:"type"`
	Origin     string `json:"origin"`
	FailPolicy string `json:"fail_policy"`
	// OK is false while the last answer was an error.
	OK          bool       `json:"ok"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Errors      uint64     `json:"errors"`  // failed answers, in all
	Answers     uint64     `json:"answers"` // good answers, in all
	Found       int        `json:"servers_found"`
	Active      int        `json:"servers_active"`   // in the pool from this source
	Draining    int        `json:"servers_draining"` // left the source, draining
	Held        *Held      `json:"held,omitempty"`
	HeldTotal   uint64     `json:"held_total"` // drops held, in all
	Applies     uint64     `json:"applies"`    // changes handed to the director
	LastApply   *time.Time `json:"last_apply,omitempty"`
	ApplyError  string     `json:"apply_error,omitempty"` // the director refused the last set
	// Message says in words what the source is doing now.
	Message string `json:"message"`
}
