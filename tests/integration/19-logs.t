#!/bin/bash
# A user can always see why a read failed.  -o log=FILE appends the
# daemon's lines to FILE with timestamps (a FILE that cannot be opened
# fails the mount); without it a detached daemon on a machine with no
# syslog socket still keeps its last lines in .sdafs-stats.  Every failed
# read or open counts once in read_errors and under its cause.  A hostile
# adapter table (a pattern that backtracks catastrophically) fails the
# mount with a message naming the table, the rule and the tensor.
. "$(dirname "$0")/lib.sh"
plan 16

iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[-+][0-9]{4}'
$GEN "$T/src" --kind moe --shards 2 >/dev/null
shard=model-00001-of-00002.safetensors

mkdir -p "$T/mnt"
"$SDAFS" -f -o log="$T/no-such-dir/sdafs.log" "$T/src" "$T/mnt" 2>"$T/err"
[ $? -ne 0 ] && ! is_mounted "$T/mnt" && grep -q "log=$T/no-such-dir/sdafs.log: cannot open it" "$T/err"
ok $? "a log file that cannot be opened fails the mount, saying so" || diag "$T/err"

echo "a line from before" >"$T/sdafs.log"
mount_view "$T/src" "$T/mnt" -o log="$T/sdafs.log",direct_io
ok $? "mounts with log=FILE"
m=$T/mnt
exec 3<"$m/$shard"                     # opened before the change: its read fails
touch -d '2001-01-01' "$T/src/$shard"   # rewritten in place (new mtime)
dd bs=4096 count=1 <&3 >/dev/null 2>"$T/e1"
grep -q "Input/output error" "$T/e1"
ok $? "a read of a view file whose source changed fails with EIO"
exec 3<&-
cat "$m/$shard" >/dev/null 2>"$T/e2"
grep -q "Input/output error" "$T/e2"
ok $? "so does a new open of it"
is "$(stat_field "$m" read_errors)" 2 "read_errors counts the failed read and the failed open"
is "$(stat_field "$m" read_error_causes.source_changed)" 2 "both under source_changed"
is "$(stat_field "$m" read_error_causes.conversion_failed)" 0 "and nothing under another cause"
head -1 "$T/sdafs.log" | grep -qx "a line from before"
ok $? "the log file is appended to"
grep -qE "^$iso sdafs\[[0-9]+\]: read of $shard at 0 \(4096 bytes\) failed: .*$shard (was modified|changed)" "$T/sdafs.log"
ok $? "it has the failed read's line, with a timestamp, naming the file" || diag "$T/sdafs.log"
$PY -c 'import json,sys; log=json.load(open(sys.argv[1]))["log"]; sys.exit(not any("read of" in l and sys.argv[2] in l for l in log))' \
	"$m/.sdafs-stats" "$shard"
ok $? ".sdafs-stats has it too"
unmount_view "$m"
ok $? "unmounts cleanly, sanitizer log clean"

# Detached, no log file: this machine's /dev/log may be missing (containers);
# the ring in .sdafs-stats still tells why a read failed.
$GEN "$T/src2" --kind moe --shards 2 >/dev/null
mkdir -p "$T/det"
trap 'fusermount3 -u "$T/det" 2>/dev/null; cleanup' EXIT
"$SDAFS" -o direct_io "$T/src2" "$T/det" 2>"$T/det.err"
ok $? "mounts detached, without log=" || diag "$T/det.err"
truncate -s 5000 "$T/src2/$shard"
cat "$T/det/$shard" >/dev/null 2>&1
$PY -c 'import json,sys; log=json.load(open(sys.argv[1]))["log"]; sys.exit(not any(sys.argv[2] in l and "truncated" in l for l in log))' \
	"$T/det/.sdafs-stats" "$shard"
ok $? "the detached daemon's .sdafs-stats log says why the read failed" || cat "$T/det/.sdafs-stats" | diag
fusermount3 -u "$T/det"
ok $? "unmounts"

# A catastrophic pattern over 200 names it cannot match.
mkdir -p "$T/hostile"
$PY - "$T/hostile" <<'EOF'
import json, struct, sys
d = sys.argv[1]
header, off = {}, 0
for i in range(200):
    header["x" * 40 + "-%d" % i] = {"dtype": "F32", "shape": [1], "data_offsets": [off, off + 4]}
    off += 4
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(d + "/model.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + bytes(off))
open(d + "/config.json", "w").write('{"architectures": ["Hostile"]}')
open(d + "/../hostile.json", "w").write(json.dumps({
    "name": "hostile", "architectures": ["Hostile"], "same_names": True,
    "hf_to_native": [{"op": "rename", "match": "^(x+x+)+$", "to": "y"}]}))
EOF
"$SDAFS" --inspect -o adapter_file="$T/hostile.json" "$T/hostile" >/dev/null 2>"$T/hostile.err"
[ $? -ne 0 ] && grep -qF "$T/hostile.json: hf_to_native rule 1: matching tensor 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-0' failed: match limit exceeded" "$T/hostile.err"
ok $? "a catastrophic pattern fails --inspect naming the table, the rule and the tensor" || diag "$T/hostile.err"
"$SDAFS" -o adapter_file="$T/hostile.json" "$T/hostile" "$T/mnt" 2>"$T/hostile2.err"
[ $? -ne 0 ] && ! is_mounted "$T/mnt" && grep -q "match limit exceeded" "$T/hostile2.err"
ok $? "and the mount, leaving nothing mounted" || diag "$T/hostile2.err"
done_testing
