#!/usr/bin/env bash
# bench/logs.sh: govs logs over a generated access log, with jq computing
# the same per-server counts as a baseline, in the same run. Writes its
# section of bench/RESULTS.md (between its markers).
#
#   bench/logs.sh                  # 10 million lines (about 2.2 GB in $TMPDIR)
#   LINES=1000000 bench/logs.sh    # quicker
#
# Needs Go and jq (apt-get install -y jq). Nothing runs in the background:
# the log is written to a temporary directory removed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/lib.sh"
LINES=${LINES:-10000000}
RESULTS=${RESULTS:-$here/RESULTS.md}
command -v jq >/dev/null || { echo "bench/logs.sh: needs jq: apt-get install -y jq" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$here/out"
(cd "$root" && go build -o "$here/out/govs" ./cmd/govs && go build -o "$here/out/loggen" ./bench/loggen)
govs=$here/out/govs
log=$tmp/access.log

echo "generating $LINES lines..." >&2
"$here/out/loggen" -n "$LINES" >"$log"
size=$(stat -c %s "$log")
cat "$log" >/dev/null # into the page cache: both tools read from memory

# measure NAME CMD...: wall, user and system seconds and peak RSS (KiB) of
# CMD, its stdout in $tmp/NAME.out.
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/$name.time" "$@" >"$tmp/$name.out"
	read -r wall user sys rss <"$tmp/$name.time"
	cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
	printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$wall" "$cpu" \
		"$(awk -v n="$LINES" -v w="$wall" 'BEGIN { printf "%.0f", n / w }')" \
		"$(awk -v n="$LINES" -v c="$cpu" 'BEGIN { printf "%.0f", n / c }')" \
		"$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')" >>"$tmp/rows"
	echo "$name: wall ${wall}s cpu ${cpu}s rss ${rss}KiB" >&2
}

: >"$tmp/rows"
measure "govs logs --report servers (GOMAXPROCS=1)" env GOMAXPROCS=1 "$govs" logs --report servers --format csv "$log"
measure "govs logs --report servers,terminations,clients,time,percentiles,gaps (GOMAXPROCS=1)" \
	env GOMAXPROCS=1 "$govs" logs --report servers,terminations,clients,time,percentiles,gaps --format json "$log"
measure "jq per-server counts" jq -n -r 'reduce inputs as $l ({}; .[$l.real_server] += 1) | to_entries[] | "\(.key),\(.value)"' "$log"

# Both must count the same.
govs_counts=$(tail -n +2 "$tmp/govs logs --report servers (GOMAXPROCS=1).out" | cut -d, -f1,2 | sort)
jq_counts=$(sort "$tmp/jq per-server counts.out")
if [[ $govs_counts != "$jq_counts" ]]; then
	echo "bench/logs.sh: govs logs and jq disagree:" >&2
	diff <(echo "$govs_counts") <(echo "$jq_counts") >&2 || true
	exit 1
fi

# Instructions per line, which no other load on the machine changes:
# callgrind over the first 100,000 lines, minus a run on an empty file.
ipl=""
if command -v valgrind >/dev/null; then
	head -n 100000 "$log" >"$tmp/100k.log"
	: >"$tmp/empty.log"
	ir() { GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$govs" logs --report "$1" --format csv "$2" 2>&1 >/dev/null |
		awk '/Collected/ { print $4 }'; }
	k=$(wc -l <"$tmp/100k.log")
	base=$(ir servers "$tmp/empty.log")
	for r in servers servers,terminations,clients,time,percentiles,gaps; do
		n=$(ir "$r" "$tmp/100k.log")
		ipl+="| \`--report $r\` | $(( (n - base) / k )) |"$'\n'
	done
fi

sec=$tmp/section.md
{
	echo "<!-- bench/logs.sh begin -->"
	echo "## govs logs: access-log analysis ($(date -u +%Y-%m-%d))"
	echo
	echo "\`bench/logs.sh\` (LINES=$LINES): a generated log of $LINES lines ($((size / 1000000)) MB, \`go run ./bench/loggen\`),"
	echo "read from the page cache; \`/usr/bin/time\` of each tool on the same file in the same run. CPU = user + system"
	echo "seconds: on a shared machine, lines per CPU-second is the figure that does not depend on what else runs."
	echo "\`govs logs\` and \`jq\` agree on the per-server counts (the script checks). Machine: $(nproc) CPUs,"
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo
	echo "| run | wall s | CPU s | lines/s (wall) | lines/s (CPU) | peak RSS MiB |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	cat "$tmp/rows"
	echo
	if [[ -n $ipl ]]; then
		echo "Instructions per line (valgrind --tool=callgrind, first 100,000 lines, start-up subtracted; the same"
		echo "whatever else runs on the machine):"
		echo
		echo "| govs logs | instructions per line |"
		echo "| --- | ---: |"
		printf '%s' "$ipl"
		echo
	fi
	echo "Go benchmarks (\`go test -run XXX -bench . -benchmem ./internal/accesslog/\`; ns/op and lines/s are wall-clock,"
	echo "so on a loaded machine they include the time other processes had the CPU: the CPU column above is the"
	echo "figure to compare; 0 allocs/op is what matters here):"
	echo
	echo '```'
	(cd "$root" && go test -run XXX -bench . -benchmem ./internal/accesslog/ 2>&1 | grep -E '^Benchmark')
	echo '```'
	echo "<!-- bench/logs.sh end -->"
} >"$sec"
write_section logs.sh "$sec" "$RESULTS"
cat "$sec"
