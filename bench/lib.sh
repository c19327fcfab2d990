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
