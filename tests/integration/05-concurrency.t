#!/bin/bash
# Concurrency: many threads read random ranges of every view file at once,
# and two more read the files front to back (so the read-ahead converts
# ahead of them), with a cache far smaller than the converted data
# (constant eviction), and every byte matches the expected view; concurrent
# readers of one missing chunk convert it once (single-flight through the
# real mount).
. "$(dirname "$0")/lib.sh"
plan 8

$GEN "$T/src" --kind moe --mtp --special-values --shards 3 >/dev/null
# The expected bytes: one quiet copy of the view, itself checked against
# the independent reference, so the stress compares against verified data.
mount_view "$T/src" "$T/once"
cp -r "$T/once" "$T/expected" && unmount_view "$T/once" &&
	$CHECK "$T/expected" "$T/src" >"$T/expected.check" 2>&1
ok $? "a single-reader copy of the view equals the reference" || diag "$T/expected.check"

for mode in buffered direct_io; do
	opts="-o cache_size=300K"
	mm="--mmap"     # mmap readers mixed with read readers
	[ $mode = direct_io ] && opts="$opts,direct_io" && mm=""
	mount_view "$T/src" "$T/$mode" $opts
	$PY "$REPO/tests/integration/stress_read.py" "$T/$mode" "$T/expected" --threads 8 --reads 200 $mm \
		--sequential 2 >"$T/$mode.out" 2>&1
	ok $? "$mode: 8 threads x 200 random reads and 2 sequential readers, every byte right under eviction ($(cat "$T/$mode.out"))" || diag "$T/$mode.out"
	ev=$(stat_field "$T/$mode" cache.evictions)
	[ "$ev" -gt 0 ]
	ok $? "$mode: the small cache evicted ($ev evictions)"
	unmount_view "$T/$mode"
	ok $? "$mode: unmounts cleanly, sanitizer log clean"
done

# Single-flight: 8 processes read the same grouped tensor at the same time
# (no read-ahead, so that every conversion is one a reader asked for).
mount_view "$T/src" "$T/sf" -o direct_io,readahead=0
for i in $(seq 8); do
	$PY "$REPO/tests/integration/read_tensor.py" "$T/sf" model.layers.1.mixer.experts.gate_and_up_projs >/dev/null &
done
wait_status=0
for job in $(jobs -p); do
	case " ${PIDS[*]} " in *" $job "*) continue;; esac
	wait "$job" || wait_status=1
done
is "$(stat_field "$T/sf" chunks_converted)" 8 "8 concurrent readers of one 8-expert tensor convert 8 chunks, not 64"
unmount_view "$T/sf"
done_testing
