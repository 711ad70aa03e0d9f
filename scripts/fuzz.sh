#!/bin/bash
# Build and run the libFuzzer targets of tests/fuzz/ (see tests/fuzz/*.c).
#
#   scripts/fuzz.sh [TARGET...]          fuzz each target for FUZZ_SECONDS
#                                        (default 60); new inputs are kept in
#                                        build/fuzz/corpus/TARGET for next time
#   scripts/fuzz.sh --check [TARGET...]  replay the seeds and regressions, then
#                                        FUZZ_RUNS (default 2000) new inputs
#                                        from a fixed FUZZ_SEED (make check)
#
# TARGET is fuzz_safetensors, fuzz_adapter_table, fuzz_checkpoint or
# fuzz_source_wire (default: all).  Seeds live in tests/fuzz/corpus/TARGET and are made by
# tests/fuzz/make_seeds.py when missing; inputs that once crashed live in
# tests/fuzz/regressions/TARGET.  A crash leaves its input in
# build/fuzz/artifacts/TARGET/ and the full log in build/fuzz/logs/TARGET.log;
# the script then exits 1.  Prints, per target: executions, seconds, coverage.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RUNS=${FUZZ_RUNS:-2000}
FUZZ_SEED=${FUZZ_SEED:-1}
MAKE=${MAKE:-make}
OUT=build/fuzz
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mode=fuzz
if [ "${1:-}" = --check ]; then
	mode=check
	shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in tests/fuzz/fuzz_*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi

# Largest input and the dictionaries (tests/fuzz/dict/) of each target.
max_len_of() {
	case $1 in
	fuzz_checkpoint|fuzz_source_wire) echo 16384 ;;
	*) echo 8192 ;;
	esac
}
dicts_of() {
	case $1 in
	fuzz_safetensors) echo json safetensors ;;
	fuzz_adapter_table) echo json adapter ;;
	fuzz_source_wire) echo json wire ;;
	*) echo json safetensors adapter checkpoint ;;
	esac
}

for t in "${targets[@]}"; do
	if [ ! -f "tests/fuzz/$t.c" ]; then
		echo "fuzz: no target $t (tests/fuzz/$t.c)" >&2
		exit 2
	fi
	if [ -z "$(ls -A "tests/fuzz/corpus/$t" 2>/dev/null)" ]; then
		echo "fuzz: making the seed corpora (tests/fuzz/make_seeds.py)"
		/usr/bin/python3 tests/fuzz/make_seeds.py
	fi
done
# One build at a time: several targets may be fuzzed side by side.
mkdir -p "$OUT/logs"
flock "$OUT/.build-lock" $MAKE -s fuzz-build

# The figures of one run, from libFuzzer's log.
summarize() {
	local t=$1 log=$2 secs=$3 execs cov
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	[ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1 || true)
	printf '%-20s %10s execs %7.1f s %9s execs/s  %s\n' "$t" "${execs:-?}" "$secs" \
		"$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')" \
		"${cov:-}"
}

failed=()
for t in "${targets[@]}"; do
	seeds=("tests/fuzz/corpus/$t")
	[ -d "tests/fuzz/regressions/$t" ] && seeds+=("tests/fuzz/regressions/$t")
	dict=$OUT/$t.dict
	for d in $(dicts_of "$t"); do cat "tests/fuzz/dict/$d.dict"; done > "$dict"
	mkdir -p "$OUT/artifacts/$t"
	args=(-max_len="$(max_len_of "$t")" -dict="$dict" -timeout=10 -rss_limit_mb=2048
	      -artifact_prefix="$OUT/artifacts/$t/" -print_final_stats=1)
	if [ $mode = check ]; then
		# A fresh output folder, so the replay is the committed inputs only
		# and nothing is written into the source tree.
		work=$(mktemp -d "$OUT/check-$t-XXXXXX")
		n=$(find "${seeds[@]}" -type f ! -name '.*' | wc -l)
		args+=(-runs=$((n + FUZZ_RUNS)) -seed="$FUZZ_SEED")
	else
		work=$OUT/corpus/$t
		mkdir -p "$work"
		args+=(-max_total_time="$FUZZ_SECONDS")
	fi
	log=$OUT/logs/$t.log
	# The harness's fixture files go here, so a crashed run leaves none behind.
	tmp=$(mktemp -d "$OUT/tmp-$t-XXXXXX")
	start=$(date +%s.%N)
	rc=0
	TMPDIR=$PWD/$tmp "$OUT/$t" "${args[@]}" "$work" "${seeds[@]}" > "$log" 2>&1 || rc=$?
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	rm -rf "$tmp"
	[ $mode = check ] && rm -rf "$work"
	summarize "$t" "$log" "$secs"
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		echo "fuzz: $t FAILED (exit $rc); log: $log; inputs: $OUT/artifacts/$t/" >&2
		grep -E 'ERROR|runtime error|invariant|fuzz_checkpoint:|fuzz_adapter_table:|fuzz_source_wire:|SUMMARY|Test unit written' \
			"$log" | head -20 >&2 || true
	fi
done
if [ ${#failed[@]} -ne 0 ]; then
	echo "fuzz: failed: ${failed[*]}" >&2
	exit 1
fi
