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
# Figures: new connections/s (wrk -H 'Connection: close'), keep-alive
# requests/s, bulk MB/s (sequential curl of the big file). Every round visits
# every target once, order rotated each round; medians.
#
# Safety: traffic only inside the namespaces made here (govsdr-PID-*); the
# host's interfaces, routes and nftables are not touched. Bounded runs. On
# exit the processes started here are stopped by PID and the namespaces
# deleted. Holds /tmp/govs-bench.lock while measuring.
#
# Settings: QUICK=1 (smoke), ROUNDS=3 DURATION=4 CONNS=50 THREADS=2 BULK_MB=64
# BULK_COUNT=4 LOCK_WAIT=900 RESULTS=bench/RESULTS.md KEEP_TMP=1 GOVS_BIN=path
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

QUICK=${QUICK:-0}
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
RESULTS=${RESULTS:-$HERE/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
for v in ROUNDS DURATION CONNS THREADS BULK_MB BULK_COUNT LOCK_WAIT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "dr.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && ROUNDS <= 10 && DURATION >= 1 && DURATION <= 60 && CONNS >= 2 && CONNS <= 1000 &&
	THREADS >= 1 && THREADS <= CONNS && BULK_MB >= 1 && BULK_MB <= 512 && BULK_COUNT >= 1 && BULK_COUNT <= 50)) ||
	{ echo "dr.sh: settings out of bounds" >&2; exit 2; }
((EUID == 0)) || { echo "dr.sh: needs root (network namespaces)" >&2; exit 1; }
for t in ip nginx wrk curl nft flock timeout awk go; do
	command -v "$t" >/dev/null 2>&1 || { echo "dr.sh: missing $t (apt-get install -y iproute2 nginx wrk curl nftables)" >&2; exit 1; }
done

