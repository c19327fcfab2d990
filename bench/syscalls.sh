#!/usr/bin/env bash
# bench/syscalls.sh: system calls per request of the proxies on loopback,
# counted by strace -f -c attached to each proxy while wrk runs against it:
# the figure that does not depend on how loaded the machine is (strace
# slows the proxy; the counts per request stay). Targets: govs (event
# loops), govsgo (GOVS_PROXY_LOOPS=off), haproxy; same nginx backend.
#
# Safety: loopback only; bounded runs; only the processes started here are
# stopped, by PID, on exit.
#
# Settings (env): SECONDS_RUN=3 CONNS=10 BASE_PORT=27180 GOVS_BIN= (default:
# build bench/out/govs); RESULTS=path (default bench/RESULTS.md).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
SECONDS_RUN=${SECONDS_RUN:-3}
CONNS=${CONNS:-10}
BASE_PORT=${BASE_PORT:-27180}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
HOST=127.0.0.1
for v in SECONDS_RUN CONNS BASE_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "syscalls.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((SECONDS_RUN >= 1 && SECONDS_RUN <= 30 && CONNS >= 1 && CONNS <= 500 && BASE_PORT >= 1024 && BASE_PORT + 3 <= 65535)) ||
	{ echo "syscalls.sh: settings out of bounds" >&2; exit 2; }
for t in haproxy nginx wrk strace go; do
	command -v "$t" >/dev/null || { echo "syscalls.sh: missing $t (apt-get install -y haproxy nginx wrk strace)" >&2; exit 1; }
done

BENCH=syscalls.sh
bench_tmp govs-syscalls
wait_listen() {
	local i
	for ((i = 0; i < 100; i++)); do
		ss -Htln "( sport = :$1 )" | grep -q "$HOST:$1" && return 0
		sleep 0.1
	done
	echo "syscalls.sh: nothing listens on $1" >&2
	return 1
}

bench_govs
P_BACKEND=$BASE_PORT
declare -A PORT=([govs]=$((BASE_PORT + 1)) [govsgo]=$((BASE_PORT + 2)) [haproxy]=$((BASE_PORT + 3)))
NGINX_USER=""
((EUID == 0)) && NGINX_USER="user root;"
mkdir -p "$TMP/backend" "$TMP/www"
head -c $((64 << 20)) /dev/urandom >"$TMP/www/big.bin"
cat >"$TMP/backend/nginx.conf" <<CONF
$NGINX_USER
worker_processes 1;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/backend/body;
    proxy_temp_path $TMP/backend/proxy;
    fastcgi_temp_path $TMP/backend/fastcgi;
    uwsgi_temp_path $TMP/backend/uwsgi;
    scgi_temp_path $TMP/backend/scgi;
    keepalive_requests 100000000;
    sendfile on;
    server { listen $HOST:$P_BACKEND; root $TMP/www; location = / { default_type text/plain; return 200 "ok\n"; } location = /big.bin { } }
}
CONF
for g in govs govsgo; do
	cat >"$TMP/$g.yaml" <<CONF
logging: {level: warn}
virtual_servers:
  - {name: $g, address: $HOST:${PORT[$g]}, scheduler: rr, real_servers: [{address: $HOST:$P_BACKEND}]}
CONF
done
cat >"$TMP/haproxy.cfg" <<CONF
global
    maxconn 4000
    nbthread 2
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind $HOST:${PORT[haproxy]}
    server backend $HOST:$P_BACKEND
CONF

start_bg "$TMP/backend.log" nginx -p "$TMP/backend" -c "$TMP/backend/nginx.conf" -g 'daemon off;'
wait_listen "$P_BACKEND"
declare -A PID=()
start_bg "$TMP/govs.log" "$GOVS_BIN" run --socket "$TMP/govs.sock" -c "$TMP/govs.yaml"
PID[govs]=$LAST_PID
start_bg "$TMP/govsgo.log" env GOVS_PROXY_LOOPS=off "$GOVS_BIN" run --socket "$TMP/govsgo.sock" -c "$TMP/govsgo.yaml"
PID[govsgo]=$LAST_PID
start_bg "$TMP/haproxy.log" haproxy -db -f "$TMP/haproxy.cfg"
PID[haproxy]=$LAST_PID
for t in govs govsgo haproxy; do wait_listen "${PORT[$t]}"; done

# count TARGET MODE: strace -c while wrk runs; prints "calls-per-request top-calls"
count() {
	local t=$1 mode=$2 args=(-t1 -c"$CONNS" -d"${SECONDS_RUN}s") reqs
	[[ $mode == close ]] && args+=(-H 'Connection: close')
	timeout $((SECONDS_RUN + 30)) strace -f -c -o "$TMP/strace.$t.$mode" -p "${PID[$t]}" &
	local sp=$!
	sleep 1
	if [[ $mode == bulk ]]; then # 4 x 64 MiB: "requests" are MB moved
		local i urls=()
		for i in 1 2 3 4; do urls+=(-o /dev/null "http://$HOST:${PORT[$t]}/big.bin"); done
		timeout 120 curl -sS --max-time 60 "${urls[@]}" || true
		reqs=$((4 * 64 * 1048576 / 1000000))
	else
		timeout $((SECONDS_RUN + 30)) wrk "${args[@]}" "http://$HOST:${PORT[$t]}/" >"$TMP/wrk.$t.$mode" 2>&1 || true
		reqs=$(awk '/requests in/{print $1}' "$TMP/wrk.$t.$mode")
	fi
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	awk -v n="${reqs:-0}" '
		$1 ~ /^[0-9.]+$/ && NF >= 5 { name=$NF; calls=($4 ~ /^[0-9]+$/ && NF==6) ? $4 : $4; c[name]=calls }
		$NF=="total" { total=$(NF-2) }
		END {
			if (n == 0) { print "n/a"; exit }
			out=""; for (k in c) if (c[k]/n >= 0.05) out=out sprintf("%s %.2f, ", k, c[k]/n)
			printf "%.2f | %s\n", total/n, out
		}' "$TMP/strace.$t.$mode"
}

SECTION=$TMP/section.md
{
	echo "<!-- bench/syscalls.sh begin -->"
	echo "## System calls per request (strace)"
	echo
	echo "Written by \`bench/syscalls.sh\`; do not edit between the markers."
	echo
	echo "- Command: \`SECONDS_RUN=$SECONDS_RUN CONNS=$CONNS bench/syscalls.sh\`; $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- Method: \`strace -f -c\` attached to the proxy while \`wrk -t1 -c$CONNS -d${SECONDS_RUN}s\` runs against it (keep-alive, then \`Connection: close\`); calls / requests wrk completed; bulk: 4 sequential curl downloads of a 64 MiB file, calls per MB (10^6 bytes). strace slows the proxy, not what it calls per request. Backend: nginx, 1 worker; haproxy 2 threads, no splice; govs and govsgo the same binary, govsgo with \`GOVS_PROXY_LOOPS=off\`."
	echo
	echo "| target | mode | calls per request | by call (>= 0.05 per request) |"
	echo "| --- | --- | ---: | --- |"
	for mode in ka close bulk; do
		for t in govs govsgo haproxy; do
			echo "| $t | $mode | $(count "$t" "$mode") |"
		done
	done
	echo "<!-- bench/syscalls.sh end -->"
} >"$SECTION"
cat "$SECTION"
write_section syscalls.sh "$SECTION" "$RESULTS" run.sh
