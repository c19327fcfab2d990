package ctevent

// The conntrack netlink numbers (linux/netfilter/nfnetlink_conntrack.h,
// nf_conntrack_common.h, nf_conntrack_tcp.h). This package owns them: its
// reader decodes events with them, and the connection sync's writer
// (internal/sync, which installs peers' flows) encodes messages with them.

// Message types of the conntrack subsystem (IPCTNL_MSG_CT_*).
const (
	MsgNew    = 0
	MsgDelete = 2
)

// Attributes of a conntrack message (CTA_*).
const (
	AttrTupleOrig     = 1
	AttrTupleReply    = 2
	AttrStatus        = 3
	AttrProtoInfo     = 4
	AttrNATSrc        = 6
	AttrTimeout       = 7
	AttrMark          = 8
	AttrCountersOrig  = 9
	AttrCountersReply = 10
	AttrID            = 12
	AttrNATDst        = 13
	AttrZone          = 18
	AttrTimestamp     = 20
)

// Attributes nested in a tuple (CTA_TUPLE_*, CTA_IP_*, CTA_PROTO_*).
const (
	AttrTupleIP      = 1
	AttrTupleProto   = 2
	AttrIPv4Src      = 1
	AttrIPv4Dst      = 2
	AttrIPv6Src      = 3
	AttrIPv6Dst      = 4
	AttrProtoNum     = 1
	AttrProtoSrcPort = 2
	AttrProtoDstPort = 3
)

// Attributes nested in CTA_PROTOINFO (CTA_PROTOINFO_*).
const (
	AttrProtoInfoTCP  = 1
	AttrTCPState      = 1
	AttrTCPFlagsOrig  = 4
	AttrTCPFlagsReply = 5
)

// Attributes nested in CTA_NAT_SRC and CTA_NAT_DST (CTA_NAT_*,
// CTA_PROTONAT_*).
const (
	AttrNATV4Min        = 1
	AttrNATV4Max        = 2
	AttrNATProto        = 3
	AttrNATV6Min        = 4
	AttrNATV6Max        = 5
	AttrProtoNATPortMin = 1
	AttrProtoNATPortMax = 2
)

// Attributes nested in CTA_COUNTERS_* and CTA_TIMESTAMP.
const (
	AttrCountersPackets   = 1
	AttrCountersBytes     = 2
	AttrCounters32Packets = 3
	AttrCounters32Bytes   = 4
	AttrTimestampStart    = 1
	AttrTimestampStop     = 2
)

// Status bits (IPS_*).
const (
	StatusSeenReply = 1 << 1
	StatusAssured   = 1 << 2
	StatusConfirmed = 1 << 3
	StatusSrcNAT    = 1 << 4
	StatusDstNAT    = 1 << 5
)

// TCP tracking (nf_conntrack_tcp.h).
const (
	// TCPFlagBeLiberal (IP_CT_TCP_FLAG_BE_LIBERAL) turns window tracking
	// off for a direction of a flow.
	TCPFlagBeLiberal = 0x08
	// TCPStateMax is TCP_CONNTRACK_MAX: states are below it.
	TCPStateMax = 10
)