TARGETS=(routed dr nat)
declare -A VIP=([routed]=10.80.9.1 [dr]=10.80.9.2 [nat]=10.80.9.3)
# A client source per target: the real servers' TIME_WAIT tuples of one
# target must not meet another's SYNs (PAWS; see nat.sh).
declare -A SRC=([routed]=10.80.0.3 [dr]=10.80.0.4 [nat]=10.80.0.5)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TMP=$(mktemp -d /tmp/govs-drbench.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/www" "$TMP/logs"
P="govsdr-$$"
NS_CLI=$P-cli NS_RTR=$P-rtr NS_DIR=$P-dir
NS_RS=("$P-rs1" "$P-rs2")
MY_NS=()
PIDS=()
cleanup() {
	local rc=$? pid ns
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	for ns in "${MY_NS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done # nginx we started
		ip netns del "$ns" 2>/dev/null || log "could not delete $ns"
	done
	if [[ $KEEP_TMP == 1 ]]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---- build ---------------------------------------------------------------------
GIT_REV=$(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n ${GOVS_BIN:-} ]]; then
	[[ -x $GOVS_BIN ]] || die "GOVS_BIN=$GOVS_BIN is not executable"
	cp "$GOVS_BIN" "$TMP/govs"
else
	log "building govs"
	mkdir -p "$HERE/out"
	(cd "$ROOT" && go build -o "$HERE/out/govs" ./cmd/govs) || die "go build failed"
	cp "$HERE/out/govs" "$TMP/govs"
fi

# ---- topology --------------------------------------------------------------------
for ns in "$NS_CLI" "$NS_RTR" "$NS_DIR" "${NS_RS[@]}"; do
	ip netns add "$ns"
	MY_NS+=("$ns")
	in_ns "$ns" ip link set lo up
done
ip link add eth0 netns "$NS_CLI" type veth peer name c0 netns "$NS_RTR"
in_ns "$NS_CLI" ip addr add 10.80.0.2/24 dev eth0
for t in "${TARGETS[@]}"; do in_ns "$NS_CLI" ip addr add "${SRC[$t]}/24" dev eth0; done
in_ns "$NS_CLI" ip link set eth0 up
in_ns "$NS_CLI" ip route add default via 10.80.0.1
for t in "${TARGETS[@]}"; do in_ns "$NS_CLI" ip route add "${VIP[$t]}/32" via 10.80.0.1 src "${SRC[$t]}"; done
in_ns "$NS_RTR" ip addr add 10.80.0.1/24 dev c0
in_ns "$NS_RTR" ip link set c0 up
in_ns "$NS_RTR" ip link add br0 type bridge
in_ns "$NS_RTR" ip link set br0 up
in_ns "$NS_RTR" ip addr add 10.80.1.1/24 dev br0
in_ns "$NS_RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
port() { # NS PORTNAME ADDR...
	local ns=$1 pn=$2 a
	shift 2
	ip link add eth0 netns "$ns" type veth peer name "$pn" netns "$NS_RTR"
	in_ns "$NS_RTR" ip link set "$pn" master br0 up
	for a in "$@"; do in_ns "$ns" ip addr add "$a/24" dev eth0; done
	in_ns "$ns" ip link set eth0 up
	in_ns "$ns" ip route add default via 10.80.1.1
}
port "$NS_DIR" bd 10.80.1.10
in_ns "$NS_DIR" sysctl -qw net.ipv4.ip_forward=1
for i in 0 1; do
	port "${NS_RS[$i]}" "b$i" "10.80.1.2$((i + 1))" "10.80.1.3$((i + 1))"
	in_ns "${NS_RS[$i]}" "$TMP/govs" realserver --vip "${VIP[routed]}" --vip "${VIP[dr]}" >/dev/null
	# LVS-NAT: replies from the nat address go back through the director.
	in_ns "${NS_RS[$i]}" ip rule add from "10.80.1.3$((i + 1))" lookup 100
	in_ns "${NS_RS[$i]}" ip route add default via 10.80.1.10 table 100
done
in_ns "$NS_RTR" ip route add "${VIP[routed]}/32" nexthop via 10.80.1.21 nexthop via 10.80.1.22
in_ns "$NS_RTR" ip route add "${VIP[dr]}/32" via 10.80.1.10
in_ns "$NS_RTR" ip route add "${VIP[nat]}/32" via 10.80.1.10

head -c $((BULK_MB * 1048576)) /dev/urandom >"$TMP/www/big.bin"
for i in 0 1; do
	d=$TMP/rs$((i + 1))
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<EOF
user root;
worker_processes 1;
worker_rlimit_nofile 16000;
pid $d/nginx.pid;
error_log $TMP/logs/rs$((i + 1))-error.log warn;
events { worker_connections 8000; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 80 backlog=4096;
        root $TMP/www;
        location = / { default_type text/plain; return 200 "ok\n"; }
        location = /big.bin { }
    }
}
EOF
	in_ns "${NS_RS[$i]}" nginx -q -p "$d" -c "$d/nginx.conf" -e "$TMP/logs/rs$((i + 1))-start.log" || die "nginx failed"
done

cat >"$TMP/govs.yaml" <<EOF
virtual_servers:
  - name: dr
    address: "${VIP[dr]}:80"
    forwarding: dr
    scheduler: rr
    real_servers:
      - address: "10.80.1.21:80"
      - address: "10.80.1.22:80"
  - name: nat
    address: "${VIP[nat]}:80"
    forwarding: nat
    scheduler: rr
    real_servers:
      - address: "10.80.1.31:80"
      - address: "10.80.1.32:80"
EOF
in_ns "$NS_DIR" "$TMP/govs" --socket "$TMP/govs.sock" run -c "$TMP/govs.yaml" >"$TMP/logs/govs.log" 2>&1 &
PIDS+=($!)
for t in "${TARGETS[@]}"; do
	ok=0
	for _ in $(seq 100); do
		if in_ns "$NS_CLI" curl -s -m 1 -o /dev/null "http://${VIP[$t]}/"; then ok=1; break; fi
		sleep 0.1
	done
	((ok)) || die "target $t does not answer (see $TMP/logs)"
done

