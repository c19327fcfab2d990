package vrrpd

import (
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/vrrp"
)

// Node is a snapshot of one running VRRP instance, for the API and the
// metrics.
type Node struct {
	Name      string
	Group     string // sync group, "" when none
	Interface string
	VRID      uint8
	Version   vrrp.Version
	State     vrrp.State
	// Priority is the effective priority (base plus track weights);
	// BasePriority the configured one.
	Priority     uint8
	BasePriority uint8
	// Master is the current master's address as last heard (ours when
	// master), and MasterPriority its priority.
	Master         netip.Addr
	MasterPriority uint8
	// AdvertInterval is the configured interval; MasterAdvertInterval the
	// one in force (a VRRPv3 backup learns the master's).
	AdvertInterval       time.Duration
	MasterAdvertInterval time.Duration
	PrimaryIP            netip.Addr
	VIPs                 []netip.Prefix
	// Faults are the fault sources that are down (interfaces, scripts).
	Faults []string
	// Since is when the instance entered State.
	Since time.Time
	// Stats are the state machine's counters.
	Stats vrrp.Stats
	// Dropped counts rejected adverts by reason, both the codec's (bad TTL,
	// checksum, ...) and the state machine's (VRID, auth, ...).
	Dropped [vrrp.NumReasons]uint64
	// SendErrors counts adverts, ARPs and NAs that could not be sent;
	// AddrErrors netlink failures adding or removing VIPs; Restored the VIPs
	// put back after they were removed by hand while master.
	SendErrors uint64
	AddrErrors uint64
	Restored   uint64
}

// DefaultNotifyTimeout bounds a notify or track script: when it runs
// longer, its whole process group is killed.
const DefaultNotifyTimeout = 30 * time.Second
