#!/usr/bin/env bash
# bench/dr.sh: govs `forwarding: dr` against the same traffic routed straight
# to the real servers and against govs `forwarding: nat`, in one run,
# alternating, in network namespaces (the LVS-DR topology of test/dr_test.go):
#
#   client 10.80.0.2 --- 10.80.0.1 router 10.80.1.1 ==br0== director 10.80.1.10
#                                                   ||===== rs1 10.80.1.21 (.31), rs2 10.80.1.22 (.32)
#
# Real servers: nginx (1 worker each), `return 200` on / and a BULK_MB file,
# every VIP on lo (govs realserver), default route the router.
# Targets (port 80, same real servers, same client):
#   routed  VIP 10.80.9.1: the router routes it straight to the real servers
#           (ECMP over rs1 and rs2, L4 hash): no director at all.
#   dr      VIP 10.80.9.2 routed to the director; govs dr, rr over rs1, rs2.
#   nat     VIP 10.80.9.3 routed to the director; govs nat, rr over .31/.32;
#           the real servers route replies from .31/.32 back through the
#           director (a policy rule), as LVS-NAT needs.
# One govs process (the real binary) serves dr and nat for the whole run.
#   hop     VIP 10.80.9.4 routed to the director, which routes it on by plain
#           kernel forwarding (ECMP over rs1, rs2; no nftables): what the
#           extra hop through a director costs by itself, the ceiling of
#           any DR implementation on this topology.
# With EXPERIMENTS=1, hand-written nft rules on the director (table
# "ip drbench" / "netdev drbench", not govs's) split the cost of govs dr:
#   dupjh   VIP .5: `dup to jhash(...) map {rs1, rs2}; drop` in prerouting
#           raw: govs's transmit without its flow map.
#   ndfwd   VIP .6: netdev ingress `fwd ip to jhash(...) map {...} device`:
#           no copy, no route lookup, no flow map.
#   pbr     VIP .9: policy routing: `meta mark set jhash(...) map {...}`
#           in prerouting raw, `ip rule fwmark M lookup T`, table T's
#           default route via the real server (kernel forwarding).
#   ndmac   VIP .8: netdev ingress `ether daddr set jhash(...) map {MACs};
#           fwd to DEV`: the real servers' MACs precomputed, no neighbour
#           lookup (and no TTL decrement).
#   ndmap   VIP .7: netdev ingress with dynamic maps doing about govs's work
#           per packet (pinned: lookup, refresh a counted set, fwd by the
#           map; new: numgen, record, fwd).
# -6 (or FAMILY=6): the same in IPv6 (fd80:0::/64 client, fd80:1::/64
# segment, VIPs fd80:9::N), results in the section bench/dr6.
# Figures: new connections/s (wrk -H 'Connection: close'), keep-alive
# requests/s, bulk MB/s (sequential curl of the big file). Every round visits
# every target once, order rotated each round; medians.
#
# Safety: traffic only inside the namespaces made here (govsdr-PID-*); the
# host's interfaces, routes and nftables are not touched. Bounded runs. On
# exit the processes started here are stopped by PID and the namespaces
# deleted. Holds /tmp/govs-bench.lock while measuring.
#
# COST_ROUNDS=5 COST_PKTS=200000: the CPU cost per packet (see cost()).
#
# PIN=1: the director as its own machine. Every process and all packet work
# of the client, router and real servers run on CPU 0, the director's (its
# govs process and its kernel receive path) on CPU 1: the director's veth
# end (eth0) and the router's end facing it (bd) receive in threaded NAPI
# kernel threads (GRO on, TSO off on both so veth takes its NAPI path),
# pinned by PID to CPU 1 and CPU 0; the other veth ends deliver in their
# sender's softirq, on the sender's CPU (0). So routed gets CPU 0 only, and
# hop, dr and nat get CPU 0 plus the director's CPU 1, as a real deployment
# gives the director a CPU of its own. Per visit it records the busy share
# of both CPUs (/proc/stat), the CPU time of the director's own threads
# (its NAPI thread and govs, /proc/PID/schedstat), the NET_RX softirqs per
# CPU (/proc/softirqs) and checks after every visit that the threads ran
# on their CPU (/proc/PID/stat). Its cost phase reports the director's CPU
# per packet it received. Results in the sections bench/drpin, bench/drpin6.
# DIR_NICE=-20: the nice of the director's threads (see napi_thread).
# RTR_RX=napi|rps: how the router's end of the director's link receives (a NAPI
# thread on CPU 0, or RPS to CPU 0's softirq). Needs
# ethtool and taskset.
#
# Settings: FAMILY=4|6 PIN=0|1 EXPERIMENTS=0|1 ONLY='dr hop ...' (a subset) QUICK=1 (smoke), ROUNDS=3 DURATION=4 CONNS=50 THREADS=2 BULK_MB=64
# BULK_COUNT=4 LOCK_WAIT=900 RESULTS=bench/RESULTS.md KEEP_TMP=1 GOVS_BIN=path
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

QUICK=${QUICK:-0}
FAMILY=${FAMILY:-4}
EXPERIMENTS=${EXPERIMENTS:-0}
PIN=${PIN:-0}
DIR_NICE=${DIR_NICE:--20}
RTR_RX=${RTR_RX:-napi}
for a in "$@"; do
	case $a in
	-6) FAMILY=6 ;;
	-4) FAMILY=4 ;;
	*) echo "dr.sh: unknown argument $a (want -4 or -6; settings are environment variables)" >&2; exit 2 ;;
	esac
