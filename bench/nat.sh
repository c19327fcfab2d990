#!/usr/bin/env bash
# bench/nat.sh: govs's kernel forwarding (nat, nat with a queue-assisted
# scheduler, fullnat) against direct routing, govs proxy and haproxy, in one
# run, in network namespaces:
#
#   client 10.78.0.2 --- 10.78.0.1 director 10.78.N.1 --- 10.78.N.2 real server N (N = 1, 2)
#                        VIPs 10.78.0.100-105
#
# Real servers: nginx (1 worker each), `return 200` on / and a BULK_MB file.
# Targets (all port 80, same real servers, same client):
#   direct   client -> real server addresses (wrk thread 1 -> rs1, thread 2 -> rs2;
#            bulk alternates), routed by the director as a plain router: no
#            govs, no nftables table, no conntrack hooks in the director.
#   routed   the same routing to the real servers' second addresses, with
#            conntrack on in the director (an nft table with one `ct state`
#            rule, no NAT): what connection tracking alone costs, which every
#            nftables NAT pays. A diagnostic.
#   nat      govs `forwarding: nat`, rr: run by the kernel (numgen), VIP .100
#   natstop  the same, with the govs process stopped (SIGSTOP) once its rules are
#            in: the kernel's NAT alone, without govs's own CPU use (its
#            conntrack statistics loop) on the shared cores. A diagnostic. VIP .105
#   wlc      govs `forwarding: nat`, wlc: first packets through NFQUEUE to govs, VIP .101
#   fullnat  govs `forwarding: fullnat`, rr, local_addresses: [10.78.9.1], VIP .102
#   proxy    govs `forwarding: proxy`, rr (userspace), VIP .103
#   haproxy  haproxy mode tcp, roundrobin, nbthread 2, in the director, VIP .104
# govs (the real binary, `govs run`) runs in the director only while one of
# its targets is measured, with that target's service only; the director's
# conntrack table is flushed before each govs visit, so every target starts
# from an empty table.
#
# Figures: new connections/s (wrk -H 'Connection: close'), requests/s
# keep-alive, p99 latency of both wrk runs (wrk --latency), bulk MB/s (curl of
# the big file), govs CPU per new connection, conntrack entries after the
# new-connection run, and for wlc the share of connections govs scheduled
# (the rest took the kernel's fail-open fallback). Targets are interleaved:
# every round visits every target once, order rotated each round; medians.
#
# Safety: traffic only inside the namespaces made here (govsnat-PID-*); the
# host's interfaces, routes and nftables are not touched (govs, nft and
# conntrack run inside the director namespace only). Every load is bounded in
# time (wrk -d, timeout) and count. On exit (also on error or Ctrl-C) the
# processes started here are stopped by PID, then the namespaces are deleted
# (which removes govs's nftables table and the director's conntrack table).
# The measuring phase holds /tmp/govs-bench.lock (flock) so that benchmarks of
# other engineers do not overlap.
#
# Settings (environment):
#   QUICK=1      smoke run (~1 min): 1 round, 2 s runs, small bulk
#   ROUNDS=3 DURATION=4 WARMUP=1   rounds, seconds per wrk run, seconds per warm-up run
#   CONNS=50 THREADS=2             wrk connections and threads (direct needs THREADS even)
#   BULK_MB=64 BULK_COUNT=4        bulk file size (MiB), sequential transfers per visit
#   HAPROXY_THREADS=2 BACKEND_WORKERS=1
#   LOCK_WAIT=900                  seconds to wait for the bench lock
#   ONLY="nat wlc"                 measure only these targets (the others show n/a)
#   GOVS_BIN=path  use this binary instead of building bench/out/govs
#   RESULTS=path   default bench/RESULTS.md;  KEEP_TMP=1 keep configs and logs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ORIG_ARGS="$*"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${DURATION:=2}" "${WARMUP:=1}" "${BULK_MB:=16}" "${BULK_COUNT:=2}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
BULK_MB=${BULK_MB:-64}
BULK_COUNT=${BULK_COUNT:-4}
HAPROXY_THREADS=${HAPROXY_THREADS:-2}
BACKEND_WORKERS=${BACKEND_WORKERS:-1}
LOCK_WAIT=${LOCK_WAIT:-900}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
LOCK=$BENCH_LOCK

