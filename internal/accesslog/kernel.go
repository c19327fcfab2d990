package accesslog

import "sync/atomic"

// ConntrackOverruns counts the times the kernel dropped conntrack destroy
// events because govs read them too slowly (its socket's buffer was full):
// the access-log lines of those nat and fullnat flows are missing, how
// many is unknown.
var ConntrackOverruns atomic.Uint64
