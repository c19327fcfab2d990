#!/usr/bin/env bash
# bench/run.sh: govs against haproxy (mode tcp) and nginx (stream) on loopback,
# with the same nginx backend and the same client (wrk, curl), in one run.
#
# Figures: new connections/s (wrk, Connection: close), requests/s over
# keep-alive (wrk), p99 latency of the keep-alive run, bulk throughput (curl of
# a large file), memory per idle proxied connection (RSS delta / N).
# Targets run interleaved (order rotated each round) for ROUNDS rounds after a
# warm-up; the table shows medians. See bench/README.md.
#
# Safety: all traffic goes to 127.0.0.1; every load run is bounded in time
# (wrk -d, timeout) and count; only the processes started here are stopped,
# by PID, on exit (trap).
#
# Settings (environment):
#   QUICK=1        smoke run (<1 min): 1 round, 1 s runs, small bulk, 500 idle conns
#   ROUNDS=3       interleaved rounds (medians over them)
#   DURATION=5     seconds of each wrk run;  WARMUP=2  seconds of each warm-up run
#   CONNS=50 THREADS=1   wrk connections and threads
#   BULK_MB=64 BULK_COUNT=8   size of the bulk file (MiB), transfers per round
#   IDLE_N=9000    idle connections for the memory figure;  IDLE_ROUNDS=ROUNDS
#   BASE_PORT=27080  backend=BASE, govs=+1, haproxy=+2, nginx stream=+3
#   PROXY_WORKERS=2  haproxy nbthread / nginx stream worker_processes (govs: GOMAXPROCS default)
#   BACKEND_WORKERS=1  nginx backend worker_processes
#   HAPROXY_MAXCONN  default max(8000, IDLE_N+200)
#   HAPROXY_SPLICE=1  add "option splice-auto" to haproxy (off by default, as in haproxy)
#   GOVS_BIN=path  use this govs binary instead of building bench/out/govs
#   GOVSGO=1       also run "govsgo": the same govs binary with GOVS_PROXY_LOOPS=off
#                  (the goroutine-per-connection data path), port BASE+4, as a
#                  before/after in the same run; GOVSGO=0 leaves it out
#   GOVSGO_ENV="GOVS_PROXY_LOOPS=off"  environment of the govsgo target: another
#                  setting of the same binary as a B in the same run, e.g.
#                  GOVSGO_ENV=GOVS_LOOP_SHARE=0 (the table still calls it govsgo)
#   PERF_SCHED=1   record the scheduler's switches and wakeups system-wide
#                  (perf record -a) during the keep-alive runs of govs, govsgo
#                  and haproxy into TMP/perf/TARGET.rN.data (use with KEEP_TMP=1;
#                  bench/offcpu.py reads them)
#   GOVS_LOOPS=    GOVS_PROXY_LOOPS for the "govs" target (default: unset, one loop per GOMAXPROCS)
#   RESULTS=path   default bench/RESULTS.md;  KEEP_TMP=1 keep the temp dir (configs, logs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ORIG_ARGS="$*"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${DURATION:=1}" "${WARMUP:=1}" "${BULK_MB:=16}" "${BULK_COUNT:=2}" "${IDLE_N:=500}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
BULK_MB=${BULK_MB:-64}
BULK_COUNT=${BULK_COUNT:-8}
IDLE_N=${IDLE_N:-9000}
IDLE_ROUNDS=${IDLE_ROUNDS:-$ROUNDS}
BASE_PORT=${BASE_PORT:-27080}
PROXY_WORKERS=${PROXY_WORKERS:-2}
BACKEND_WORKERS=${BACKEND_WORKERS:-1}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
GOVSGO=${GOVSGO:-1}
GOVSGO_ENV=${GOVSGO_ENV:-GOVS_PROXY_LOOPS=off}
PERF_SCHED=${PERF_SCHED:-0}
GOVS_LOOPS=${GOVS_LOOPS:-}
KEEP_TMP=${KEEP_TMP:-0}
HOST=127.0.0.1 # never anything else: loopback only

for v in ROUNDS DURATION WARMUP CONNS THREADS BULK_MB BULK_COUNT IDLE_N IDLE_ROUNDS BASE_PORT PROXY_WORKERS BACKEND_WORKERS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "run.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && DURATION >= 1 && CONNS >= 1 && THREADS >= 1 && THREADS <= CONNS && BULK_COUNT >= 1)) ||
	{ echo "run.sh: need ROUNDS, DURATION, CONNS, BULK_COUNT >= 1 and 1 <= THREADS <= CONNS" >&2; exit 2; }
# Bounds so that a typo cannot turn this into a long or heavy run.
((DURATION <= 120 && WARMUP <= 60 && ROUNDS <= 20 && CONNS <= 2000 && BULK_MB <= 1024 && BULK_COUNT <= 100)) ||
	{ echo "run.sh: settings out of bounds (DURATION<=120 WARMUP<=60 ROUNDS<=20 CONNS<=2000 BULK_MB<=1024 BULK_COUNT<=100)" >&2; exit 2; }