for v in ROUNDS DURATION WARMUP CONNS THREADS BULK_MB BULK_COUNT HAPROXY_THREADS BACKEND_WORKERS LOCK_WAIT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "nat.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && DURATION >= 1 && CONNS >= 2 && THREADS >= 2 && THREADS % 2 == 0 && THREADS <= CONNS && BULK_COUNT >= 1)) ||
	{ echo "nat.sh: need ROUNDS, DURATION, BULK_COUNT >= 1, an even THREADS >= 2 and THREADS <= CONNS" >&2; exit 2; }
((DURATION <= 60 && WARMUP <= 30 && ROUNDS <= 10 && CONNS <= 1000 && BULK_MB <= 512 && BULK_COUNT <= 50 &&
	HAPROXY_THREADS <= 16 && BACKEND_WORKERS <= 8)) ||
	{ echo "nat.sh: settings out of bounds (DURATION<=60 WARMUP<=30 ROUNDS<=10 CONNS<=1000 BULK_MB<=512 BULK_COUNT<=50)" >&2; exit 2; }
((EUID == 0)) || { echo "nat.sh: needs root (network namespaces, nftables inside them)" >&2; exit 1; }

TARGETS=(direct routed nat natstop wlc fullnat proxy haproxy)
ALL_TARGETS=("${TARGETS[@]}")
if [[ -n ${ONLY:-} ]]; then # a subset, e.g. ONLY="nat wlc" for an A/B of two builds
	sel=()
	for t in "${TARGETS[@]}"; do [[ " $ONLY " == *" $t "* ]] && sel+=("$t"); done
	((${#sel[@]})) || { echo "nat.sh: ONLY=$ONLY names none of: ${TARGETS[*]}" >&2; exit 2; }
	TARGETS=("${sel[@]}")
fi
GOVS_TARGETS=" nat natstop wlc fullnat proxy "
declare -A VIP=([nat]=10.78.0.100 [wlc]=10.78.0.101 [fullnat]=10.78.0.102 [proxy]=10.78.0.103 [haproxy]=10.78.0.104
	[natstop]=10.78.0.105)
RS_ADDR=(10.78.1.2 10.78.2.2)
RS_ADDR2=(10.78.1.3 10.78.2.3) # the routed target's
ROUTED_SRC=10.78.0.9
CLIENT_ADDR=10.78.0.2
# The client's source address per target. nat keeps the client's address,
# so the real servers would see the same (address, port) pairs from every
# target; Linux derives the TCP timestamp offset from the address pair
# (client->VIP differs from client->real server), so a SYN reusing a port
# still in a real server's TIME_WAIT from another target fails the PAWS
# check (TcpExtPAWSTimewait) and waits for a 1 s SYN retransmit. Distinct
# sources keep the targets' TIME_WAIT tuples apart.
declare -A CLIENT_SRC=([nat]=10.78.0.3 [wlc]=10.78.0.4 [fullnat]=10.78.0.5 [proxy]=10.78.0.6 [haproxy]=10.78.0.7
	[natstop]=10.78.0.8)
# fullnat's source toward the real servers: its own (routed back through the
# director by the real servers' default route), for the same reason: haproxy
# and govs proxy connect from the director's addresses on the real servers' links.
FULLNAT_LOCAL=10.78.9.1

missing=()
for t in ip nginx haproxy wrk curl conntrack nft flock timeout awk go; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
	echo "nat.sh: missing: ${missing[*]}" >&2
	echo "  install with: apt-get install -y iproute2 nginx haproxy wrk curl conntrack util-linux nftables" >&2
	exit 1
fi

# ---- temp dir, processes, namespaces, cleanup (bench/lib.sh) -----------------
bench_tmp govs-natbench
RES=$TMP/res
mkdir -p "$RES" "$TMP/wrk"
NS_PREFIX="govsnat-$$"
NS_CLI=$NS_PREFIX-cli
NS_DIR=$NS_PREFIX-dir
NS_RS=("$NS_PREFIX-rs1" "$NS_PREFIX-rs2")

# ---- build ---------------------------------------------------------------------
bench_govs

# ---- topology -------------------------------------------------------------------
link() { # NS_A DEV_A ADDR_A NS_B DEV_B ADDR_B
	ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}
sysctl_ns() { in_ns "$1" sysctl -q -w "$2=$3" >/dev/null || die "sysctl $2=$3 in $1"; }

log "building the topology ($NS_PREFIX-*)"
mk_ns "$NS_CLI"
mk_ns "$NS_DIR"
link "$NS_DIR" c0 10.78.0.1/24 "$NS_CLI" eth0 "$CLIENT_ADDR/24"
for t in "${!VIP[@]}"; do
	ip -n "$NS_DIR" addr add "${VIP[$t]}/32" dev c0
	# Each target's connections leave the client from an address of their
	# own (direct: 10.78.0.2, the primary), see CLIENT_SRC above.
	ip -n "$NS_CLI" addr add "${CLIENT_SRC[$t]}/32" dev eth0
	ip -n "$NS_CLI" route add "${VIP[$t]}/32" dev eth0 src "${CLIENT_SRC[$t]}"
done
ip -n "$NS_CLI" route add default via 10.78.0.1
ip -n "$NS_CLI" addr add "$ROUTED_SRC/32" dev eth0
sysctl_ns "$NS_DIR" net.ipv4.ip_forward 1
# The client opens one connection per request: a wide port range, and reuse
# of its own TIME_WAIT ports (the default reuses them only on loopback).
sysctl_ns "$NS_CLI" net.ipv4.ip_local_port_range "1024 65535"
sysctl_ns "$NS_CLI" net.ipv4.tcp_tw_reuse 1
for i in 0 1; do
	n=$((i + 1))
	mk_ns "${NS_RS[$i]}"
	link "$NS_DIR" "r$n" "10.78.$n.1/24" "${NS_RS[$i]}" eth0 "${RS_ADDR[$i]}/24"
	ip -n "${NS_RS[$i]}" addr add "${RS_ADDR2[$i]}/24" dev eth0
	ip -n "${NS_RS[$i]}" route add default via "10.78.$n.1"
	# routed: from a source of its own, as the other targets (see CLIENT_SRC)
	ip -n "$NS_CLI" route add "${RS_ADDR2[$i]}/32" via 10.78.0.1 src "$ROUTED_SRC"
done
# haproxy and govs proxy connect to the real servers from the director.
sysctl_ns "$NS_DIR" net.ipv4.ip_local_port_range "1024 65535"
sysctl_ns "$NS_DIR" net.ipv4.tcp_tw_reuse 1

# ---- configs --------------------------------------------------------------------
log "generating the ${BULK_MB} MiB bulk file"
head -c $((BULK_MB * 1048576)) /dev/urandom >"$TMP/www/big.bin"
BULK_BYTES=$((BULK_MB * 1048576))
for i in 0 1; do
	d=$TMP/rs$((i + 1))
	mkdir -p "$d"
	nginx_conf "$d" "$BACKEND_WORKERS" "${RS_ADDR[$i]}:80" "${RS_ADDR2[$i]}:80"
	in_ns "${NS_RS[$i]}" nginx -t -q -p "$d" -c "$d/nginx.conf" -e "$TMP/logs/rs$((i + 1))-start.log" || die "nginx config rejected"
done

cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn 8000
    nbthread $HAPROXY_THREADS
defaults
    mode tcp
    maxconn 8000
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind ${VIP[haproxy]}:80 backlog 4096
    balance roundrobin
    server rs1 ${RS_ADDR[0]}:80
    server rs2 ${RS_ADDR[1]}:80
EOF
haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config rejected"

govs_config() { # TARGET -> file
	local t=$1 fwd=nat sched=rr extra=""
	case $t in
	wlc) sched=wlc ;;
	fullnat) fwd=fullnat extra="    local_addresses: [$FULLNAT_LOCAL]"$'\n' ;;
	proxy) fwd=proxy ;;
	esac
	cat >"$TMP/govs-$t.yaml" <<EOF
grace_period: 1s
logging:
  level: warn
virtual_servers:
  - name: $t
    address: ${VIP[$t]}:80
    protocol: tcp
    scheduler: $sched
    forwarding: $fwd
${extra}    real_servers:
      - address: ${RS_ADDR[0]}:80
      - address: ${RS_ADDR[1]}:80
EOF
	"$GOVS_BIN" check -c "$TMP/govs-$t.yaml" >/dev/null || die "govs config for $t rejected"
}
for t in $GOVS_TARGETS; do govs_config "$t"; done
if ! in_ns "$NS_DIR" "$GOVS_BIN" check --kernel >"$TMP/logs/check-kernel.txt" 2>&1; then
	cat "$TMP/logs/check-kernel.txt" >&2
	die "the kernel dataplane is not available here (govs check --kernel)"
