//go:build !linux

package vrrpd

import (
	"errors"
	"log/slog"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// Options tune a Daemon.
type Options struct {
	NotifyTimeout time.Duration
	Services      ServiceStates
	OnState       func(instance, state string, at time.Time)
	OnGroupState  func(group, state string, at time.Time)
}

// ServiceStates is what the daemon needs of the director.
type ServiceStates interface {
	ServiceUp(name string) (up, known bool)
}

// Daemon runs VRRP instances; outside Linux it refuses any.
type Daemon struct{}

// New returns a daemon.
func New(log *slog.Logger, opts Options) *Daemon { return &Daemon{} }

// Apply fails when cfg has VRRP instances: VRRP needs Linux.
func (d *Daemon) Apply(cfg *config.Config) error {
	if len(cfg.VRRPInstances) > 0 {
		return errors.New("vrrp: VRRP instances need Linux")
	}
	return nil
}

// SetHold does nothing.
func (d *Daemon) SetHold(bool) {}

// Stop does nothing.
func (d *Daemon) Stop() {}

// Nodes returns nothing.
func (d *Daemon) Nodes() []Node { return nil }
