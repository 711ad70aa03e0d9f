#!/bin/bash
# One whole mount under valgrind (the optimised build, so valgrind sees the
# code as shipped): mount, read every byte of the view and compare it with
# the reference, exercise errors (EROFS, ENOENT, the statistics file),
# start a sequential read so that the read-ahead is converting, and unmount
# at once.  valgrind must report no errors and no definitely lost bytes.
. "$(dirname "$0")/lib.sh"
plan 5
FAST=${SDAFS_FAST_BUILD:-$REPO/build}

if ! command -v valgrind >/dev/null; then
	for i in 1 2 3 4 5; do echo "ok $i # skip valgrind is not installed"; done
	exit 0
fi
$GEN "$T/src" --kind moe --mtp --shards 2 >/dev/null
mkdir -p "$T/mnt"
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--log-file="$T/vg.log" "$FAST/sdafs" -f -o cache_size=1M "$T/src" "$T/mnt" 2>/dev/null &
vpid=$!
for _ in $(seq 600); do is_mounted "$T/mnt" && break; sleep 0.1; done
is_mounted "$T/mnt"
ok $? "sdafs mounts under valgrind"
MOUNTS+=("$T/mnt"); PIDS+=("$vpid")
$CHECK "$T/mnt" "$T/src" >"$T/check" 2>&1
ok $? "every byte of the view equals the reference" || diag "$T/check"
touch "$T/mnt/x" 2>/dev/null; cat "$T/mnt/nope" 2>/dev/null; cat "$T/mnt/.sdafs-stats" >/dev/null
head -c 600000 "$T/mnt/model-00002-of-00002.safetensors" >/dev/null
fusermount3 -u "$T/mnt"
wait $vpid
rc=$?
MOUNTS=(); PIDS=()
is "$rc" 0 "the daemon exits 0 under valgrind (99 would mean errors)" || diag "$T/vg.log"
grep -q "ERROR SUMMARY: 0 errors" "$T/vg.log"
ok $? "valgrind: ERROR SUMMARY: 0 errors" || grep "ERROR SUMMARY" "$T/vg.log"
! grep -qE "definitely lost: [1-9]" "$T/vg.log"
ok $? "valgrind: no definitely lost bytes" || grep -A1 "definitely lost" "$T/vg.log"
done_testing