fi

# direct and routed: wrk's threads alternate between the two real servers.
lua_split() { # ADDR1 ADDR2
	cat <<EOF
local addrs = nil
local n = 0
function setup(thread)
   if addrs == nil then
      addrs = { wrk.lookup("$1", "80")[1], wrk.lookup("$2", "80")[1] }
   end
   n = n + 1
   thread.addr = addrs[(n - 1) % 2 + 1]
end
EOF
}
lua_split "${RS_ADDR[0]}" "${RS_ADDR[1]}" >"$TMP/direct.lua"
lua_split "${RS_ADDR2[0]}" "${RS_ADDR2[1]}" >"$TMP/routed.lua"
# routed: conntrack hooks on in the director, nothing else.
cat >"$TMP/routed.nft" <<EOF
table inet benchct {
	chain pre {
		type filter hook prerouting priority -300;
		ct state new counter
	}
}
EOF

# ---- daemons ---------------------------------------------------------------------
RS_PIDS=()
for i in 0 1; do
	d=$TMP/rs$((i + 1))
	start_bg "$TMP/logs/rs$((i + 1)).log" ip netns exec "${NS_RS[$i]}" nginx -p "$d" -c "$d/nginx.conf" \
		-e "$TMP/logs/rs$((i + 1))-start.log" -g 'daemon off;'
	RS_PIDS+=("$LAST_PID")