done
[[ $FAMILY == 4 || $FAMILY == 6 ]] || { echo "dr.sh: FAMILY=$FAMILY: want 4 or 6" >&2; exit 2; }
[[ $EXPERIMENTS == 0 || $EXPERIMENTS == 1 ]] || { echo "dr.sh: EXPERIMENTS=$EXPERIMENTS: want 0 or 1" >&2; exit 2; }
[[ $PIN == 0 || $PIN == 1 ]] || { echo "dr.sh: PIN=$PIN: want 0 or 1" >&2; exit 2; }
[[ $RTR_RX == napi || $RTR_RX == rps ]] || { echo "dr.sh: RTR_RX=$RTR_RX: want napi or rps" >&2; exit 2; }
[[ $DIR_NICE =~ ^-?[0-9]+$ ]] && ((DIR_NICE >= -20 && DIR_NICE <= 19)) || { echo "dr.sh: DIR_NICE=$DIR_NICE: want -20..19" >&2; exit 2; }
if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${DURATION:=2}" "${BULK_MB:=16}" "${BULK_COUNT:=2}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
BULK_MB=${BULK_MB:-64}
BULK_COUNT=${BULK_COUNT:-4}
LOCK_WAIT=${LOCK_WAIT:-900}
COST_ROUNDS=${COST_ROUNDS:-5}
COST_PKTS=${COST_PKTS:-200000}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
for v in ROUNDS DURATION CONNS THREADS BULK_MB BULK_COUNT LOCK_WAIT COST_ROUNDS COST_PKTS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "dr.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && ROUNDS <= 10 && DURATION >= 1 && DURATION <= 60 && CONNS >= 2 && CONNS <= 1000 &&
	THREADS >= 1 && THREADS <= CONNS && COST_ROUNDS <= 20 && COST_PKTS >= 1000 && COST_PKTS <= 5000000 && BULK_MB >= 1 && BULK_MB <= 512 && BULK_COUNT >= 1 && BULK_COUNT <= 50)) ||
	{ echo "dr.sh: settings out of bounds" >&2; exit 2; }
((EUID == 0)) || { echo "dr.sh: needs root (network namespaces)" >&2; exit 1; }
for t in ip nginx wrk curl nft flock timeout awk go; do
	command -v "$t" >/dev/null 2>&1 || { echo "dr.sh: missing $t (apt-get install -y iproute2 nginx wrk curl nftables)" >&2; exit 1; }
done
# ON_REST / ON_DIR prefix what runs on the rest of the network's CPU and on
# the director's (empty unless PIN=1).
ON_REST=() ON_DIR=()
if ((PIN)); then
	for t in ethtool taskset; do
		command -v "$t" >/dev/null 2>&1 || { echo "dr.sh: PIN=1 needs $t (apt-get install -y ethtool util-linux)" >&2; exit 1; }
	done
	(($(nproc) >= 2)) || { echo "dr.sh: PIN=1 needs 2 CPUs (nproc $(nproc))" >&2; exit 1; }
	# govs in a session of its own: its own autogroup, whose nice is set
	# below (with autogroups, a process's nice only counts inside its group).
	ON_REST=(taskset -c 0) ON_DIR=(taskset -c 1 setsid)
fi

TARGETS=(routed hop dr nat)
((EXPERIMENTS)) && TARGETS+=(pbr dupjh ndfwd ndmac ndmap)
# ndmap is IPv4 only: nft 1.0.6 aborts on its rules in IPv6 (an assertion in
# netlink_linearize.c on "update @flows { ip6 saddr . th sport : ADDR }").
[[ $FAMILY == 6 ]] && TARGETS=("${TARGETS[@]/ndmap/}") && read -ra TARGETS <<<"${TARGETS[*]}"
if [[ -n ${ONLY:-} ]]; then
	# A subset, for tighter pairs: routed is always measured.
	sel=(routed)
	for t in $ONLY; do
		[[ $t == routed ]] && continue
		[[ " routed hop dr nat pbr dupjh ndfwd ndmac $([[ $FAMILY == 4 ]] && echo ndmap) " == *" $t "* ]] || { echo "dr.sh: ONLY: unknown target $t (targets: routed hop dr nat pbr dupjh ndfwd ndmac ndmap)" >&2; exit 2; }
		sel+=("$t")
	done
	TARGETS=("${sel[@]}")
fi
declare -A VIPN=([routed]=1 [dr]=2 [nat]=3 [hop]=4 [dupjh]=5 [ndfwd]=6 [ndmap]=7 [ndmac]=8 [pbr]=9)
# The topology always has every VIP (the real servers, routes, rules).
ALL=(routed hop dr nat dupjh ndfwd ndmap ndmac pbr)
# Addresses of the family: CLI_NET.N the client side, SEG.N the segment.
if [[ $FAMILY == 6 ]]; then
	IP=(ip -6) PLEN=64 NFAM=ip6 TH=ip6 SEG=fd80:1:: CLI=fd80:: VIPP=fd80:9::
	addr() { echo "$1$2"; } # addr PREFIX N
	HOST=128
