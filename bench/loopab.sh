#!/usr/bin/env bash
# bench/loopab.sh: a quick A/B of govs proxy variants (environment settings of
# the same binary) on loopback, alternating, with per-run figures that explain
# a rate: the proxy's CPU per request or per GB, its share of the machine, and
# its threads' run-queue wait, time slices and context switches
# (/proc/PID/task/*/schedstat and status).
#
#   bench/loopab.sh ROUNDS NAME=ENV[,ENV...] ...     ("-" for no setting)
#   e.g. bench/loopab.sh 5 loops=- go=GOVS_PROXY_LOOPS=off loops4=GOVS_PROXY_LOOPS=4
#   BIN=path among a variant's settings runs that govs binary: old=BIN=/tmp/govs.old new=-
#   A variant named haproxy runs haproxy (mode tcp, nbthread 2, no splice, as
#   bench/run.sh) instead of govs: bench/loopab.sh 5 govs=- haproxy=-
#
# MODES="ka close bulk" (default "ka bulk"), DUR=3 (seconds of each wrk run),
# PERF=1 adds, per request, the proxy's epoll waits (epoll_wait and
# epoll_pwait, from perf's syscall tracepoints) and those that returned no
# event (waits=, empty=),
# BIN=path (default: build bench/out/govs). Backend: nginx, 1 worker, port 28080;
# variants on 28081 and up; all on 127.0.0.1; one line per run, medians are
# left to the reader (grep/sort). On a shared machine other sessions' work
# swings the rates 2x between rounds; `nice` does not take it out where the
# kernel groups processes by session (autogroup, /proc/sys/kernel/
# sched_autogroup_enabled = 1: a task's nice counts only inside its group).
# Raising the group's weight does: setsid bash -c 'echo -10 >
# /proc/self/autogroup; bench/loopab.sh ...' (each variant equally).
# PIN=1 puts every proxy's threads on CPU 0 and the backend and wrk on CPU 1
# (after start, so that GOMAXPROCS and the loops are sized as unpinned): a
# proxy's threads always share one CPU, as in bench/run.sh's stacked rounds,
# but with that CPU to themselves.
set -uo pipefail
[[ $# -ge 2 && $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le 20 ]] || { echo "usage: $0 ROUNDS(1-20) NAME=ENV ..." >&2; exit 2; }
ROUNDS=$1; shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z ${BIN:-} ]]; then
  (cd "$HERE/.." && go build -o bench/out/govs ./cmd/govs) || exit 1
  BIN=$HERE/out/govs
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
D=$(mktemp -d)
mkdir -p $D/www $D/be
head -c $((64*1048576)) /dev/urandom > $D/www/big.bin
BP=28080
cat > $D/be/nginx.conf <<C
$( ((EUID == 0)) && echo "user root;")
worker_processes 1;
pid $D/be/nginx.pid;
error_log $D/be/err.log warn;
events { worker_connections 4000; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000000; keepalive_timeout 300s;
 client_body_temp_path $D/be/b; proxy_temp_path $D/be/p; fastcgi_temp_path $D/be/f; uwsgi_temp_path $D/be/u; scgi_temp_path $D/be/s;
 server { listen 127.0.0.1:$BP backlog=4096; root $D/www; location = / { default_type text/plain; return 200 "ok\n"; } location = /big.bin { } } }