done
start_bg "$TMP/logs/haproxy.log" ip netns exec "$NS_DIR" haproxy -db -f "$TMP/haproxy.cfg"
HAPROXY_PID=$LAST_PID

http_ok() { # URL: "ok" from the client namespace
	[[ $(in_ns "$NS_CLI" curl -sS --max-time 2 "$1" 2>/dev/null) == ok ]]
}
wait_ok() { # URL PID: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		http_ok "$1" && return 0
		[[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}
for i in 0 1; do
	wait_ok "http://${RS_ADDR[$i]}/" "${RS_PIDS[$i]}" || { tail -n 20 "$TMP/logs/rs$((i + 1))"*.log >&2; die "real server $((i + 1)) does not answer"; }
done
wait_ok "http://${VIP[haproxy]}/" "$HAPROXY_PID" || { tail -n 20 "$TMP/logs/haproxy.log" >&2; die "haproxy does not answer"; }

ANOM=$TMP/anomalies.txt
: >"$ANOM"
anomaly() { echo "$*" >>"$ANOM"; log "ANOMALY: $*"; }

GOVS_PID=""
GOVS_SOCK=$TMP/govs.sock
govs_start() { # TARGET
	local t=$1
	# An empty conntrack table for each govs visit: every target starts alike.
	in_ns "$NS_DIR" conntrack -F >/dev/null 2>&1 || true
	start_bg "$TMP/logs/govs-$t.log.tmp" ip netns exec "$NS_DIR" "$GOVS_BIN" --socket "$GOVS_SOCK" run -c "$TMP/govs-$t.yaml"
	GOVS_PID=$LAST_PID
	if ! wait_ok "http://${VIP[$t]}/" "$GOVS_PID"; then
		anomaly "$t: govs did not serve the VIP within 10 s: $(tail -n 3 "$TMP/logs/govs-$t.log.tmp" | tr '\n' ' ')"
		govs_stop "$t"
		return 1
	fi
	# natstop: the rules stay in the kernel, govs does nothing more
	[[ $t == natstop ]] && kill -STOP "$GOVS_PID"
	return 0
}
govs_stop() { # TARGET
	[[ -n $GOVS_PID ]] || return 0
	kill -0 "$GOVS_PID" 2>/dev/null || anomaly "$1: govs exited during its visit: $(tail -n 3 "$TMP/logs/govs-$1.log.tmp" | tr '\n' ' ')"
	kill -CONT "$GOVS_PID" 2>/dev/null || true
	stop_pid "$GOVS_PID"
	GOVS_PID=""
	cat "$TMP/logs/govs-$1.log.tmp" >>"$TMP/logs/govs-$1.log"
	rm -f "$TMP/logs/govs-$1.log.tmp"
}
# cpu ticks (utime+stime) of a process
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
# connections govs scheduled for its service (wlc: through the queue)
govs_conns() { { curl -sS --max-time 2 --unix-socket "$GOVS_SOCK" http://govs/api/v1/stats 2>/dev/null || true; } |
	tr ',{}' '\n\n\n' | awk -F: '/"connections"/{print $2; exit}'; }
ct_count() { in_ns "$NS_DIR" conntrack -C 2>/dev/null || echo n/a; }
# A failed command inside a measurement must not end the run silently.
trap 'log "ERROR: line $LINENO: exit status $?"' ERR

# ---- measurements ------------------------------------------------------------------
to_ms() {
	awk -v v="$1" 'BEGIN{n=v; sub(/[a-z]+$/,"",n); u=v; sub(/^[0-9.]+/,"",u);
		f=(u=="us")?0.001:(u=="ms")?1:(u=="s")?1000:(u=="m")?60000:-1;
		if (f<0 || n=="") print "nan"; else printf "%.3f\n", n*f}'
}
url_of() { # TARGET PATH
	case $1 in
	direct) echo "http://${RS_ADDR[0]}$2" ;;
	routed) echo "http://${RS_ADDR2[0]}$2" ;;
	*) echo "http://${VIP[$1]}$2" ;;
	esac
}
run_wrk() { # TARGET close|ka SECONDS TAG
	local t=$1 mode=$2 secs=$3 tag=$4 out args rps p99 reqs errs c0 c1 t0 t1 g0 g1
	out=$TMP/wrk/$t.$mode.$tag.txt
	args=(-t"$THREADS" -c"$CONNS" -d"${secs}s" --latency)
	[[ $mode == close ]] && args+=(-H 'Connection: close')
	[[ $t == direct || $t == routed ]] && args+=(-s "$TMP/$t.lua")
	# (natstop: govs is stopped, its API does not answer)
	if [[ -n $GOVS_PID && $t != natstop ]]; then c0=$(cpu_ticks "$GOVS_PID"); g0=$(govs_conns); fi
	t0=$(date +%s.%N)
	in_ns "$NS_CLI" timeout $((secs + 20)) wrk "${args[@]}" "$(url_of "$t" /)" >"$out" 2>&1 || echo "wrk exit status $?" >>"$out"
	t1=$(date +%s.%N)
	if [[ -n $GOVS_PID && $t != natstop ]]; then c1=$(cpu_ticks "$GOVS_PID"); g1=$(govs_conns); fi
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	p99=$(awk '$1=="99%"{print $2}' "$out")
	reqs=$(awk '/requests in/{print $1}' "$out")
	errs=$(grep -E 'Socket errors|Non-2xx|exit status|unable to connect' "$out" || true)
	[[ -n $errs ]] && anomaly "$t $mode ($tag): $(echo "$errs" | tr '\n' ';' | sed 's/;$//') [of ${reqs:-?} requests]"
	[[ $tag == warmup ]] && return 0
	if [[ -z $rps ]]; then
		anomaly "$t $mode ($tag): wrk printed no Requests/sec: $(tail -n 3 "$out" | tr '\n' ' ')"
		return 0
	fi
	echo "$rps" >>"$RES/$mode.$t"
	[[ -n $p99 ]] && to_ms "$p99" >>"$RES/p99$mode.$t"
	if [[ $mode == close ]]; then
		[[ $t == nat* || $t == wlc || $t == fullnat || $t == routed ]] && echo "$(ct_count)" >>"$RES/ct.$t"
		if [[ -n $GOVS_PID && $t != natstop && -n $reqs && $reqs -gt 0 ]]; then
			# govs CPU per new connection (µs), and its share of the
			# machine's 2 cores over the run
			awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f\n", (b-a)/hz*1e6/n}' >>"$RES/cpu.$t"
			awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v s0="$t0" -v s1="$t1" 'BEGIN{printf "%.0f\n", (b-a)/hz/(s1-s0)*100}' >>"$RES/cpupct.$t"
			if [[ $t == wlc && -n $g0 && -n $g1 ]]; then
				# connections scheduled by govs / connections opened
				awk -v a="$g0" -v b="$g1" -v n="$reqs" 'BEGIN{printf "%.3f\n", (b-a)/n}' >>"$RES/queued.$t"
			fi
		fi
	fi
	return 0
}
run_bulk() { # TARGET COUNT TAG
	local t=$1 count=$2 tag=$3 out args=() i mbs bad
	out=$TMP/wrk/$t.bulk.$tag.txt
	for ((i = 0; i < count; i++)); do
		if [[ $t == direct ]]; then
			args+=(-o /dev/null "http://${RS_ADDR[$((i % 2))]}/big.bin")
		elif [[ $t == routed ]]; then
			args+=(-o /dev/null "http://${RS_ADDR2[$((i % 2))]}/big.bin")
		else
			args+=(-o /dev/null "$(url_of "$t" /big.bin)")
		fi
	done
	in_ns "$NS_CLI" timeout $((count * 60 + 10)) curl -sS --max-time 60 -w '%{http_code} %{size_download} %{time_total}\n' \
		"${args[@]}" >"$out" 2>&1 || echo "curl exit status $?" >>"$out"
	bad=$(awk -v want="$BULK_BYTES" 'NF!=3 || $1!=200 || $2!=want' "$out")
	[[ -n $bad ]] && anomaly "$t bulk ($tag): $(echo "$bad" | head -n 3 | tr '\n' ';')"
	[[ $tag == warmup ]] && return 0
	mbs=$(awk -v want="$BULK_BYTES" 'NF==3 && $1==200 && $2==want {b+=$2; t+=$3} END{if (t>0) printf "%.1f\n", b/t/1e6}' "$out")
	[[ -n $mbs ]] && echo "$mbs" >>"$RES/bulk.$t"
	return 0
}
visit() { # TARGET SECONDS BULK_COUNT TAG
	local t=$1
	if [[ $t == routed ]]; then
		in_ns "$NS_DIR" conntrack -F >/dev/null 2>&1 || true
		in_ns "$NS_DIR" nft -f "$TMP/routed.nft" || { anomaly "routed ($4): nft table refused"; return 0; }
	fi
	if [[ $GOVS_TARGETS == *" $t "* ]]; then
		govs_start "$t" || return 0
	elif ! http_ok "$(url_of "$t" /)"; then
		anomaly "$t ($4): does not answer; skipped"
		return 0
	fi
	run_wrk "$t" close "$2" "$4"
	sleep 0.5
	run_wrk "$t" ka "$2" "$4"
	run_bulk "$t" "$3" "$4"
	[[ -n $GOVS_PID ]] && govs_stop "$t"
	[[ $t == routed ]] && { in_ns "$NS_DIR" nft delete table inet benchct || anomaly "routed ($4): nft table not deleted"; }
	# let the closing connections finish before the next target
	sleep 0.5
}
rotated() {
	local r=$1 n i
	shift
	local a=("$@")
	n=${#a[@]}
	for ((i = 0; i < n; i++)); do echo "${a[$(((i + r) % n))]}"; done
}

# ---- run (under the bench lock) ------------------------------------------------------
bench_lock
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS

log "warm-up: ${WARMUP}s per target and mode"
for t in "${TARGETS[@]}"; do visit "$t" "$WARMUP" 1 warmup; done
for ((r = 0; r < ROUNDS; r++)); do
	order=($(rotated "$r" "${TARGETS[@]}"))
	log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
	for t in "${order[@]}"; do visit "$t" "$DURATION" "$BULK_COUNT" "r$((r + 1))"; done
done
ELAPSED=$((SECONDS - T0))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
bench_unlock

for i in 0 1; do kill -0 "${RS_PIDS[$i]}" 2>/dev/null || anomaly "real server $((i + 1)) nginx exited during the run"; done
kill -0 "$HAPROXY_PID" 2>/dev/null || anomaly "haproxy exited during the run"
for t in $GOVS_TARGETS; do
	n=$(grep -cE 'level=(WARN|ERROR)' "$TMP/logs/govs-$t.log" 2>/dev/null || true)
	[[ ${n:-0} -gt 0 ]] && anomaly "govs log ($t): $n WARN/ERROR lines, first: $(grep -m1 -E 'level=(WARN|ERROR)' "$TMP/logs/govs-$t.log")"
done
for i in 1 2; do
	n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$TMP/logs/rs$i-error.log" 2>/dev/null || true)
	[[ ${n:-0} -gt 0 ]] && anomaly "rs$i nginx error log: $n lines, first: $(grep -m1 -E '\[(error|crit|alert|emerg)\]' "$TMP/logs/rs$i-error.log")"
done

# ---- report ---------------------------------------------------------------------------
median() {
	[[ -s $1 ]] || { echo n/a; return; }
	grep -v '^n/a$' "$1" | sort -g | awk '{a[NR]=$1} END{if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
fmt() {
	[[ $1 == n/a ]] && { echo n/a; return; }
	awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f\n", d, v}'
}
ratio() {
	[[ $1 == n/a || $2 == n/a ]] && { echo n/a; return; }
	awk -v a="$1" -v b="$2" 'BEGIN{if (b==0) print "n/a"; else printf "%.2f\n", a/b}'
}
FIGS=(close ka p99close p99ka bulk cpu cpupct ct queued)
declare -A FIG_NAME=(
	[close]="new connections/s (wrk, Connection: close) ↑"
	[ka]="requests/s, keep-alive ↑"
	[p99close]="p99 latency, new-connection run (ms) ↓"
	[p99ka]="p99 latency, keep-alive run (ms) ↓"
	[bulk]="bulk throughput (MB/s, curl ${BULK_MB} MiB) ↑"
	[cpu]="govs CPU per new connection (µs)"
	[cpupct]="govs CPU during the new-connection run (% of one core)"
	[ct]="director conntrack entries after the new-connection run"
	[queued]="share of new connections scheduled by govs (rest: fail-open)"
)
declare -A FIG_DEC=([close]=0 [ka]=0 [p99close]=2 [p99ka]=2 [bulk]=0 [cpu]=1 [cpupct]=0 [ct]=0 [queued]=3)
declare -A M=()
for f in "${FIGS[@]}"; do for t in "${ALL_TARGETS[@]}"; do M[$f.$t]=$(median "$RES/$f.$t"); done; done

table() {
	local f t row
	echo "| figure | $(printf '%s | ' "${TARGETS[@]}" | sed 's/ | $//') |"
	echo "| --- |$(for t in "${TARGETS[@]}"; do printf ' ---: |'; done)"
	for f in "${FIGS[@]}"; do
		row="| ${FIG_NAME[$f]}"
		local any=0
		for t in "${TARGETS[@]}"; do
			[[ ${M[$f.$t]} != n/a ]] && any=1
			row+=" | $(fmt "${M[$f.$t]}" "${FIG_DEC[$f]}")"
		done
		((any)) && echo "$row |"
	done
	return 0
}
check() { # VALUE OP TARGET -> met / NOT met
	[[ $1 == n/a ]] && { echo "n/a"; return; }
	awk -v v="$1" -v op="$2" -v w="$3" 'BEGIN{ok=(op==">=")?(v>=w):(v>w); print ok ? "met" : "**not met**"}'
}
ratios() {
	local r
	echo "| ratio (of medians) | value | target | |"
	echo "| --- | ---: | ---: | --- |"
	r=$(ratio "${M[bulk.nat]}" "${M[bulk.direct]}"); echo "| nat / direct, bulk MB/s | $r | ≥ 0.95 | $(check "$r" ">=" 0.95) |"
	r=$(ratio "${M[ka.nat]}" "${M[ka.direct]}"); echo "| nat / direct, requests/s keep-alive | $r | ≥ 0.95 | $(check "$r" ">=" 0.95) |"
	r=$(ratio "${M[close.nat]}" "${M[close.direct]}"); echo "| nat / direct, new connections/s | $r | | |"
	r=$(ratio "${M[ka.routed]}" "${M[ka.direct]}"); echo "| routed with conntrack / direct, requests/s keep-alive | $r | | |"
	r=$(ratio "${M[bulk.routed]}" "${M[bulk.direct]}"); echo "| routed with conntrack / direct, bulk MB/s | $r | | |"
	r=$(ratio "${M[close.routed]}" "${M[close.direct]}"); echo "| routed with conntrack / direct, new connections/s | $r | | |"
	r=$(ratio "${M[ka.nat]}" "${M[ka.routed]}"); echo "| nat / routed with conntrack, requests/s keep-alive | $r | | |"
	r=$(ratio "${M[bulk.nat]}" "${M[bulk.routed]}"); echo "| nat / routed with conntrack, bulk MB/s | $r | | |"
	r=$(ratio "${M[ka.natstop]}" "${M[ka.direct]}"); echo "| nat with govs stopped / direct, requests/s keep-alive | $r | | |"
	r=$(ratio "${M[close.natstop]}" "${M[close.direct]}"); echo "| nat with govs stopped / direct, new connections/s | $r | | |"
	r=$(ratio "${M[close.nat]}" "${M[close.haproxy]}"); echo "| nat / haproxy, new connections/s | $r | > 1 | $(check "$r" ">" 1) |"
	r=$(ratio "${M[close.nat]}" "${M[close.proxy]}"); echo "| nat / govs proxy, new connections/s | $r | > 1 | $(check "$r" ">" 1) |"
	r=$(ratio "${M[close.wlc]}" "${M[close.nat]}"); echo "| wlc (queue) / nat rr (kernel), new connections/s | $r | ≥ 0.8 | $(check "$r" ">=" 0.8) |"
	r=$(ratio "${M[close.wlc]}" "${M[close.natstop]}"); echo "| wlc (queue) / nat with govs stopped, new connections/s | $r | | |"
	r=$(ratio "${M[close.fullnat]}" "${M[close.nat]}"); echo "| fullnat / nat, new connections/s | $r | | |"
	r=$(ratio "${M[ka.fullnat]}" "${M[ka.direct]}"); echo "| fullnat / direct, requests/s keep-alive | $r | | |"
	r=$(ratio "${M[bulk.fullnat]}" "${M[bulk.direct]}"); echo "| fullnat / direct, bulk MB/s | $r | | |"
}

ver_haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1{print $3}')
ver_nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')
ver_govs=$("$GOVS_BIN" version 2>/dev/null | awk '{print $2}')
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
ct_max=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || echo n/a)
ct_tw=$(in_ns "$NS_DIR" cat /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait 2>/dev/null || echo n/a)
env_cmd="${ONLY:+ONLY=\"$ONLY\" }QUICK=$QUICK ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS BULK_MB=$BULK_MB BULK_COUNT=$BULK_COUNT HAPROXY_THREADS=$HAPROXY_THREADS BACKEND_WORKERS=$BACKEND_WORKERS"

SECTION=$TMP/section.md
{
	echo "<!-- bench/nat.sh begin -->"
	echo "## Kernel forwarding in namespaces: nat, nat+wlc (NFQUEUE), fullnat vs direct, govs proxy, haproxy"
	echo
	echo "Written by \`bench/nat.sh\`; do not edit between the markers (the next run replaces it)."
	echo
	echo "- Command: \`$env_cmd bench/nat.sh${ORIG_ARGS:+ $ORIG_ARGS}\` (measuring time ${ELAPSED}s, under \`flock $LOCK\`)"
	echo "- Date: $START_DATE"
	echo "- Machine: nproc $(nproc), CPU \"$cpu_model\", kernel $(uname -r); load average at start $LOAD_START, at end $LOAD_END (shared machine: figures are noisy)"
	echo "- Versions: govs $ver_govs, haproxy $ver_haproxy, nginx $ver_nginx"
	echo "- Topology: client ns → director ns (veth) → 2 real-server ns (veth), all on the same $(nproc) cores, no CPU pinning. Real servers: nginx, $BACKEND_WORKERS worker each, \`return 200\` on \`/\`, a ${BULK_MB} MiB file. direct: the client to the real servers' addresses (wrk's threads split between them), the director a plain router (no govs, no nftables, conntrack hooks off). routed: the same to the real servers' second addresses with conntrack on in the director (one nft \`ct state\` rule, no NAT). nat/natstop/wlc/fullnat/proxy: \`govs run\` (a private copy of bench/out/govs) in the director with that one service (rr; wlc for wlc; fullnat SNATs to $FULLNAT_LOCAL; natstop: govs SIGSTOPped once serving, so the kernel alone forwards), 2 NFQUEUE queues (one per CPU), started for each visit after \`conntrack -F\`. haproxy: \`mode tcp\`, roundrobin, nbthread $HAPROXY_THREADS, no splice. Each target's connections come from a client address of its own (a real server's TIME_WAIT entries of one target would otherwise meet another target's SYNs carrying a different TCP timestamp offset: PAWS drops them). nf_conntrack_max $ct_max, TCP TIME_WAIT timeout ${ct_tw}s (defaults)."
	echo "- Method: per visit: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency with \`-H 'Connection: close'\`, then without (keep-alive), then $BULK_COUNT sequential curl downloads (total bytes / total time). Warm-up ${WARMUP}s per target and mode, then $ROUNDS rounds visiting every target, order rotated each round; medians."
	echo
	table
	echo
	ratios
	echo
	echo "<details><summary>Per-round values (run order)</summary>"
	echo
	echo "| figure | target | values |"
	echo "| --- | --- | --- |"
	for f in "${FIGS[@]}"; do
		for t in "${TARGETS[@]}"; do
			[[ -s $RES/$f.$t ]] && echo "| $f | $t | $(paste -sd' ' "$RES/$f.$t") |"
		done
	done
	echo
	echo "</details>"
	echo
	if [[ -s $ANOM ]]; then
		echo "Anomalies (wrk/curl errors, failed checks, log errors):"
		echo
		sed 's/^/- /' "$ANOM"
	else
		echo "Anomalies: none (no wrk socket errors or non-2xx responses, no curl errors, no daemon log errors)."
	fi
	echo "<!-- bench/nat.sh end -->"
} >"$SECTION"

cat "$SECTION"

write_section nat.sh "$SECTION" "$RESULTS" run.sh
log "written: $RESULTS"