# ---- measure -----------------------------------------------------------------------
wrk_rps() { # TARGET [close]
	local hdr=()
	[[ ${2:-} == close ]] && hdr=(-H 'Connection: close')
	in_ns "$NS_CLI" timeout $((DURATION + 20)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" "http://${VIP[$1]}/" |
		awk '/^Requests\/sec:/ { printf "%d", $2 }'
}
bulk() { # TARGET: MB/s over BULK_COUNT sequential downloads
	local total=0 i s
	for ((i = 0; i < BULK_COUNT; i++)); do
		s=$(in_ns "$NS_CLI" timeout 120 curl -s -o /dev/null -w '%{speed_download}' "http://${VIP[$1]}/big.bin")
		total=$(awk -v a="$total" -v b="$s" 'BEGIN { print a + b }')
	done
	awk -v t="$total" -v n="$BULK_COUNT" 'BEGIN { printf "%.0f", t / n / 1000000 }'
}
declare -A VALS
exec 9>/tmp/govs-bench.lock
flock -w "$LOCK_WAIT" 9 || die "bench lock busy"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
for ((r = 0; r < ROUNDS; r++)); do
	order=("${TARGETS[@]:r % 3}" "${TARGETS[@]:0:r % 3}")
	for t in "${order[@]}"; do
		log "round $((r + 1)): $t"
		VALS[$t,new]+="$(wrk_rps "$t" close) "
		VALS[$t,ka]+="$(wrk_rps "$t") "
		VALS[$t,bulk]+="$(bulk "$t") "
	done
done
T1=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
flock -u 9
# The director's counters for the dr VIP: packets from it (replies) must be 0.
median() { tr ' ' '\n' | awk 'NF' | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A MED
for t in "${TARGETS[@]}"; do
	for f in new ka bulk; do MED[$t,$f]=$(echo "${VALS[$t,$f]}" | median); done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

SEC=$TMP/section.md
{
	echo "<!-- bench/dr begin -->"
	echo "## Direct routing in namespaces: govs dr vs routed straight vs govs nat"
	echo
	echo "Written by \`bench/dr.sh\`; do not edit between the markers (the next run replaces it)."
	echo
	echo "- Command: \`QUICK=$QUICK ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS BULK_MB=$BULK_MB BULK_COUNT=$BULK_COUNT bench/dr.sh\` (measuring time $((T1 - T0))s, under \`flock /tmp/govs-bench.lock\`)"
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: nproc $(nproc), kernel $(uname -r); load average at start $LOAD0, at end $LOAD1 (shared machine: figures are noisy); govs $GIT_REV"
	echo "- Topology: client → router → bridge with the director and 2 real servers (nginx, 1 worker, \`return 200\`, a $BULK_MB MiB file), all namespaces on the same cores. routed: the router sends the VIP straight to the real servers (ECMP, L4 hash), no director. dr: govs \`forwarding: dr\` rr; the replies go from the real servers to the router. nat: govs \`forwarding: nat\` rr; the replies come back through the director. One govs process serves both."
	echo "- Method: per visit wrk -t$THREADS -c$CONNS -d${DURATION}s with \`Connection: close\`, then keep-alive, then $BULK_COUNT sequential curl downloads; targets rotated each round; medians of $ROUNDS rounds."
	echo
	echo "| figure | routed | dr | nat |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| new connections/s ↑ | ${MED[routed,new]} | ${MED[dr,new]} | ${MED[nat,new]} |"
	echo "| requests/s, keep-alive ↑ | ${MED[routed,ka]} | ${MED[dr,ka]} | ${MED[nat,ka]} |"
	echo "| bulk MB/s ↑ | ${MED[routed,bulk]} | ${MED[dr,bulk]} | ${MED[nat,bulk]} |"
	echo
	echo "| ratio (of medians) | value | target |"
	echo "| --- | ---: | ---: |"
	echo "| dr / routed, new connections/s | $(ratio "${MED[dr,new]}" "${MED[routed,new]}") | ≥ 0.95 |"
	echo "| dr / routed, requests/s keep-alive | $(ratio "${MED[dr,ka]}" "${MED[routed,ka]}") | ≥ 0.95 |"
	echo "| dr / routed, bulk MB/s | $(ratio "${MED[dr,bulk]}" "${MED[routed,bulk]}") | ≥ 0.95 |"
	echo "| dr / nat, bulk MB/s | $(ratio "${MED[dr,bulk]}" "${MED[nat,bulk]}") | > 1 |"
	echo
	echo "Per-round values: $(for t in "${TARGETS[@]}"; do printf '%s new [%s] ka [%s] bulk [%s]; ' "$t" "${VALS[$t,new]% }" "${VALS[$t,ka]% }" "${VALS[$t,bulk]% }"; done)"
	echo "<!-- bench/dr end -->"
} >"$SEC"
cat "$SEC"
write_section dr "$SEC" "$RESULTS" nat
log "results written to $RESULTS"
