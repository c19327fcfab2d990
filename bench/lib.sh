# bench/lib.sh: what the bench scripts share. Sourced, not run.

# write_section NAME SECTION RESULTS [AFTER]
# Puts the file SECTION into RESULTS between the markers
# "<!-- bench/NAME begin -->" and "<!-- bench/NAME end -->" (SECTION holds
# them), replacing only what stood between them before, so each script's
# figures sit beside the others'. A first section goes after AFTER's end
# marker when given and present, else at the end; a missing RESULTS is
# created.
write_section() {
	local name=$1 section=$2 results=$3 after=${4:-}
	local begin="<!-- bench/$name begin -->" end="<!-- bench/$name end -->"
	local tmp="$results.tmp.$$"
	if [[ -f $results ]] && grep -qxF "$begin" "$results" && grep -qxF "$end" "$results"; then
		awk -v sec="$section" -v b="$begin" -v e="$end" '
			$0 == b { while ((getline l < sec) > 0) print l; skip = 1; next }
			$0 == e { skip = 0; next }
			!skip { print }' "$results" >"$tmp"
		mv "$tmp" "$results"
	elif [[ -f $results && -n $after ]] && grep -qxF "<!-- bench/$after end -->" "$results"; then
		awk -v sec="$section" -v a="<!-- bench/$after end -->" '
			{ print }
			$0 == a { print ""; while ((getline l < sec) > 0) print l }' "$results" >"$tmp"
		mv "$tmp" "$results"
	elif [[ -f $results ]]; then
		{ echo; cat "$section"; } >>"$results"
	else
		{ echo "# govs benchmark results"; echo; cat "$section"; } >"$results"
	fi
}

# ---- namespaces, processes and cleanup (dr.sh, nat.sh) ----------------------
# A script sets BENCH (its name, for messages) and KEEP_TMP, calls
# bench_tmp PREFIX (sets TMP and the EXIT trap), then makes its namespaces
# with mk_ns and starts its long-running processes with start_bg: on exit,
# also on an error or Ctrl-C, those processes are stopped by PID (never by
# name), anything left inside a namespace made here is reported, the
# namespaces are deleted and TMP removed (kept with KEEP_TMP=1).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

MY_NS=()
PIDS=()
forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
stop_pid() { # PID: TERM, up to 10 s, then KILL; only processes started here
	local pid=$1 i
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	forget_pid "$pid"
}
bench_cleanup() {
	local rc=$? pid ns left
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	for ns in "${MY_NS[@]}"; do
		# Anything still running in a namespace made here was started here
		# (nginx workers of a killed master): report it, by PID.
		left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
		[[ -n $left ]] && log "still running in $ns after stopping ours: $left"
		ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
	done
	if [[ ${KEEP_TMP:-0} == 1 ]]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
bench_tmp() { # PREFIX: TMP=/tmp/PREFIX.XXXXXX with www/ and logs/, cleanup on exit
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$TMP"
	mkdir -p "$TMP/www" "$TMP/logs"
	trap bench_cleanup EXIT
	trap 'log "interrupted"; exit 130' INT TERM
}
mk_ns() { # NAME: a namespace with lo up, deleted on exit
	ip netns add "$1" || die "ip netns add $1"
	MY_NS+=("$1")
	ip -n "$1" link set lo up
}
LAST_PID=""
start_bg() { # LOGFILE CMD...: in the background, PID in LAST_PID and PIDS
	local logf=$1
	shift
	"$@" >"$logf" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# bench_govs: builds govs from this tree (unless GOVS_BIN names a binary)
# and sets GOVS_BIN to a private copy in TMP (bench/out/govs is shared with
# other benchmarks, which may rebuild it meanwhile); GIT_REV is the tree's
# commit (-dirty with uncommitted changes).
bench_govs() {
	GIT_REV=$(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [[ $GIT_REV != unknown ]] && [[ -n $(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git status --porcelain -uno 2>/dev/null) ]]; then
		GIT_REV="$GIT_REV-dirty"
	fi
	if [[ -n ${GOVS_BIN:-} ]]; then
		[[ -x $GOVS_BIN ]] || die "GOVS_BIN=$GOVS_BIN is not executable"
	else
		log "building govs ($GIT_REV)"
		mkdir -p "$HERE/out"
		(cd "$ROOT" && go build -ldflags "-X main.version=$GIT_REV" -o "$HERE/out/govs" ./cmd/govs) || die "govs build failed"
		GOVS_BIN=$HERE/out/govs
	fi
	cp "$GOVS_BIN" "$TMP/govs"
	GOVS_BIN=$TMP/govs
	if go version -m "$GOVS_BIN" 2>/dev/null | grep -q -- '-race=true'; then
		die "$GOVS_BIN is a -race build: not for measuring"
	fi
}

# nginx_conf DIR WORKERS LISTEN...: DIR/nginx.conf for a real server of the
# benchmarks: WORKERS worker processes, one `listen` per LISTEN, `return
# 200 "ok\n"` on / and TMP/www/big.bin (the bulk file); logs in TMP/logs.
nginx_conf() {
	local d=$1 workers=$2 l listens=""
	shift 2
	for l in "$@"; do listens+="        listen $l backlog=4096;"$'\n'; done
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<NGINX
user root;
worker_processes $workers;
worker_rlimit_nofile 16000;
pid $d/nginx.pid;
error_log $TMP/logs/$(basename "$d")-error.log warn;
events { worker_connections 8000; }
http {
    access_log off;
    default_type application/octet-stream;
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
${listens}        root $TMP/www;
        location = / { default_type text/plain; return 200 "ok\n"; }
        location = /big.bin { }
    }
}
NGINX
}

# bench_lock: holds /tmp/govs-bench.lock on fd 9 (waits up to LOCK_WAIT
# seconds) so that no two benchmarks measure at once; bench_unlock frees
# it. BENCH_LOCK_HELD=1: the caller already holds it for several runs
# (flock /tmp/govs-bench.lock env BENCH_LOCK_HELD=1 sh -c '...').
BENCH_LOCK=/tmp/govs-bench.lock
bench_lock() {
	[[ ${BENCH_LOCK_HELD:-0} == 1 ]] && return 0
	exec 9>"$BENCH_LOCK"
	if ! flock -n 9; then
		log "waiting for the bench lock $BENCH_LOCK (another benchmark runs; up to ${LOCK_WAIT}s)"
		flock -w "$LOCK_WAIT" 9 || die "bench lock not free after ${LOCK_WAIT}s"
	fi
}
bench_unlock() { [[ ${BENCH_LOCK_HELD:-0} == 1 ]] || flock -u 9; }