else
	IP=(ip -4) PLEN=24 NFAM=ip TH=ip SEG=10.80.1. CLI=10.80.0. VIPP=10.80.9.
	addr() { echo "$1$2"; }
	HOST=32
fi
declare -A VIP SRC
# A client source per target: the real servers' TIME_WAIT tuples of one
# target must not meet another's SYNs (PAWS; see nat.sh).
for t in "${ALL[@]}"; do
	VIP[$t]=$(addr "$VIPP" "${VIPN[$t]}")
	SRC[$t]=$(addr "$CLI" "$((VIPN[$t] + 2))")
done
# URL host part: IPv6 literals in brackets.
uhost() { if [[ $FAMILY == 6 ]]; then echo "[$1]"; else echo "$1"; fi; }

bench_tmp govs-drbench
P="govsdr-$$"
NS_CLI=$P-cli NS_RTR=$P-rtr NS_DIR=$P-dir
NS_RS=("$P-rs1" "$P-rs2")

# ---- build -----------------------------------------------------------------------
bench_govs

# ---- topology --------------------------------------------------------------------
for ns in "$NS_CLI" "$NS_RTR" "$NS_DIR" "${NS_RS[@]}"; do mk_ns "$ns"; done
ip link add eth0 netns "$NS_CLI" type veth peer name c0 netns "$NS_RTR"
NA=()
[[ $FAMILY == 6 ]] && NA=(nodad) # no duplicate address detection delay
in_ns "$NS_CLI" "${IP[@]}" addr add "$(addr "$CLI" 2)/$PLEN" dev eth0 "${NA[@]}"
for t in "${ALL[@]}"; do in_ns "$NS_CLI" "${IP[@]}" addr add "${SRC[$t]}/$PLEN" dev eth0 "${NA[@]}"; done
in_ns "$NS_CLI" ip link set eth0 up
in_ns "$NS_CLI" "${IP[@]}" route add default via "$(addr "$CLI" 1)"
for t in "${ALL[@]}"; do in_ns "$NS_CLI" "${IP[@]}" route add "${VIP[$t]}/$HOST" via "$(addr "$CLI" 1)" src "${SRC[$t]}"; done
in_ns "$NS_RTR" "${IP[@]}" addr add "$(addr "$CLI" 1)/$PLEN" dev c0 "${NA[@]}"
in_ns "$NS_RTR" ip link set c0 up
in_ns "$NS_RTR" ip link add br0 type bridge
in_ns "$NS_RTR" ip link set br0 up
in_ns "$NS_RTR" "${IP[@]}" addr add "$(addr "$SEG" 1)/$PLEN" dev br0 "${NA[@]}"
in_ns "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
	net.ipv6.conf.all.forwarding=1 net.ipv6.fib_multipath_hash_policy=1
port() { # NS PORTNAME ADDR...
	local ns=$1 pn=$2 a
	shift 2
	ip link add eth0 netns "$ns" type veth peer name "$pn" netns "$NS_RTR"
	in_ns "$NS_RTR" ip link set "$pn" master br0 up
	for a in "$@"; do in_ns "$ns" "${IP[@]}" addr add "$a/$PLEN" dev eth0 "${NA[@]}"; done
	in_ns "$ns" ip link set eth0 up
	in_ns "$ns" "${IP[@]}" route add default via "$(addr "$SEG" 1)"
}
port "$NS_DIR" bd "$(addr "$SEG" 10)"
in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
RS=("$(addr "$SEG" 21)" "$(addr "$SEG" 22)")
RSNAT=("$(addr "$SEG" 31)" "$(addr "$SEG" 32)")
VIPS_ON_RS=()
for t in "${ALL[@]}"; do [[ $t == nat ]] || VIPS_ON_RS+=(--vip "${VIP[$t]}"); done
for i in 0 1; do
	port "${NS_RS[$i]}" "b$i" "${RS[$i]}" "${RSNAT[$i]}"
	in_ns "${NS_RS[$i]}" "$TMP/govs" realserver "${VIPS_ON_RS[@]}" >/dev/null
	# LVS-NAT: replies from the nat address go back through the director.
	in_ns "${NS_RS[$i]}" "${IP[@]}" rule add from "${RSNAT[$i]}" lookup 100
	in_ns "${NS_RS[$i]}" "${IP[@]}" route add default via "$(addr "$SEG" 10)" table 100
done
in_ns "$NS_RTR" "${IP[@]}" route add "${VIP[routed]}/$HOST" nexthop via "${RS[0]}" nexthop via "${RS[1]}"
for t in "${ALL[@]}"; do
	[[ $t == routed ]] || in_ns "$NS_RTR" "${IP[@]}" route add "${VIP[$t]}/$HOST" via "$(addr "$SEG" 10)"
done
# hop: the director routes the VIP on to the real servers itself.
in_ns "$NS_DIR" "${IP[@]}" route add "${VIP[hop]}/$HOST" nexthop via "${RS[0]}" nexthop via "${RS[1]}"
in_ns "$NS_DIR" sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
# It forwards out of the interface the packet came in by: no ICMP redirects
# (the router would then send the VIP to the real servers itself), and the
# router takes none.
in_ns "$NS_DIR" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
	net.ipv4.conf.eth0.send_redirects=0
for k in all default br0; do
	in_ns "$NS_RTR" sysctl -qw "net.ipv4.conf.$k.accept_redirects=0" "net.ipv6.conf.$k.accept_redirects=0"
