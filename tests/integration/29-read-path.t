#!/bin/bash
# The fast read path (docs/design.md, "The read path"): chunks converted
# ahead of sequential readers on worker threads, unchanged source bytes
# spliced to the kernel, chunk memory reused across sizes.  Every byte is
# compared with a copy of the view made through the plain path (no
# read-ahead, no splice) and checked against the independent reference; a
# source changed while the read-ahead runs fails reads with EIO and never
# serves mixed bytes; unmounting with read-ahead in flight ends the daemon
# cleanly, leaving a clean sanitizer log.
. "$(dirname "$0")/lib.sh"
plan 24

# Experts of 512 KiB chunks, unchanged tensors of up to 1 MiB, and a 3 MB
# pass-through file: enough for requests that splice whole megabytes.
$GEN "$T/src" --kind moe --hidden 512 --moe-inter 512 --experts 16 --shards 3 --special-values >/dev/null
head -c 3000001 /dev/urandom >"$T/src/tokenizer.model"

SDAFS_OFF=splice,readahead mount_view "$T/src" "$T/plain"
cp -r "$T/plain" "$T/expected" && unmount_view "$T/plain" &&
	$CHECK "$T/expected" "$T/src" >"$T/expected.check" 2>&1
ok $? "a copy of the view through the plain read path equals the reference" || diag "$T/expected.check"

# Splice: buffered (1 MiB-ish requests from the kernel's read-ahead, mmap
# faults) and direct_io (requests exactly as the reads ask: odd offsets).
for mode in buffered direct_io; do
	opts=""
	mm="--mmap"
	[ $mode = direct_io ] && opts="-o direct_io" && mm=""
	mount_view "$T/src" "$T/sp-$mode" $opts
	$PY "$REPO/tests/integration/read_edges.py" "$T/sp-$mode" "$T/expected" >"$T/edges-$mode" 2>&1
	ok $? "$mode: reads across header, tensor and file edges equal the plain view ($(cat "$T/edges-$mode"))" ||
		diag "$T/edges-$mode"
	$PY "$REPO/tests/integration/stress_read.py" "$T/sp-$mode" "$T/expected" --threads 6 --reads 150 $mm \
		>"$T/stress-$mode" 2>&1
	ok $? "$mode: 6 threads of random reads at odd offsets and lengths ($(cat "$T/stress-$mode"))" ||
		diag "$T/stress-$mode"
	bad=0
	for f in "$T"/expected/*; do cmp -s "$f" "$T/sp-$mode/$(basename "$f")" || bad=1; done
	ok $bad "$mode: every file read front to back equals the plain view"
	sp=$(stat_field "$T/sp-$mode" spliced_bytes)
	[ "$sp" -gt 3000000 ]
	ok $? "$mode: source bytes were spliced ($sp bytes), the large pass-through file among them"
	unmount_view "$T/sp-$mode"
	ok $? "$mode: unmounts cleanly, sanitizer log clean"
done

# Read-ahead among random readers, under eviction pressure: a 4 MiB cache
# holds eight chunks, a quarter of it may be converted ahead.
mount_view "$T/src" "$T/ra" -o cache_size=4M
$PY "$REPO/tests/integration/stress_read.py" "$T/ra" "$T/expected" --threads 6 --reads 150 --mmap \
	--sequential 2 >"$T/ra.out" 2>&1
ok $? "6 random and 2 sequential readers with a 4 MiB cache: every byte right ($(cat "$T/ra.out"))" ||
	diag "$T/ra.out"
fills=$(stat_field "$T/ra" cache.ahead_fills)
ev=$(stat_field "$T/ra" cache.evictions)
[ "$fills" -gt 0 ] && [ "$ev" -gt 0 ]
ok $? "the read-ahead converted chunks ($fills) while the cache evicted ($ev)"
[ "$(stat_field "$T/ra" cache.ahead_bytes)" -le 1048576 ]
ok $? "chunks converted ahead and not read stay within a quarter of the cache"
unmount_view "$T/ra"
ok $? "unmounts cleanly, sanitizer log clean"

# A source rewritten in place while the read-ahead converts from it: every
# read before equals the view, every read after fails with EIO.
cp -r "$T/src" "$T/src2"
mount_view "$T/src2" "$T/chg" -o direct_io
f=model-00001-of-00003.safetensors
$PY "$REPO/tests/integration/change_during_read.py" "$T/chg/$f" "$T/expected/$f" "$T/src2/$f" \
	--stats "$T/chg/.sdafs-stats" >"$T/chg.out" 2>&1
ok $? "a source rewritten in place during read-ahead: $(cat "$T/chg.out")" || diag "$T/chg.out"
cmp -s "$T/chg/model-00003-of-00003.safetensors" "$T/expected/model-00003-of-00003.safetensors"
ok $? "the view files of other sources still read right"
grep -q "model-00001-of-00003.safetensors was modified" "$T/chg.log"
ok $? "the log names the changed source" || diag "$T/chg.log"
unmount_view "$T/chg"
ok $? "unmounts cleanly, sanitizer log clean"

# The option: a bad size is refused before anything is mounted; 0 is off.
mkdir -p "$T/bad"
"$SDAFS" -f -o readahead=12Q "$T/src" "$T/bad" 2>"$T/bad.err"
[ $? -ne 0 ] && grep -q "readahead=12Q: expected a size" "$T/bad.err" && ! is_mounted "$T/bad"
ok $? "readahead=12Q is refused, naming the option, and nothing is mounted" || diag "$T/bad.err"
mount_view "$T/src" "$T/off" -o readahead=0
cat "$T/off/model-00001-of-00003.safetensors" >/dev/null
[ "$(stat_field "$T/off" readahead.on)" = False ] && [ "$(stat_field "$T/off" cache.ahead_fills)" = 0 ]
ok $? "readahead=0: no read-ahead, nothing converted ahead of a sequential reader"
unmount_view "$T/off"

# Unmount while the read-ahead is busy: the daemon stops its workers and
# exits, and frees everything (LeakSanitizer runs at its exit).
mount_view "$T/src" "$T/busy" -o direct_io
( exec 3<"$T/busy/model-00001-of-00003.safetensors"; head -c 2000000 <&3 >/dev/null; sleep 2; cat <&3 >/dev/null ) 2>/dev/null &
reader=$!
for _ in $(seq 100); do
	[ "$(stat_field "$T/busy" readahead.chunks_queued 2>/dev/null || echo 0)" -gt 0 ] && break
	sleep 0.05
done
queued=$(stat_field "$T/busy" readahead.chunks_queued)
fusermount3 -uz "$T/busy"
timeout 20 bash -c "while kill -0 ${PIDS[-1]} 2>/dev/null; do sleep 0.1; done"
ok $? "a lazy unmount with read-ahead queued ($queued chunks) ends the daemon"
wait $reader
wait "${PIDS[-1]}"
ok $? "the daemon exits with status 0"
! grep -qE "ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer" "$T/busy.log"
ok $? "sanitizer log clean (no leak)" || diag "$T/busy.log"
unset 'MOUNTS[-1]' 'PIDS[-1]'
done_testing