((BASE_PORT >= 1024 && BASE_PORT + 4 <= 65535)) || { echo "run.sh: BASE_PORT out of range" >&2; exit 2; }

P_BACKEND=$BASE_PORT
declare -A PORT=([direct]=$BASE_PORT [govs]=$((BASE_PORT + 1)) [haproxy]=$((BASE_PORT + 2)) [nginx]=$((BASE_PORT + 3)) [govsgo]=$((BASE_PORT + 4)))
TARGETS=(direct govs haproxy nginx)
PROXIES=(govs haproxy nginx)
if [[ $GOVSGO == 1 ]]; then
	TARGETS=(direct govs govsgo haproxy nginx)
	PROXIES=(govs govsgo haproxy nginx)
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- tools -------------------------------------------------------------------
missing=()
for t in haproxy nginx wrk curl ss go awk pgrep timeout; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[[ ${PERF_SCHED:-0} == 1 ]] && ! command -v perf >/dev/null 2>&1 && missing+=(perf)
if ((${#missing[@]})); then
	echo "run.sh: missing: ${missing[*]}" >&2
	echo "  install with: apt-get install -y haproxy nginx libnginx-mod-stream wrk curl iproute2 procps" >&2
	echo "  (and Go from https://go.dev/dl/ for the govs build; perf for PERF_SCHED=1: apt-get install -y linux-perf)" >&2
	exit 1
fi
NGINX_STREAM_LOAD=""
if nginx -V 2>&1 | grep -q -- '--with-stream=dynamic'; then
	so=""
	for c in /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so \
		/usr/lib64/nginx/modules/ngx_stream_module.so; do
		[[ -f $c ]] && { so=$c; break; }
	done
	if [[ -z $so ]]; then
		echo "run.sh: nginx stream module (ngx_stream_module.so) not found" >&2
		echo "  install with: apt-get install -y libnginx-mod-stream" >&2
		exit 1
	fi
	NGINX_STREAM_LOAD="load_module $so;"
elif ! nginx -V 2>&1 | grep -q -- '--with-stream'; then
	echo "run.sh: this nginx has no stream module; install with: apt-get install -y nginx libnginx-mod-stream" >&2
	exit 1
fi

# ---- fd limit: one proxy process holds client and backend side of each idle conn
HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
ulimit -n "$HARD_NOFILE" 2>/dev/null || true
IDLE_NOTE=""
max_idle=$(((HARD_NOFILE - 1000) / 2))
if ((IDLE_N > max_idle)); then
	IDLE_NOTE="IDLE_N lowered from $IDLE_N to $max_idle: the open-file hard limit ($HARD_NOFILE) must hold both sides in one proxy process."
	log "$IDLE_NOTE"
	IDLE_N=$max_idle
fi
HAPROXY_MAXCONN=${HAPROXY_MAXCONN:-$((IDLE_N + 200 > 8000 ? IDLE_N + 200 : 8000))}
HAPROXY_SPLICE=${HAPROXY_SPLICE:-0}
HAPROXY_OPTS=""
HAPROXY_DESC="no splice"
HAPROXY_GLOBAL=""
if [[ $HAPROXY_SPLICE == 1 ]]; then
	# splice pipes take 2 fds each: fit them in what maxconn leaves of the limit
	maxpipes=$(((HARD_NOFILE - 2 * HAPROXY_MAXCONN - 200) / 2))
	((maxpipes >= 16)) || { echo "run.sh: HAPROXY_SPLICE=1 leaves no fds for pipes; lower IDLE_N or HAPROXY_MAXCONN" >&2; exit 2; }
	HAPROXY_GLOBAL="maxpipes $maxpipes"
	HAPROXY_OPTS="option splice-auto"
	HAPROXY_DESC="option splice-auto, maxpipes $maxpipes"
fi

# ---- temp dir, process bookkeeping, cleanup ------------------------------------
TMP=$(mktemp -d /tmp/govs-bench.XXXXXX)
chmod 755 "$TMP"
RES=$TMP/res
mkdir -p "$RES" "$TMP/www" "$TMP/logs" "$TMP/wrk"
PIDS=()

stop_pid() { # PID: TERM, wait up to 5 s, then KILL; only our own children
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; forget_pid "$pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget_pid "$pid"
}
forget_pid() { # drop a reaped PID so that cleanup never signals a reused one
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && stop_pid "$pid"
	done
	if [[ $KEEP_TMP == 1 ]]; then
		log "temp dir kept: $TMP"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

LAST_PID=""
start_bg() { # LOGFILE CMD...: start in background, record PID in LAST_PID and PIDS
	local logf=$1
	shift
	"$@" >"$logf" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

listening() { ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q "$HOST:$1"; }

wait_listen() { # PORT PID LOG: wait up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || { log "process $2 exited; log:"; tail -n 20 "$3" >&2; return 1; }
		sleep 0.1
	done
	log "port $1 not listening after 10 s; log:"
	tail -n 20 "$3" >&2
	return 1
}

backend_established() { ss -Htn state established "( sport = :$P_BACKEND )" 2>/dev/null | wc -l; }

# family PID: PID and its children (nginx's workers), what a proxy's figures sum over.
family() { echo "$1" $(pgrep -P "$1" 2>/dev/null || true); }

# CPU time (utime + stime, clock ticks) of PID plus its children (nginx
# workers): what a proxy spent, whatever else ran on the machine.
cpu_ticks() {
	local total=0 p v
	[[ -n ${1:-} ]] || { echo 0; return; }
	for p in $(family "$1"); do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# Scheduler figures of PID and its children: "run_ns wait_ns timeslices"
# summed over their threads (/proc/PID/task/TID/schedstat).
schedsum() {
	[[ -n ${1:-} ]] || { echo "0 0 0"; return; }
	local p
	for p in $(family "$1"); do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
		awk '{r += $1; w += $2; n += $3} END {printf "%.0f %.0f %.0f", r, w, n}'
}

# RSS in KiB of PID plus its children (nginx workers)
rss_kib() {
	local total=0 p v
	for p in $(family "$1"); do
		v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

for p in "${PORT[@]}"; do
	listening "$p" && die "port $p is already in use on $HOST; set BASE_PORT to another range"
done

# ---- build -------------------------------------------------------------------
mkdir -p "$HERE/out"
GIT_REV=$(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT_REV != unknown ]] && [[ -n $(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git status --porcelain -uno 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV-dirty"
fi
if [[ -n ${GOVS_BIN:-} ]]; then
	[[ -x $GOVS_BIN ]] || die "GOVS_BIN=$GOVS_BIN is not executable"
else
	log "building govs ($GIT_REV)"
	(cd "$ROOT" && go build -ldflags "-X main.version=$GIT_REV" -o bench/out/govs ./cmd/govs) || die "govs build failed"
	GOVS_BIN=$HERE/out/govs
fi
(cd "$ROOT" && go build -o bench/out/idleconns ./bench/idleconns) || die "idleconns build failed"
IDLECONNS=$HERE/out/idleconns

# ---- configs -----------------------------------------------------------------
log "generating ${BULK_MB} MiB bulk file"
head -c $((BULK_MB * 1048576)) /dev/urandom >"$TMP/www/big.bin"
BULK_BYTES=$((BULK_MB * 1048576))
NGINX_USER=""
((EUID == 0)) && NGINX_USER="user root;"

mkdir -p "$TMP/backend" "$TMP/nginxproxy"
cat >"$TMP/backend/nginx.conf" <<EOF
$NGINX_USER
worker_processes $BACKEND_WORKERS;
worker_rlimit_nofile $HARD_NOFILE;
pid $TMP/backend/nginx.pid;
error_log $TMP/logs/backend-error.log warn;
events { worker_connections $((HARD_NOFILE - 1000)); }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path $TMP/backend/body;
    proxy_temp_path $TMP/backend/proxy;
    fastcgi_temp_path $TMP/backend/fastcgi;
    uwsgi_temp_path $TMP/backend/uwsgi;
    scgi_temp_path $TMP/backend/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_header_timeout 300s;
    server {
        listen $HOST:$P_BACKEND backlog=4096;
        root $TMP/www;
        location = / { default_type text/plain; return 200 "ok\n"; }
        location = /big.bin { }
    }
}
EOF

cat >"$TMP/nginxproxy/nginx.conf" <<EOF
$NGINX_STREAM_LOAD
$NGINX_USER
worker_processes $PROXY_WORKERS;
worker_rlimit_nofile $HARD_NOFILE;
pid $TMP/nginxproxy/nginx.pid;
error_log $TMP/logs/nginx-error.log warn;
events { worker_connections $((HARD_NOFILE - 1000)); }
stream {
    server {
        listen $HOST:${PORT[nginx]} backlog=4096;
        proxy_pass $HOST:$P_BACKEND;
        proxy_connect_timeout 5s;
        proxy_timeout 60s;
    }
}
EOF

cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn $HAPROXY_MAXCONN
    nbthread $PROXY_WORKERS
    $HAPROXY_GLOBAL
defaults
    mode tcp
    maxconn $HAPROXY_MAXCONN
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    $HAPROXY_OPTS
listen bench
    bind $HOST:${PORT[haproxy]} backlog 4096
    server backend $HOST:$P_BACKEND
EOF

cat >"$TMP/govs.yaml" <<EOF
grace_period: 1s
logging:
  level: warn
virtual_servers:
  - name: bench
    address: $HOST:${PORT[govs]}
    protocol: tcp
    scheduler: rr
    real_servers:
      - address: $HOST:$P_BACKEND
EOF

nginx -t -q -p "$TMP/backend" -c "$TMP/backend/nginx.conf" -e "$TMP/logs/backend-start.log" ||
	die "backend nginx config rejected (see above)"
nginx -t -q -p "$TMP/nginxproxy" -c "$TMP/nginxproxy/nginx.conf" -e "$TMP/logs/nginx-start.log" ||
	die "nginx stream config rejected (see above)"
haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config rejected"
sed -e "s/name: bench/name: benchgo/" -e "s/:${PORT[govs]}\$/:${PORT[govsgo]}/" "$TMP/govs.yaml" >"$TMP/govsgo.yaml"
"$GOVS_BIN" check -c "$TMP/govs.yaml" >/dev/null || die "govs config rejected"
"$GOVS_BIN" check -c "$TMP/govsgo.yaml" >/dev/null || die "govs config rejected"

# ---- proxies -----------------------------------------------------------------
declare -A PPID_OF=()
start_target() { # NAME
	local name=$1
	case $name in
	# Each govs on a control socket of its own: the default one may be
	# another govs's on this machine.
	govs) start_bg "$TMP/logs/govs.log" env ${GOVS_LOOPS:+GOVS_PROXY_LOOPS=$GOVS_LOOPS} "$GOVS_BIN" run --socket "$TMP/govs.sock" -c "$TMP/govs.yaml" ;;
	govsgo) start_bg "$TMP/logs/govsgo.log" env $GOVSGO_ENV "$GOVS_BIN" run --socket "$TMP/govsgo.sock" -c "$TMP/govsgo.yaml" ;;
	haproxy) start_bg "$TMP/logs/haproxy.log" haproxy -db -f "$TMP/haproxy.cfg" ;;
	nginx) start_bg "$TMP/logs/nginx.log" nginx -p "$TMP/nginxproxy" -c "$TMP/nginxproxy/nginx.conf" \
		-e "$TMP/logs/nginx-start.log" -g 'daemon off;' ;;
	*) die "unknown target $name" ;;
	esac
	PPID_OF[$name]=$LAST_PID
	wait_listen "${PORT[$name]}" "$LAST_PID" "$TMP/logs/$name.log" || return 1
	if [[ $name == nginx ]]; then # wait for the workers
		local i
		for ((i = 0; i < 50; i++)); do
			(($(pgrep -P "$LAST_PID" | wc -l) >= PROXY_WORKERS)) && break
			sleep 0.1
		done
	fi
}
stop_target() { [[ -n ${PPID_OF[$1]:-} ]] && stop_pid "${PPID_OF[$1]}"; PPID_OF[$1]=""; }

ANOM=$TMP/anomalies.txt
: >"$ANOM"
anomaly() { echo "$*" >>"$ANOM"; log "ANOMALY: $*"; }

# ---- measurements ------------------------------------------------------------
# wrk: PORT MODE(close|ka) SECONDS TAG -> appends figures to $RES unless TAG=warmup
to_ms() { # wrk duration (1.2us 3.4ms 1.1s 2.0m) -> ms
	awk -v v="$1" 'BEGIN{n=v; sub(/[a-z]+$/,"",n); u=v; sub(/^[0-9.]+/,"",u);
		f=(u=="us")?0.001:(u=="ms")?1:(u=="s")?1000:(u=="m")?60000:(u=="h")?3600000:-1;
		if (f<0 || n=="") print "nan"; else printf "%.3f\n", n*f}'
}
run_wrk() {
	local target=$1 mode=$2 secs=$3 tag=$4 out args rps p99 errs
	out=$TMP/wrk/$target.$mode.$tag.txt
	args=(-t"$THREADS" -c"$CONNS" -d"${secs}s" --latency)
	[[ $mode == close ]] && args+=(-H 'Connection: close')
	local c0 c1 reqs s0 s1 perfpid=""
	if [[ $PERF_SCHED == 1 && $mode == ka && $tag != warmup && $target =~ ^(govs|govsgo|haproxy)$ ]]; then
		mkdir -p "$TMP/perf"
		perf record -q -a -e sched:sched_switch -e sched:sched_wakeup -o "$TMP/perf/$target.$tag.data" \
			-- sleep $((secs + 1)) >/dev/null 2>&1 &
		perfpid=$!
		sleep 0.3
	fi
	c0=$(cpu_ticks "${PPID_OF[$target]:-}")
	s0=$(schedsum "${PPID_OF[$target]:-}")
	timeout $((secs + 30)) wrk "${args[@]}" "http://$HOST:${PORT[$target]}/" >"$out" 2>&1 || echo "wrk exit status $?" >>"$out"
	c1=$(cpu_ticks "${PPID_OF[$target]:-}")
	s1=$(schedsum "${PPID_OF[$target]:-}")
	[[ -n $perfpid ]] && { wait "$perfpid" || true; }
	reqs=$(awk '/requests in/{print $1}' "$out")
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	p99=$(awk '$1=="99%"{print $2}' "$out")
	errs=$(grep -E 'Socket errors|Non-2xx|exit status|unable to connect' "$out" || true)
	if [[ -n $errs ]]; then
		anomaly "$target $mode ($tag): $(echo "$errs" | tr '\n' ';' | sed 's/;$//') [of $(awk '/requests in/{print $1}' "$out") requests]"
	fi
	[[ $tag == warmup ]] && return 0
	# The proxy's threads over the run: CPU time, run-queue wait, time slices.
	awk -v t="$target" -v m="$mode" -v g="$tag" -v p="$p99" -v a="$s0" -v b="$s1" 'BEGIN {
		split(a, x, " "); split(b, y, " "); n = y[3] - x[3]
		printf "%s %s %s p99=%s run_ms=%.0f wait_ms=%.0f slices=%d wait_us_per_slice=%.1f\n", t, m, g, p,
			(y[1] - x[1]) / 1e6, (y[2] - x[2]) / 1e6, n, (n > 0 ? (y[2] - x[2]) / 1e3 / n : 0) }' >>"$RES/sched.log"
	if [[ -z $rps ]]; then
		anomaly "$target $mode ($tag): wrk printed no Requests/sec: $(tail -n 3 "$out" | tr '\n' ' ')"
		return 0
	fi
	# The proxy's CPU per request (µs), not for direct (no proxy).
	if [[ $target != direct && -n $reqs && $reqs -gt 0 ]]; then
		awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f\n", t / hz * 1e6 / n}' >>"$RES/cpu$mode.$target"
	fi
	if [[ $mode == close ]]; then
		echo "$rps" >>"$RES/conn.$target"
	else
		echo "$rps" >>"$RES/ka.$target"
		if [[ -n $p99 ]]; then to_ms "$p99" >>"$RES/p99.$target"; fi
	fi
	return 0
}

run_bulk() { # TARGET COUNT TAG
	local target=$1 count=$2 tag=$3 out args=() i mbs bad
	out=$TMP/wrk/$target.bulk.$tag.txt
	for ((i = 0; i < count; i++)); do args+=(-o /dev/null "http://$HOST:${PORT[$target]}/big.bin"); done
	local c0 c1
	c0=$(cpu_ticks "${PPID_OF[$target]:-}")
	timeout $((count * 60 + 10)) curl -sS --max-time 60 -w '%{http_code} %{size_download} %{time_total}\n' \
		"${args[@]}" >"$out" 2>&1 || echo "curl exit status $?" >>"$out"
	c1=$(cpu_ticks "${PPID_OF[$target]:-}")
	bad=$(awk -v want="$BULK_BYTES" 'NF!=3 || $1!=200 || $2!=want' "$out")
	[[ -n $bad ]] && anomaly "$target bulk ($tag): $(echo "$bad" | head -n 3 | tr '\n' ';')"
	[[ $tag == warmup ]] && return 0
	mbs=$(awk -v want="$BULK_BYTES" 'NF==3 && $1==200 && $2==want {b+=$2; t+=$3} END{if (t>0) printf "%.1f\n", b/t/1e6}' "$out")
	[[ -n $mbs ]] && echo "$mbs" >>"$RES/bulk.$target"
	if [[ $target != direct ]]; then # the proxy's CPU ms per GB moved
		awk -v want="$BULK_BYTES" -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'NF==3 && $1==200 && $2==want {b+=$2}
			END{if (b>0) printf "%.1f\n", t / hz * 1e3 / (b / 1e9)}' "$out" >>"$RES/cpubulk.$target"
	fi
	return 0
}

measure_idle() { # PROXY ROUND: fresh proxy, N idle conns, RSS delta
	local name=$1 round=$2 pid before after base est idlepid i out opened
	start_target "$name" || { anomaly "$name: failed to start for the memory run"; stop_target "$name"; return 0; }
	pid=${PPID_OF[$name]}
	sleep 0.5
	before=$(rss_kib "$pid")
	base=$(backend_established)
	out=$TMP/logs/idle.$name.$round.txt
	start_bg "$out" "$IDLECONNS" -addr "$HOST:${PORT[$name]}" -n "$IDLE_N" -hold 90s
	idlepid=$LAST_PID
	for ((i = 0; i < 600; i++)); do # up to 60 s to dial
		grep -q '^ready' "$out" 2>/dev/null && break
		kill -0 "$idlepid" 2>/dev/null || break
		sleep 0.1
	done
	opened=$(awk '/^ready/{sub("opened=","",$2); print $2}' "$out")
	if [[ -z $opened ]]; then
		anomaly "$name idle: client did not report ready: $(tail -n 3 "$out" | tr '\n' ' ')"
		stop_pid "$idlepid"; stop_target "$name"; return 0
	fi
	grep -q 'failed=0' "$out" || anomaly "$name idle round $round: $(grep '^ready' "$out") $(grep 'first dial error' "$out" || true)"
	for ((i = 0; i < 300; i++)); do # up to 30 s for the proxy to reach the backend
		est=$(($(backend_established) - base))
		((est >= opened)) && break
		sleep 0.1
	done
	sleep 1
	after=$(rss_kib "$pid")
	est=$(($(backend_established) - base))
	((est < opened)) && anomaly "$name idle round $round: only $est of $opened client connections reached the backend"
	stop_pid "$idlepid"
	stop_target "$name"
	if ((est > 0)); then
		awk -v a="$after" -v b="$before" -v n="$est" 'BEGIN{printf "%.2f\n", (a-b)/n}' >>"$RES/mem.$name"
		echo "$name round $round: RSS ${before} KiB -> ${after} KiB with $est idle conns" >>"$RES/mem.detail"
	fi
	# let the backend side drain before the next proxy is measured
	for ((i = 0; i < 100; i++)); do (($(backend_established) <= base)) && break; sleep 0.1; done
	return 0
}

rotated() { # ROUND ARRAY...: the array rotated by ROUND
	local r=$1 n i
	shift
	local a=("$@")
	n=${#a[@]}
	for ((i = 0; i < n; i++)); do echo "${a[$(((i + r) % n))]}"; done
}

# ---- run ---------------------------------------------------------------------
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS

start_bg "$TMP/logs/backend.log" nginx -p "$TMP/backend" -c "$TMP/backend/nginx.conf" -e "$TMP/logs/backend-start.log" -g 'daemon off;'
BACKEND_PID=$LAST_PID
wait_listen "$P_BACKEND" "$BACKEND_PID" "$TMP/logs/backend.log" || die "backend nginx did not start"

log "memory per idle connection: N=$IDLE_N, $IDLE_ROUNDS round(s), fresh proxy each time"
for ((r = 0; r < IDLE_ROUNDS; r++)); do
	for t in $(rotated "$r" "${PROXIES[@]}"); do
		log "  idle round $((r + 1)): $t"
		measure_idle "$t" "$((r + 1))"
	done
done

declare -A OK=([direct]=1)
for t in "${PROXIES[@]}"; do
	if start_target "$t"; then OK[$t]=1; else OK[$t]=0; anomaly "$t: failed to start"; fi
done
# sanity: the small and the big response through each target
for t in "${TARGETS[@]}"; do
	[[ ${OK[$t]} == 1 ]] || continue
	body=$(curl -sS --max-time 5 "http://$HOST:${PORT[$t]}/" 2>&1 || true)
	size=$(curl -sS --max-time 30 -o /dev/null -w '%{size_download}' "http://$HOST:${PORT[$t]}/big.bin" 2>&1 || true)
	if [[ $body != ok || $size != "$BULK_BYTES" ]]; then
		anomaly "$t: sanity check failed (body='$body', big.bin size='$size' want $BULK_BYTES); target skipped"
		OK[$t]=0
	fi
done
ACTIVE=()
for t in "${TARGETS[@]}"; do [[ ${OK[$t]} == 1 ]] && ACTIVE+=("$t"); done

log "warm-up: ${WARMUP}s per target and mode"
for t in "${ACTIVE[@]}"; do
	if ((WARMUP > 0)); then
		run_wrk "$t" ka "$WARMUP" warmup
		run_wrk "$t" close "$WARMUP" warmup
	fi
	run_bulk "$t" 1 warmup
done

for ((r = 0; r < ROUNDS; r++)); do
	order=($(rotated "$r" "${ACTIVE[@]}"))
	log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
	for t in "${order[@]}"; do run_wrk "$t" close "$DURATION" "r$((r + 1))"; sleep 0.5; done
	for t in "${order[@]}"; do run_wrk "$t" ka "$DURATION" "r$((r + 1))"; sleep 0.5; done
	for t in "${order[@]}"; do run_bulk "$t" "$BULK_COUNT" "r$((r + 1))"; done
done

for t in "${PROXIES[@]}"; do
	[[ -n ${PPID_OF[$t]:-} ]] && ! kill -0 "${PPID_OF[$t]}" 2>/dev/null && anomaly "$t exited during the run (see its log)"
done
for g in govs govsgo; do
	[[ -f $TMP/logs/$g.log ]] || continue
	GOVS_LOG_ISSUES=$(grep -cE 'level=(WARN|ERROR)' "$TMP/logs/$g.log" 2>/dev/null || true)
	if [[ ${GOVS_LOG_ISSUES:-0} -gt 0 ]]; then
		anomaly "$g log (throughput phase): $GOVS_LOG_ISSUES WARN/ERROR lines, first: $(grep -m1 -E 'level=(WARN|ERROR)' "$TMP/logs/$g.log")"
	fi
done
for f in backend-error nginx-error; do
	n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$TMP/logs/$f.log" 2>/dev/null || true)
	[[ ${n:-0} -gt 0 ]] && anomaly "$f.log: $n error lines, first: $(grep -m1 -E '\[(error|crit|alert|emerg)\]' "$TMP/logs/$f.log")"
done
for t in "${PROXIES[@]}"; do stop_target "$t"; done
stop_pid "$BACKEND_PID"
ELAPSED=$((SECONDS - T0))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ------------------------------------------------------------------
median() { # FILE -> median or n/a
	[[ -s $1 ]] || { echo n/a; return; }
	sort -g "$1" | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
best() { # FILE up|down -> best value over the rounds (least disturbed by other load)
	[[ -s $1 ]] || { echo n/a; return; }
	if [[ $2 == up ]]; then sort -g "$1" | tail -n 1; else sort -g "$1" | head -n 1; fi
}
fmt() { # VALUE DECIMALS
	[[ $1 == n/a ]] && { echo n/a; return; }
	awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f\n", d, v}'
}
ratio() { # A B
	[[ $1 == n/a || $2 == n/a ]] && { echo n/a; return; }
	awk -v a="$1" -v b="$2" 'BEGIN{if (b==0) print "n/a"; else printf "%.2f\n", a/b}'
}

FIGS=(conn ka p99 bulk mem cpuclose cpuka cpubulk)
declare -A FIG_NAME=(
	[conn]="new connections/s (wrk, Connection: close) ↑"
	[ka]="requests/s, keep-alive ↑"
	[p99]="p99 latency, keep-alive run (ms) ↓"
	[bulk]="bulk throughput (MB/s, curl ${BULK_MB} MiB) ↑"
	[mem]="memory per idle connection (KiB) ↓"
	[cpuclose]="proxy CPU per new connection (µs) ↓"
	[cpuka]="proxy CPU per keep-alive request (µs) ↓"
	[cpubulk]="proxy CPU per GB of bulk (ms) ↓"
)
declare -A FIG_DEC=([conn]=0 [ka]=0 [p99]=2 [bulk]=0 [mem]=2 [cpuclose]=1 [cpuka]=1 [cpubulk]=0)
declare -A FIG_DIR=([conn]=up [ka]=up [p99]=down [bulk]=up [mem]=down [cpuclose]=down [cpuka]=down [cpubulk]=down)
table() { # median|best
	local f t row
	local head="| figure" rule="| ---"
	for t in "${TARGETS[@]}"; do head+=" | $t"; rule+=" | ---:"; done
	head+=" | govs/haproxy | govs/direct | nginx/haproxy |"
	rule+=" | ---: | ---: | ---: |"
	[[ $GOVSGO == 1 ]] && { head+=" govs/govsgo |"; rule+=" ---: |"; }
	echo "$head"
	echo "$rule"
	for f in "${FIGS[@]}"; do
		local -A M=()
		for t in "${TARGETS[@]}"; do
			if [[ $1 == median ]]; then M[$t]=$(median "$RES/$f.$t"); else M[$t]=$(best "$RES/$f.$t" "${FIG_DIR[$f]}"); fi
		done
		row="| ${FIG_NAME[$f]}"
		for t in "${TARGETS[@]}"; do row+=" | $(fmt "${M[$t]}" "${FIG_DEC[$f]}")"; done
		row+=" | $(ratio "${M[govs]}" "${M[haproxy]}") | $(ratio "${M[govs]}" "${M[direct]}") | $(ratio "${M[nginx]}" "${M[haproxy]}") |"
		[[ $GOVSGO == 1 ]] && row+=" $(ratio "${M[govs]}" "${M[govsgo]}") |"
		echo "$row"
		unset M
	done
}

# paired A B FIG: the ratio A/B of each round (the two ran a few seconds
# apart, under about the same other load), as "median (better in W of N)":
# on a shared machine the rounds' conditions swing the figures more than the
# proxies differ, and a ratio of medians can pair a calm round of one with a
# busy round of the other.
paired() {
	local a=$RES/$3.$1 b=$RES/$3.$2
	[[ -s $a && -s $b ]] || { echo n/a; return; }
	# A round without a figure (its anomaly is listed) would shift the pairs.
	[[ $(wc -l <"$a") == "$(wc -l <"$b")" ]] || { echo "n/a (a round is missing)"; return; }
	local ratios=$TMP/paired.ratios w n
	paste "$a" "$b" | awk '$1 != "" && $2 != "" && $2 != 0 { print $1 / $2 }' >"$ratios"
	n=$(wc -l <"$ratios")
	((n > 0)) || { echo n/a; return; }
	# Better: a higher ratio for ↑ figures, a lower one for ↓.
	if [[ ${FIG_DIR[$3]} == up ]]; then w=$(awk '$1 > 1' "$ratios" | wc -l); else w=$(awk '$1 < 1' "$ratios" | wc -l); fi
	echo "$(fmt "$(median "$ratios")" 2) (better in $w of $n)"
}
pairedtable() {
	local f row
	local head="| figure | govs/haproxy" rule="| --- | ---:"
	[[ $GOVSGO == 1 ]] && { head+=" | govs/govsgo | govsgo/haproxy"; rule+=" | ---: | ---:"; }
	echo "$head |"
	echo "$rule |"
	for f in "${FIGS[@]}"; do
		[[ $f == mem ]] && continue # measured in its own rounds, fresh proxies
		row="| ${FIG_NAME[$f]} | $(paired govs haproxy "$f")"
		[[ $GOVSGO == 1 ]] && row+=" | $(paired govs govsgo "$f") | $(paired govsgo haproxy "$f")"
		echo "$row |"
	done
}

ver_haproxy=$(haproxy -v 2>/dev/null | awk 'NR==1{print $3}')
ver_nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')
ver_wrk=$( (wrk -v 2>&1 || true) | awk 'NR==1{print $2}')
ver_curl=$(curl --version | awk 'NR==1{print $2}')
ver_govs=$("$GOVS_BIN" version 2>/dev/null | awk '{print $2}')
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
env_cmd="QUICK=$QUICK ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS BULK_MB=$BULK_MB BULK_COUNT=$BULK_COUNT IDLE_N=$IDLE_N IDLE_ROUNDS=$IDLE_ROUNDS HAPROXY_SPLICE=$HAPROXY_SPLICE PROXY_WORKERS=$PROXY_WORKERS BACKEND_WORKERS=$BACKEND_WORKERS GOVSGO=$GOVSGO GOVS_LOOPS=$GOVS_LOOPS"
[[ $GOVSGO == 1 && $GOVSGO_ENV != GOVS_PROXY_LOOPS=off ]] && env_cmd+=" GOVSGO_ENV=\"$GOVSGO_ENV\""

SECTION=$TMP/section.md
{
	echo "<!-- bench/run.sh begin -->"
	echo "## Proxy (loopback)"
	echo
	echo "Written by \`bench/run.sh\`; do not edit between the markers (the next run replaces it)."
	echo
	echo "- Command: \`$env_cmd bench/run.sh${ORIG_ARGS:+ $ORIG_ARGS}\` (run time ${ELAPSED}s)"
	echo "- Date: $START_DATE"
	echo "- Machine: nproc $(nproc), CPU \"$cpu_model\", kernel $(uname -r); load average at start $LOAD_START, at end $LOAD_END (shared machine: figures are noisy)"
	echo "- Versions: govs $ver_govs, haproxy $ver_haproxy, nginx $ver_nginx, wrk $ver_wrk, curl $ver_curl"
	echo "- Setup: all on $HOST. Backend: nginx ($BACKEND_WORKERS worker) returning \`ok\\n\` on \`/\` and a ${BULK_MB} MiB file. govs: proxy forwarding, rr, default connect_timeout/idle_timeout, GOMAXPROCS default ($(nproc)), event loops (GOVS_PROXY_LOOPS=${GOVS_LOOPS:-unset: one per GOMAXPROCS}).$([[ $GOVSGO == 1 ]] && if [[ $GOVSGO_ENV == GOVS_PROXY_LOOPS=off ]]; then echo " govsgo: the same binary with GOVS_PROXY_LOOPS=off (a goroutine per connection direction, the data path before the event loops)."; else echo " govsgo: the same binary with $GOVSGO_ENV."; fi) haproxy: \`mode tcp\`, nbthread $PROXY_WORKERS, maxconn $HAPROXY_MAXCONN, timeout connect 5s, client/server 60s, $HAPROXY_DESC. nginx: \`stream\` proxy_pass, $PROXY_WORKERS workers, proxy_connect_timeout 5s, proxy_timeout 60s. No CPU pinning."
	echo "- Method: wrk -t$THREADS -c$CONNS -d${DURATION}s (--latency; new connections with \`-H 'Connection: close'\`); bulk: curl, $BULK_COUNT sequential transfers per round, total bytes / total time. Warm-up ${WARMUP}s per target and mode, then $ROUNDS interleaved rounds, target order rotated each round; the table shows medians. CPU figures: the proxy process's utime+stime (nginx: master + workers, /proc/PID/stat) over each wrk or curl run, per request completed or per GB moved: what a proxy spends, much less sensitive than rates to other work on a shared machine."
	echo "- Memory: $IDLE_N idle connections held through a freshly started proxy (bench/idleconns), (RSS after - RSS before) / connections that reached the backend, RSS from /proc/PID/status VmRSS (nginx: master + workers); median of $IDLE_ROUNDS round(s). N is bounded by the open-file hard limit ($HARD_NOFILE, not raisable here): one proxy process holds the client and the backend side of each connection. Memory preallocated at start (nginx connection array, haproxy fd table) is in \"before\", so not counted.${IDLE_NOTE:+ $IDLE_NOTE}"
	echo
	table median
	echo
	echo "Ratios are of medians: for ↑ figures above 1 is better for the first, for ↓ figures below 1 is."
	echo
	echo "Best round of each target (highest ↑, lowest ↓): the least disturbed by other load on a shared machine."
	echo
	table best
	echo
	echo "Paired by round: the median of each round's ratio, and in how many rounds the first was the better (targets of a round ran seconds apart, in rotated order)."
	echo
	pairedtable
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
	[[ -s $RES/mem.detail ]] && { echo; sed 's/^/- /' "$RES/mem.detail"; }
	if [[ -s $RES/sched.log ]]; then
		echo
		echo "The proxies' threads in each keep-alive run (/proc/PID/task/*/schedstat: CPU time, run-queue wait, time slices):"
		echo
		grep -E '^(govs|govsgo|haproxy) ka ' "$RES/sched.log" | sed 's/^/- /'
	fi
	echo
	echo "</details>"
	echo
	if [[ -s $ANOM ]]; then
		echo "Anomalies (errors reported by wrk/curl, failed checks, proxy log errors):"
		echo
		sed 's/^/- /' "$ANOM"
	else
		echo "Anomalies: none (no wrk socket errors or non-2xx responses, no curl errors, no proxy log errors)."
	fi
	echo "<!-- bench/run.sh end -->"
} >"$SECTION"

cat "$SECTION"

write_section run.sh "$SECTION" "$RESULTS"
log "written: $RESULTS"
