#!/bin/bash
# -o materialize_dir: converted view files are kept on disk (all at once with
# prefetch, or once a file has been read to its end), a later mount uses
# them without converting anything, a changed source makes its copy unused,
# and as root (Linux >= 6.9) the kernel serves the copies itself (FUSE
# passthrough).  Every byte still equals the reference.
. "$(dirname "$0")/lib.sh"
plan 12

$GEN "$T/src" --kind moe --mtp --shards 3 >/dev/null
mkdir -p "$T/copies"
nshards=3

mount_view "$T/src" "$T/m1" -o materialize_dir="$T/copies",prefetch
wait_copies "$T/m1" $nshards
ok $? "prefetch writes a copy of every shard ($(ls "$T/copies" | wc -l) files)"
$CHECK "$T/m1" "$T/src" >"$T/c1" 2>&1
ok $? "the view served from the copies equals the reference" || diag "$T/c1"
if [ "$(id -u)" = 0 ]; then
	[ "$(stat_field "$T/m1" passthrough_opens)" -ge $nshards ]
	ok $? "as root the kernel reads the copies itself (passthrough opens: $(stat_field "$T/m1" passthrough_opens))"
else
	echo "ok 3 # skip kernel passthrough needs root"
	TAP_N=$((TAP_N + 1))
fi
unmount_view "$T/m1"
ok $? "unmounts cleanly, sanitizer log clean"

mount_view "$T/src" "$T/m2" -o materialize_dir="$T/copies"
$CHECK "$T/m2" "$T/src" >"$T/c2" 2>&1
ok $? "a later mount serves the same copies, byte for byte" || diag "$T/c2"
is "$(stat_field "$T/m2" chunks_converted)" 0 "and converts nothing"
unmount_view "$T/m2"

touch "$T/src/model-00002-of-00003.safetensors"  # the source changed: new identity
mount_view "$T/src" "$T/m3" -o materialize_dir="$T/copies",direct_io
cat "$T/m3/model-00002-of-00003.safetensors" >/dev/null
[ "$(stat_field "$T/m3" chunks_converted)" -gt 0 ]
ok $? "a copy made from an older source is not used"
$CHECK "$T/m3" "$T/src" >"$T/c3" 2>&1
ok $? "and the view is still right" || diag "$T/c3"
wait_copies "$T/m3" 1
ok $? "reading a file to its end makes a new copy of it"
unmount_view "$T/m3"

mount_view "$T/src" "$T/m4" -o materialize_dir="$T/copies"
cat "$T/m4"/*.safetensors >/dev/null
touch "$T/src/model-00001-of-00003.safetensors"
cat "$T/m4/model-00001-of-00003.safetensors" >/dev/null 2>"$T/e4"
grep -q "Input/output error" "$T/e4"
ok $? "a file whose source changed cannot be opened, even when the kernel would serve its copy"
unmount_view "$T/m4"

"$SDAFS" -o prefetch "$T/src" "$T/m5" 2>"$T/e5"
[ $? -ne 0 ] && grep -q "materialize_dir" "$T/e5"
ok $? "prefetch without materialize_dir is refused with a message"
"$SDAFS" -o materialize_dir=/nonexistent "$T/src" "$T/m5" 2>"$T/e6"
[ $? -ne 0 ] && grep -q "not a directory" "$T/e6"
ok $? "a materialize_dir that does not exist is refused with a message"
done_testing
