package connsync

import "time"

// DaemonStatus is the state of the sync daemon, for the API.
type DaemonStatus struct {
	Mode                                 string // "multicast" or "unicast"
	Interface                            string
	Group                                string
	Peers                                []string
	Port                                 int
	SyncID                               uint8
	State                                string // "resyncing", "running" or "stopped"
	Master, Backup                       bool   // the roles that run (docs/sync.md)
	Node                                 Status
	PeerAddrs                            map[uint32]string
	Installed, InstallErrors, EventsLost uint64
	Templates                            uint64 // peers' persistence templates installed (in Installed too)
	DRFlows                              uint64 // peers' DR flows installed (in Installed too)
	Flows                                int    // flows sent and not ended
	PeerFlows                            int    // flows installed from peers
	// Install lag over the last installs: from the peer's send to ours.
	LagLast, LagMedian, LagP99 time.Duration
}
