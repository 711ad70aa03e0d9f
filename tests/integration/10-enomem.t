#!/bin/bash
# Allocation failure while converting is an EIO for that read, not a crash:
# a (sparse) checkpoint whose every expert is 2 TiB asks the cache for a
# chunk no machine can allocate.  The daemon says why, and keeps serving.
. "$(dirname "$0")/lib.sh"
plan 5
export ASAN_OPTIONS="$ASAN_OPTIONS:allocator_may_return_null=1"

$PY "$REPO/tests/fixtures/huge_expert.py" "$T/src"
mount_view "$T/src" "$T/mnt" -o direct_io
ok $? "a checkpoint with 2 TiB experts mounts (only headers are read)"
dd if="$T/mnt/model-00001-of-00001.safetensors" of=/dev/null bs=4096 count=1 \
	skip=$((1 << 20)) 2>"$T/err"
grep -q "Input/output error" "$T/err"
ok $? "reading into a 2 TiB expert fails with EIO" || diag "$T/err"
grep -q "cannot allocate" "$T/mnt.log"
ok $? "the log says the chunk could not be allocated" || diag "$T/mnt.log"
head -c 8 "$T/mnt/model-00001-of-00001.safetensors" | wc -c | grep -q '^8$'
ok $? "the daemon keeps serving (the header still reads)"
unmount_view "$T/mnt"
ok $? "unmounts cleanly, sanitizer log clean"
done_testing