done
# PIN=1: the director's receive path on CPU 1, the router's end of the
# director's link on CPU 0 (see the top).
napi_pids() { # DEV: PIDs of the kernel threads napi/DEV-* (names are global)
	local c n
	for c in /proc/[0-9]*/comm; do
		read -r n 2>/dev/null <"$c" || continue
		[[ $n == "napi/$1-"* ]] && { c=${c#/proc/}; echo "${c%/comm}"; }
	done
	return 0
}
napi_thread() { # NS DEV CPU: DEV receives in a NAPI thread pinned to CPU; sets NAPI_PID
	local ns=$1 dev=$2 cpu=$3 before new p
	before=" $(napi_pids "$dev" | tr '\n' ' ') "
	# GRO gives a veth its NAPI; TSO off on the sending end makes veth
	# take it for TCP (it hands a TSO sender's packets to NAPI only in
	# special cases): both ends of the director's link are set alike.
	in_ns "$ns" ethtool -K "$dev" tso off gro on >/dev/null 2>&1 || die "ethtool -K $dev in $ns failed"
	# sysfs is the namespace's under ip netns exec.
	in_ns "$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded" || die "threaded NAPI on $dev in $ns failed"
	NAPI_PID=""
	for _ in $(seq 50); do
		new=()
		for p in $(napi_pids "$dev"); do [[ $before == *" $p "* ]] || new+=("$p"); done
		((${#new[@]} == 1)) && { NAPI_PID=${new[0]}; break; }
		((${#new[@]} > 1)) && die "several new napi/$dev-* threads (${new[*]}): cannot tell ours"
		sleep 0.1
	done
	[[ -n $NAPI_PID ]] || die "no napi/$dev-* thread appeared"
	taskset -p -c "$cpu" "$NAPI_PID" >/dev/null || die "taskset $NAPI_PID"
}
if ((PIN)); then
	napi_thread "$NS_DIR" eth0 1
	DIR_NAPI=$NAPI_PID
	# The director has CPU 1 to itself, as on its own machine: the machine
	# is shared, so its threads get a high priority there (DIR_NICE) over
	# whatever else runs on CPU 1. They take only what they need; the rest
	# of the network on CPU 0 keeps the normal priority.
	renice -n "$DIR_NICE" -p "$DIR_NAPI" >/dev/null || die "renice $DIR_NAPI"
	if [[ $RTR_RX == rps ]]; then
		# RTR_RX=rps: bd keeps the softirq path (no NAPI thread), and RPS
		# steers its receive to CPU 0's backlog (an IPI from the director's
		# thread, no thread wake-up); TSO off still, for eth0's NAPI.
		in_ns "$NS_RTR" ethtool -K bd tso off >/dev/null 2>&1 || die "ethtool -K bd in $NS_RTR failed"
		in_ns "$NS_RTR" sh -c "echo 1 > /sys/class/net/bd/queues/rx-0/rps_cpus" || die "rps_cpus on bd failed"
		RTR_NAPI="" # no thread: no figures of its own
		log "pinned: napi/eth0 of the director (pid $DIR_NAPI) on CPU 1, bd's receive by RPS on CPU 0"
	else
		napi_thread "$NS_RTR" bd 0
		RTR_NAPI=$NAPI_PID
		log "pinned: napi/eth0 of the director (pid $DIR_NAPI) on CPU 1, napi/bd of the router (pid $RTR_NAPI) on CPU 0"
	fi
fi

# The experiments' rules are always there (ONLY may name them); EXPERIMENTS=1
# measures them in a full run.
{
	at=ipv4_addr
	[[ $FAMILY == 6 ]] && at=ipv6_addr
	ndmap=""
	[[ $FAMILY == 4 ]] && ndmap="$TH saddr . th sport @flows update @seen { $TH saddr . th sport } fwd $TH to $TH saddr . th sport map @flows device \"eth0\"
		numgen inc mod 2 == 0 update @flows { $TH saddr . th sport : ${RS[0]} } fwd $TH to ${RS[0]} device \"eth0\"
		update @flows { $TH saddr . th sport : ${RS[1]} } fwd $TH to ${RS[1]} device \"eth0\""
	# pbr: policy routing by the mark, the real server as gateway.
	for i in 0 1; do
		in_ns "$NS_DIR" "${IP[@]}" rule add fwmark "0x10$((i + 1))" lookup "10$((i + 1))"
		in_ns "$NS_DIR" "${IP[@]}" route add default via "${RS[$i]}" dev eth0 table "10$((i + 1))"
	done
	MAC=()
	for i in 0 1; do MAC+=("$(in_ns "${NS_RS[$i]}" cat /sys/class/net/eth0/address)"); done
	hmap="jhash $TH saddr . th sport mod 2 seed 0x1 map { 0 : ${RS[0]}, 1 : ${RS[1]} }"
	in_ns "$NS_DIR" nft -f - <<EOF
table $NFAM drbench {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		$TH daddr ${VIP[dupjh]} meta l4proto { tcp, udp } th dport 80 dup to $hmap drop
		$TH daddr ${VIP[pbr]} meta l4proto { tcp, udp } th dport 80 meta mark set jhash $TH saddr . th sport mod 2 seed 0x1 map { 0 : 0x101, 1 : 0x102 }
	}
}
table netdev drbench {
	set seen {
		type $at . inet_service; flags dynamic,timeout; timeout 900s; size 1048576; counter
	}
	map flows {
		type $at . inet_service : $at; flags dynamic,timeout; timeout 900s; size 1048576
	}
	chain in {
		type filter hook ingress device "eth0" priority filter; policy accept;
		$TH daddr ${VIP[ndfwd]} meta l4proto { tcp, udp } th dport 80 fwd $TH to $hmap device "eth0"
		$TH daddr ${VIP[ndmap]} meta l4proto { tcp, udp } th dport 80 jump ndmap
		$TH daddr ${VIP[ndmac]} meta l4proto { tcp, udp } th dport 80 ether daddr set jhash $TH saddr . th sport mod 2 seed 0x1 map { 0 : ${MAC[0]}, 1 : ${MAC[1]} } fwd to "eth0"
	}
	chain ndmap {
		$ndmap
	}
}
EOF
}

# The cost phase's UDP packets end on the real servers, the same way for
# every target.
for i in 0 1; do
	in_ns "${NS_RS[$i]}" nft "table inet drsink { chain c { type filter hook prerouting priority raw; policy accept; udp dport 80 counter drop; }; }"
done

head -c $((BULK_MB * 1048576)) /dev/urandom >"$TMP/www/big.bin"
for i in 0 1; do
	d=$TMP/rs$((i + 1))
	nginx_conf "$d" 1 80 "[::]:80"
	start_bg "$TMP/logs/rs$((i + 1)).log" ip netns exec "${NS_RS[$i]}" "${ON_REST[@]}" nginx -p "$d" -c "$d/nginx.conf" \
		-e "$TMP/logs/rs$((i + 1))-start.log" -g 'daemon off;'
done

cat >"$TMP/govs.yaml" <<EOF
virtual_servers:
  - name: dr
    address: "$(uhost "${VIP[dr]}"):80"
    forwarding: dr
    scheduler: rr
    real_servers:
      - address: "$(uhost "${RS[0]}"):80"
      - address: "$(uhost "${RS[1]}"):80"
  - name: nat
    address: "$(uhost "${VIP[nat]}"):80"
    forwarding: nat
    scheduler: rr
    real_servers:
      - address: "$(uhost "${RSNAT[0]}"):80"
      - address: "$(uhost "${RSNAT[1]}"):80"
  - name: dr-udp
    address: "$(uhost "${VIP[dr]}"):80"
    protocol: udp
    forwarding: dr
    scheduler: rr
    real_servers:
      - address: "$(uhost "${RS[0]}"):80"
      - address: "$(uhost "${RS[1]}"):80"
EOF
# ip netns exec, taskset and setsid exec: the PID is govs's own.
start_bg "$TMP/logs/govs.log" ip netns exec "$NS_DIR" "${ON_DIR[@]}" "$GOVS_BIN" --socket "$TMP/govs.sock" run -c "$TMP/govs.yaml"
GOVS_PID=$LAST_PID
if ((PIN)); then
	sleep 0.2
	echo "$DIR_NICE" >"/proc/$GOVS_PID/autogroup" || die "autogroup nice of govs ($GOVS_PID)"
fi
for t in "${TARGETS[@]}"; do
	ok=0
	for _ in $(seq 100); do
		if in_ns "$NS_CLI" curl -s -m 1 -o /dev/null "http://$(uhost "${VIP[$t]}")/"; then ok=1; break; fi
		sleep 0.1
	done
	((ok)) || die "target $t does not answer (see $TMP/logs)"
done

# ---- measure -----------------------------------------------------------------------
wrk_rps() { # TARGET [close]
	local hdr=()
	[[ ${2:-} == close ]] && hdr=(-H 'Connection: close')
	in_ns "$NS_CLI" "${ON_REST[@]}" timeout $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" "http://$(uhost "${VIP[$1]}")/" |
		awk '/^Requests\/sec:/ { printf "%d", $2 }'
}
bulk() { # TARGET: MB/s over BULK_COUNT sequential downloads
	local total=0 i s
	for ((i = 0; i < BULK_COUNT; i++)); do
		s=$(in_ns "$NS_CLI" "${ON_REST[@]}" timeout 120 curl -s -o /dev/null -w '%{speed_download}' "http://$(uhost "${VIP[$1]}")/big.bin")
		total=$(awk -v a="$total" -v b="$s" 'BEGIN { print a + b }')
	done
	awk -v t="$total" -v n="$BULK_COUNT" 'BEGIN { printf "%.0f", t / n / 1000000 }'
}
declare -A VALS
# PIN=1 observation. snapshot: "busy0 total0 busy1 total1 own rx0 rx1 rxpk
# ns": the CPUs' busy and total clock ticks (/proc/stat), the ns of CPU the
# director's own threads have had (its NAPI thread and govs's threads,
# /proc/PID/schedstat), the NET_RX softirqs per CPU, the packets the
# director's eth0 received (govs's /proc/PID/net/dev shows its namespace)
# and the time.
snapshot() {
	local own rtr rxpk
	own=$(cat "/proc/$DIR_NAPI/schedstat" "/proc/$GOVS_PID"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }') # (mawk's %d stops at 2^31)
	rxpk=$(awk '$1 == "eth0:" { print $3 }' "/proc/$GOVS_PID/net/dev") # after the bytes
	rtr=0
	[[ -n $RTR_NAPI ]] && rtr=$(awk '{ print $1 }' "/proc/$RTR_NAPI/schedstat")
	echo "$(awk '$1 == "cpu0" || $1 == "cpu1" { b = $2 + $3 + $4 + $7 + $8 + $9; printf "%d %d ", b, b + $5 + $6 }' /proc/stat)$own $(awk '$1 == "NET_RX:" { print $2, $3 }' /proc/softirqs) $rxpk $rtr $(date +%s%N)"
}
# observe TARGET FIGURE S0 S1: records CPU 0's and CPU 1's busy share
# (%), the director's own threads' share of one CPU (%) and the NET_RX
# softirqs per CPU between two snapshots.
observe() {
	local t=$1 f=$2 a b
	read -ra a <<<"$3"
	read -ra b <<<"$4"
	VALS[$t,${f}cpu0]+="$(awk -v b="$((b[0] - a[0]))" -v t="$((b[1] - a[1]))" 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }') "
	VALS[$t,${f}cpu1]+="$(awk -v b="$((b[2] - a[2]))" -v t="$((b[3] - a[3]))" 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }') "
	VALS[$t,${f}own]+="$(awk -v o="$((b[4] - a[4]))" -v w="$((b[9] - a[9]))" 'BEGIN { printf "%.0f", w ? 100 * o / w : 0 }') "
	RX0[$t]=$((${RX0[$t]:-0} + b[5] - a[5]))
	RX1[$t]=$((${RX1[$t]:-0} + b[6] - a[6]))
}
# check_pin: the director's threads last ran on CPU 1, the router's NAPI
# thread on CPU 0 (field 39 of /proc/PID/stat); counts where not.
check_pin() {
	local f cpu want
	for f in "/proc/$DIR_NAPI/stat" "/proc/$GOVS_PID"/task/*/stat ${RTR_NAPI:+"/proc/$RTR_NAPI/stat"}; do
		want=1
		[[ $f == "/proc/$RTR_NAPI/stat" ]] && want=0
		cpu=$(sed 's/.*) //' "$f" 2>/dev/null | awk '{ print $37 }')
		[[ -z $cpu ]] && continue # a govs thread gone
		PINCHECKS=$((PINCHECKS + 1))
		[[ $cpu == "$want" ]] || { PINBAD=$((PINBAD + 1)); log "PIN: $f last ran on CPU $cpu, not $want"; }
	done
}
declare -A RX0 RX1
PINCHECKS=0 PINBAD=0
measure() { # TARGET FIGURE CMD...: VALS[TARGET,FIGURE] += CMD's output
	local t=$1 f=$2 s0 s1 v
	shift 2
	((PIN)) && s0=$(snapshot)
	v=$("$@")
	((PIN)) && { s1=$(snapshot); observe "$t" "$f" "$s0" "$s1"; }
	VALS[$t,$f]+="$v "
}
bench_lock
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
for ((r = 0; r < ROUNDS; r++)); do
	nt=${#TARGETS[@]}
	order=("${TARGETS[@]:r % nt}" "${TARGETS[@]:0:r % nt}")
	for t in "${order[@]}"; do
		log "round $((r + 1)): $t"
		measure "$t" new wrk_rps "$t" close
		measure "$t" ka wrk_rps "$t"
		measure "$t" bulk bulk "$t"
		((PIN)) && check_pin
	done
done
# Cost per packet: the system CPU time the client's sender spends per UDP
# packet to the VIP. veth hands each packet on inside the sender's own
# softirq, so this time holds every hop's work (router, director, real
# server's drop), and unlike a throughput it does not fall when other
# processes take the CPU. target - routed is what the director's path adds.
cost() { # TARGET: ns of system time per packet, for COST_PKTS packets
	in_ns "$NS_CLI" "${ON_REST[@]}" timeout 300 python3 - "${SRC[$1]}" "${VIP[$1]}" "$COST_PKTS" "$FAMILY" <<'PY'
import os, socket, sys
src, dst, n, fam = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET6 if fam == "6" else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
p, a = b"x" * 64, (dst, 80)
for _ in range(1000):
    s.sendto(p, a)
t0 = os.times()
for _ in range(n):
    s.sendto(p, a)
t1 = os.times()
print("%d" % ((t1.system - t0.system) / n * 1e9))
PY
}
if ((COST_ROUNDS > 0)); then
	for ((r = 0; r < COST_ROUNDS; r++)); do
		nt=${#TARGETS[@]}
		order=("${TARGETS[@]:r % nt}" "${TARGETS[@]:0:r % nt}")
		for t in "${order[@]}"; do
			[[ $t == nat ]] && continue # no UDP nat service here
			log "cost round $((r + 1)): $t"
			if ((PIN)); then
				s0=$(snapshot)
				VALS[$t,cost]+="$(cost "$t") "
				s1=$(snapshot)
				# The director's CPU per packet it received (routed: none),
				# and the router's NAPI thread's (on CPU 0) per packet sent.
				read -ra a <<<"$s0"
				read -ra b <<<"$s1"
				VALS[$t,dcost]+="$(awk -v o="$((b[4] - a[4]))" -v n="$((b[7] - a[7]))" 'BEGIN { if (n > 1000) printf "%d", o / n; else printf "n/a" }') "
				VALS[$t,rcost]+="$(awk -v o="$((b[8] - a[8]))" -v n="$((COST_PKTS + 1000))" 'BEGIN { printf "%d", o / n }') "
				check_pin
			else
				VALS[$t,cost]+="$(cost "$t") "
			fi
		done
	done
fi
T1=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
bench_unlock
median() { tr ' ' '\n' | { grep -E '^[0-9.]+$' || true; } | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A MED
for t in "${TARGETS[@]}"; do
	for f in new ka bulk cost dcost rcost newcpu0 newcpu1 newown kacpu0 kacpu1 kaown bulkcpu0 bulkcpu1 bulkown; do
		MED[$t,$f]=$(echo "${VALS[$t,$f]:-}" | median)
	done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# pratio T F: the median over rounds of T's figure over routed's in the
# same round (paired: a load change between rounds cancels out).
pratio() {
	local -a a b
	read -ra a <<<"${VALS[$1,$2]}"
	read -ra b <<<"${VALS[routed,$2]}"
	local i out=""
	for i in "${!a[@]}"; do out+="$(ratio "${a[$i]}" "${b[$i]}") "; done
	echo "$out" | tr ' ' '\n' | awk 'NF' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

SEC=$TMP/section.md
NAME=dr
((PIN)) && NAME=drpin
[[ $FAMILY == 6 ]] && NAME+=6
declare -A DESC=(
	[routed]="the router sends the VIP straight to the real servers (ECMP, L4 hash), no director"
	[hop]="the router sends the VIP to the director, which routes it on to the real servers by plain kernel forwarding (ECMP, no nftables): the extra hop alone, the ceiling of any DR on this topology"
	[dr]="govs \`forwarding: dr\` rr; the replies go from the real servers to the router"
	[nat]="govs \`forwarding: nat\` rr; the replies come back through the director"
	[dupjh]="hand-written \`dup to jhash(...) map {rs1, rs2}; drop\` in prerouting raw: govs dr's transmit without its flow map"
	[ndfwd]="hand-written netdev ingress \`fwd $TH to jhash(...) map {...} device\`: no copy, no route lookup, no flow map"
	[pbr]="policy routing: a mark by jhash(...) in prerouting raw, \`ip rule fwmark M lookup T\`, T's default route via the real server: kernel forwarding"
	[ndmac]="hand-written netdev ingress \`ether daddr set jhash(...) map {MACs}; fwd to DEV\`: MACs precomputed, no neighbour lookup, no TTL decrement"
	[ndmap]="hand-written netdev ingress with a dynamic flow map like govs dr's (refresh and fwd; new: numgen, record, fwd)"
)
row() { # LABEL FIGURE
	local t out="| $1 |"
	for t in "${TARGETS[@]}"; do out+=" ${MED[$t,$2]} |"; done
	echo "$out"
}
cpurow() { # LABEL FIGURE: "CPU 0 busy / CPU 1 busy / director's own threads" (%)
	local t out="| $1 |"
	for t in "${TARGETS[@]}"; do out+=" ${MED[$t,${2}cpu0]} / ${MED[$t,${2}cpu1]} / ${MED[$t,${2}own]} |"; done
	echo "$out"
}
{
	echo "<!-- bench/$NAME begin -->"
	if ((PIN)); then
		echo "## Direct routing with the director on its own CPU (PIN=1, IPv$FAMILY): govs dr vs routed straight vs govs nat"
	else
		echo "## Direct routing in namespaces (IPv$FAMILY): govs dr vs routed straight vs govs nat"
	fi
	echo
	echo "Written by \`bench/dr.sh\`; do not edit between the markers (the next run replaces it)."
	echo
	echo "- Command: \`PIN=$PIN $( ((PIN)) && echo "DIR_NICE=$DIR_NICE RTR_RX=$RTR_RX ")FAMILY=$FAMILY EXPERIMENTS=$EXPERIMENTS ONLY='${ONLY:-}' QUICK=$QUICK ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS BULK_MB=$BULK_MB BULK_COUNT=$BULK_COUNT COST_ROUNDS=$COST_ROUNDS COST_PKTS=$COST_PKTS bench/dr.sh\` (measuring time $((T1 - T0))s, under \`flock /tmp/govs-bench.lock\`)"
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: nproc $(nproc), kernel $(uname -r); load average at start $LOAD0, at end $LOAD1 (shared machine: figures are noisy); govs $GIT_REV"
	if ((PIN)); then
		echo "- Topology: client → router → bridge with the director and 2 real servers (nginx, 1 worker, \`return 200\`, a $BULK_MB MiB file). **Pinned**: the client's, router's and real servers' processes and packet work on CPU 0; the director's (govs under \`taskset -c 1\` in an autogroup of its own, its eth0 receiving in a threaded NAPI kernel thread pinned to CPU 1; both at nice $DIR_NICE, so that other work on the shared machine yields CPU 1 to them) on CPU 1; the router's end of the director's link (bd) receives in a NAPI thread pinned to CPU 0 (GRO on and TSO off on both ends of that link). So routed runs on CPU 0 alone and hop, dr and nat on CPU 0 plus the director's CPU 1. Other work on the shared machine still runs on both CPUs. One govs process serves dr and nat. Targets:"
	else
		echo "- Topology: client → router → bridge with the director and 2 real servers (nginx, 1 worker, \`return 200\`, a $BULK_MB MiB file), all namespaces on the same cores. One govs process serves dr and nat. Targets:"
	fi
	for t in "${TARGETS[@]}"; do echo "  - $t: ${DESC[$t]}."; done
	echo "- Method: per visit wrk -t$THREADS -c$CONNS -d${DURATION}s with \`Connection: close\`, then keep-alive, then $BULK_COUNT sequential curl downloads; targets rotated each round; medians of $ROUNDS rounds."
	echo
	h="| figure |" l="| --- |"
	for t in "${TARGETS[@]}"; do h+=" $t |"; l+=" ---: |"; done
	echo "$h"
	echo "$l"
	row "new connections/s ↑" new
	row "requests/s, keep-alive ↑" ka
	row "bulk MB/s ↑" bulk
	if ((PIN)); then
		cpurow "busy %: CPU 0 / CPU 1 (director) / the director's own threads, new connections" new
		cpurow "busy %: CPU 0 / CPU 1 / director's threads, keep-alive" ka
		cpurow "busy %: CPU 0 / CPU 1 / director's threads, bulk" bulk
		if ((COST_ROUNDS > 0)); then
			row "ns of the director's CPU per packet it receives (NAPI thread + govs) ↓ (median of $COST_ROUNDS × $COST_PKTS UDP)" dcost
			row "ns of the sender's system CPU per UDP packet (CPU 0) ↓" cost
			row "ns of the router's bd NAPI thread per UDP packet (CPU 0) ↓" rcost
		fi
	else
		((COST_ROUNDS > 0)) && row "ns of CPU per UDP packet, whole path ↓ (median of $COST_ROUNDS × $COST_PKTS)" cost
	fi
	echo
	echo "| ratio | value | target |"
	echo "| --- | ---: | ---: |"
	[[ " ${TARGETS[*]} " == *" dr "* && " ${TARGETS[*]} " == *" nat "* ]] &&
		echo "| dr / nat, bulk MB/s (of medians) | $(ratio "${MED[dr,bulk]}" "${MED[nat,bulk]}") | > 1 |"
	echo
	echo "| over routed: of medians / median of the rounds' own ratios | new connections/s | keep-alive requests/s | bulk MB/s |"
	echo "| --- | ---: | ---: | ---: |"
	for t in "${TARGETS[@]}"; do
		[[ $t == routed ]] && continue
		echo "| $t | $(ratio "${MED[$t,new]}" "${MED[routed,new]}") / $(pratio "$t" new) | $(ratio "${MED[$t,ka]}" "${MED[routed,ka]}") / $(pratio "$t" ka) | $(ratio "${MED[$t,bulk]}" "${MED[routed,bulk]}") / $(pratio "$t" bulk) |"
	done
	echo
	if ((COST_ROUNDS > 0 && !PIN)); then
		echo
		echo "| CPU per packet added by the director's path, ns (target − routed, medians) ↓ | value |"
		echo "| --- | ---: |"
		for t in "${TARGETS[@]}"; do
			[[ $t == routed || $t == nat ]] && continue
			echo "| $t | $(awk -v a="${MED[$t,cost]}" -v b="${MED[routed,cost]}" 'BEGIN { printf "%d (%.2fx routed'"'"'s whole path)", a - b, a / b }') |"
		done
	fi
	echo
	echo "Target: dr ≥ 0.95 of routed on all three, above nat on bulk."
	echo
	if ((PIN)); then
		echo "Busy shares are of each CPU over the visit's measurement (/proc/stat: the whole machine's work on it, other helpers' too); \"the director's own threads\" is its NAPI thread's and govs's CPU time (/proc/PID/schedstat) over the same time, in % of one CPU."
		echo
		echo "Pinning check: $PINCHECKS samples of the last CPU of the director's NAPI thread and govs's threads (want 1) and the router's NAPI thread (want 0) after every visit (/proc/PID/stat field 39): $PINBAD elsewhere. NET_RX softirqs during each target's throughput runs, CPU 0 / CPU 1: $(for t in "${TARGETS[@]}"; do printf '%s %s / %s; ' "$t" "${RX0[$t]:-0}" "${RX1[$t]:-0}"; done)"
		echo
	fi
	echo "Per-round values: $(for t in "${TARGETS[@]}"; do printf '%s new [%s] ka [%s] bulk [%s] cost [%s]; ' "$t" "${VALS[$t,new]% }" "${VALS[$t,ka]% }" "${VALS[$t,bulk]% }" "${VALS[$t,cost]:-}"; done)"
	if ((PIN)); then
		echo
		echo "Per-round CPU 1 busy % (new ka bulk) and director's CPU per packet: $(for t in "${TARGETS[@]}"; do printf '%s [%s] [%s] [%s] dcost [%s]; ' "$t" "${VALS[$t,newcpu1]% }" "${VALS[$t,kacpu1]% }" "${VALS[$t,bulkcpu1]% }" "${VALS[$t,dcost]:-}"; done)"
	fi
	echo "<!-- bench/$NAME end -->"
} >"$SEC"
cat "$SEC"
case $NAME in
dr) after=nat ;;
dr6) after=dr ;;
drpin) after=dr6 ;;
drpin6) after=drpin ;;
esac
write_section "$NAME" "$SEC" "$RESULTS" "$after"
log "results written to $RESULTS"