C
nginx -p $D/be -c $D/be/nginx.conf -g 'daemon off;' & NGPID=$!
PIDS=($NGPID)
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done; wait; rm -rf "$D"' EXIT
declare -A PORT PID
i=1
NAMES=()
for spec in "$@"; do
  name=${spec%%=*}; envs=${spec#*=}; NAMES+=($name)
  port=$((BP+i)); PORT[$name]=$port
  cat > $D/$name.yaml <<C
grace_period: 1s
logging: {level: warn}
virtual_servers:
  - name: b$name
    address: 127.0.0.1:$port
    protocol: tcp
    scheduler: rr
    real_servers: [{address: 127.0.0.1:$BP}]
C
  if [[ $envs == - ]]; then envs=""; fi
  if [[ $name == haproxy ]]; then
    printf 'global\n    maxconn 9200\n    nbthread 2\ndefaults\n    mode tcp\n    maxconn 9200\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\nlisten bench\n    bind 127.0.0.1:%s backlog 4096\n    server backend 127.0.0.1:%s\n' $port $BP > $D/haproxy.cfg
    haproxy -db -f $D/haproxy.cfg > $D/$name.log 2>&1 & PID[$name]=$!; PIDS+=($!)
    i=$((i+1)); continue
  fi
  # BIN=path among a variant's settings runs that binary (an A/B of builds).
  vbin=$BIN; venv=()
  for e in ${envs//,/ }; do [[ $e == BIN=* ]] && vbin=${e#BIN=} || venv+=("$e"); done
  env "${venv[@]}" $vbin run --socket $D/$name.sock -c $D/$name.yaml > $D/$name.log 2>&1 & PID[$name]=$!; PIDS+=($!)
  i=$((i+1))
done
sleep 2
WRK=(wrk)
if [[ ${PIN:-0} == 1 ]]; then
  for n in "${NAMES[@]}"; do taskset -a -p -c 0 ${PID[$n]} >/dev/null; done
  for q in $NGPID $(cat /proc/$NGPID/task/*/children 2>/dev/null); do taskset -a -p -c 1 $q >/dev/null; done
  WRK=(taskset -c 1 wrk)
fi
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
# The backend's CPU (ticks): nginx's master and its workers.
becpu() { local q s=0; for q in $NGPID $(cat /proc/$NGPID/task/*/children 2>/dev/null); do s=$((s + $(awk '{print $14+$15}' /proc/$q/stat 2>/dev/null || echo 0))); done; echo $s; }
sched() { cat /proc/$1/task/*/schedstat | awk '{w+=$2; n+=$3} END{printf "%.0f %.0f", w, n}'; }
ctx() { cat /proc/$1/task/*/status | awk '/^voluntary/{v+=$2} /^nonvoluntary/{n+=$2} END{printf "%d %d", v, n}'; }
for r in $(seq 1 $ROUNDS); do
  order=("${NAMES[@]}"); 
  # rotate
  for ((k=0;k<r%${#NAMES[@]};k++)); do order=("${order[@]:1}" "${order[0]}"); done
  for n in "${order[@]}"; do
    p=${PID[$n]}
    for mode in ${MODES:-ka bulk}; do
      c0=$(cpu $p); read w0 s0 <<<"$(sched $p)"; read v0 nv0 <<<"$(ctx $p)"; t0=$(date +%s.%N); la=$(cut -d' ' -f1 /proc/loadavg)
      perfpid=""; extra=""
      if [[ ${PERF:-0} == 1 ]]; then
        perf stat -x, -o $D/perf.$n.$mode -p $p -e syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait \
          -e syscalls:sys_exit_epoll_pwait --filter 'ret == 0' -e syscalls:sys_exit_epoll_wait --filter 'ret == 0' 2>/dev/null & perfpid=$!
        sleep 0.2
      fi
      if [[ $mode == ka || $mode == close ]]; then
        hdr=(); [[ $mode == close ]] && hdr=(-H 'Connection: close')
        b0=$(becpu)
        out=$( { TIMEFORMAT='wrkcpu %U %S'; time "${WRK[@]}" -t1 -c50 -d${DUR:-3}s --latency "${hdr[@]}" http://127.0.0.1:${PORT[$n]}/; } 2>&1)
        # The whole pipeline's CPU per request (client, proxy and backend):
        # what the proxy makes the others spend too (its wakeups are their
        # system calls' work), in µs.
        allcpu=$(awk -v b=$(( $(becpu) - b0 )) '/^wrkcpu/ {print ($2+$3)*100 + b}' <<<"$out")
        rate=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
        reqs=$(awk '/requests in/{print $1}' <<<"$out")
      else
        bytes=0
        for k in 1 2 3; do b=$(curl -s --max-time 60 -o /dev/null -w '%{size_download}' http://127.0.0.1:${PORT[$n]}/big.bin); bytes=$((bytes+b)); done
        t1=$(date +%s.%N); rate=$(echo "$bytes/($t1-$t0)/1000000" | bc -l); p99=-; reqs=$bytes
      fi
      t1=$(date +%s.%N)
      c1=$(cpu $p); read w1 s1 <<<"$(sched $p)"; read v1 nv1 <<<"$(ctx $p)"
      if [[ -n $perfpid ]]; then
        kill -INT $perfpid 2>/dev/null; wait $perfpid 2>/dev/null
        extra+=$(awk -F, -v r=$reqs '$3 ~ /sys_enter/ {w+=$1} $3 ~ /sys_exit/ {e+=$1} END {printf " waits=%.3f empty=%.3f", w/r, e/r}' $D/perf.$n.$mode)
      fi
      # cpu ticks are 10ms; per request in us (ka) or ms per GB (bulk)
      if [[ $mode != bulk ]]; then cpur=$(echo "($c1-$c0)*10000/$reqs" | bc -l); extra+=$(printf ' all/unit=%.1f' $(echo "(${allcpu:-0}+$c1-$c0)*10000/$reqs" | bc -l)); else cpur=$(echo "($c1-$c0)*10*1000000000/$reqs" | bc -l); fi
      printf "%s r%d %-10s %-4s rate=%9.1f p99=%-8s cpu/unit=%6.1f cpu%%=%5.1f rqwait_ms=%7.1f slices=%6d vcs=%6d ivcs=%6d vcs/req=%.3f load=%s%s\n" \
        "$(date -u +%H:%M:%S)" $r $n $mode $rate $p99 $cpur $(echo "($c1-$c0)/($t1-$t0)" | bc -l) $(echo "($w1-$w0)/1000000" | bc -l) $((s1-s0)) $((v1-v0)) $((nv1-nv0)) $(echo "($v1-$v0)/$reqs" | bc -l) $la "$extra"
    done
  done
done
