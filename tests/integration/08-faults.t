#!/bin/bash
# Faults while mounted: a source file replaced, truncated, rewritten in
# place or deleted makes reads of the view files built from it fail with
# EIO (also when their pages were cached: within a second, the watcher's
# period, the kernel drops them) and logs the file once; other files keep
# working; nothing mixed is served.  A daemon killed with
# SIGKILL leaves a mount point that fusermount3 -u cleans and that mounts
# again; an unmount while reads are in flight completes.
. "$(dirname "$0")/lib.sh"
plan 15

$GEN "$T/src" --kind moe --shards 3 >/dev/null
mount_view "$T/src" "$T/mnt"
ok $? "mounts"
m=$T/mnt
cat "$m"/*.safetensors "$m"/*.json >/dev/null     # warm the page cache

s1=$T/src/model-00001-of-00003.safetensors
cp "$s1" "$T/new" && printf 'X' | dd of="$T/new" bs=1 seek=5000 conv=notrunc 2>/dev/null
mv "$T/new" "$s1"                                   # replaced by rename
truncate -s 1000 "$T/src/model-00002-of-00003.safetensors"
sleep 2.5                                           # the watcher runs every second
cat "$m/model-00001-of-00003.safetensors" >/dev/null 2>"$T/e1"
grep -q "Input/output error" "$T/e1"
ok $? "a source shard replaced under the mount: its view file fails with EIO, even from the page cache"
cat "$m/model-00002-of-00003.safetensors" >/dev/null 2>"$T/e2"
grep -q "Input/output error" "$T/e2"
ok $? "a source shard truncated under the mount: EIO"
cat "$m/model-00003-of-00003.safetensors" >/dev/null
ok $? "an untouched shard still reads"
grep -q "model-00001-of-00003.safetensors was replaced" "$m.log" &&
	grep -q "model-00002-of-00003.safetensors was modified or truncated" "$m.log"
ok $? "the log names each changed file and what happened" || diag "$m.log"

touch -d '2001-01-01' "$T/src/model-00003-of-00003.safetensors"  # rewritten in place (new mtime)
rm "$T/src/tokenizer.json"
sleep 2.5
cat "$m/model-00003-of-00003.safetensors" >/dev/null 2>"$T/e3"
grep -q "Input/output error" "$T/e3"
ok $? "a source rewritten in place (same size, new mtime): EIO"
cat "$m/tokenizer.json" >/dev/null 2>"$T/e4"
grep -q "Input/output error" "$T/e4"
ok $? "a deleted pass-through file: EIO"
cmp -s "$m/config.json" "$T/src/config.json"
ok $? "other files keep working"
is "$(stat_field "$m" source_changes)" 4 "the statistics count four changed source files"
unmount_view "$m"
ok $? "unmounts cleanly, sanitizer log clean"

# SIGKILL, cleanup, remount.
$GEN "$T/src2" --kind moe >/dev/null
mkdir -p "$T/k"
"$SDAFS" -f "$T/src2" "$T/k" 2>/dev/null &
kpid=$!
for _ in $(seq 100); do is_mounted "$T/k" && break; sleep 0.05; done
kill -KILL $kpid; wait $kpid 2>/dev/null
ls "$T/k" 2>&1 | grep -q "not connected"
ok $? "after SIGKILL the mount point reports a disconnected transport"
fusermount3 -u "$T/k"
! is_mounted "$T/k"
ok $? "fusermount3 -u cleans it up"
mount_view "$T/src2" "$T/k"
ok $? "and the same mount point mounts again"
unmount_view "$T/k"

# Unmount while a reader is in the middle of a file.
mount_view "$T/src2" "$T/busy" -o direct_io
( exec 3<"$T/busy/model-00001-of-00002.safetensors"; head -c 100000 <&3 >/dev/null; sleep 1; cat <&3 >/dev/null ) &
reader=$!
sleep 0.3
fusermount3 -uz "$T/busy"
wait $reader
timeout 10 bash -c "while kill -0 ${PIDS[-1]} 2>/dev/null; do sleep 0.1; done"
ok $? "a lazy unmount while a file is being read completes and the daemon exits"
! is_mounted "$T/busy"
ok $? "nothing is left mounted"
done_testing
