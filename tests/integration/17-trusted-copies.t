#!/bin/bash
# Materialized copies are served only when whole and ours (issue 12):
# writes cut short, a full disk and a filesystem without O_TMPFILE (an
# LD_PRELOAD shim, write_shim.c) still give whole copies or none; copies
# and records planted by another user in a sticky materialize_dir, and
# links planted under any name the daemon writes, are refused or replaced,
# never followed; a source rewritten in place with its mtime put back
# (touch -r) is noticed by a live mount and by the next one; a
# materialize_dir others can write to is refused; materialize_max evicts the
# least recently used copies; --verify-copies finds damaged bytes.  Every
# byte served is compared with a plain mount (no materialize_dir) and the
# reference.
. "$(dirname "$0")/lib.sh"
plan 39

if [ "$(id -u)" != 0 ]; then
	for i in $(seq 39); do echo "ok $i # skip needs root (runuser, chown)"; done
	exit 0
fi
chmod 711 "$T"          # so that user nobody can reach the sticky dir below
SHIM=$BUILD/tests/write_shim.so
mkdir -p "$BUILD/tests"
cc -shared -fPIC -O1 -Wall -Wextra -Werror -o "$SHIM" "$REPO/tests/integration/write_shim.c" -ldl ||
	{ echo "Bail out! cannot build the write shim"; exit 1; }
nshards=2
$GEN "$T/src" --kind moe --shards $nshards --vocab 16384 >/dev/null   # 12 MB shards: 3 write steps
shard1=model-00001-of-00002.safetensors

wait_log() {            # wait_log FILE PATTERN N: N lines of FILE match PATTERN
	for _ in $(seq 300); do
		[ "$(grep -c -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
gone() {                # gone PATH: wait until it does not exist
	for _ in $(seq 100); do
		[ -e "$1" ] || return 0
		sleep 0.1
	done
	return 1
}
same_as() {             # same_as REFMNT MNT: every file equal, byte for byte
	local f rc=0
	for f in "$1"/*; do
		cmp -s "$f" "$2/$(basename "$f")" || { echo "# $(basename "$f") differs"; rc=1; }
	done
	return $rc
}
with_shim() {           # with_shim FAULTS SRC MNT OPTIONS...: mount_view under the shim
	local faults=$1
	shift
	SDAFS_SHIM=$faults SDAFS_SHIM_LOG=$T/shim.log LD_PRELOAD=$SHIM \
		ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0 mount_view "$@"
}
ident_line() {          # ident_line FILE: a record's "copy" line for FILE
	stat -c 'copy dev=%d ino=%i size=%s mtime=%.9Y ctime=%.9Z' "$1"
}

mount_view "$T/src" "$T/plain"          # the comparison: converted, no copies

# -- 1: every write cut short ------------------------------------------------
mkdir -m 700 "$T/c1"
with_shim short "$T/src" "$T/m1" -o materialize_dir="$T/c1",prefetch
wait_copies "$T/m1" $nshards
ok $? "with the first write to each file cut short, prefetch still writes every copy"
[ "$(grep -c '^short' "$T/shim.log")" -ge $((2 * nshards)) ]
ok $? "the shim did cut a write of each copy and record short ($(grep -c '^short' "$T/shim.log"))"
unmount_view "$T/m1"
ok $? "unmounts cleanly, sanitizer log clean"
mount_view "$T/src" "$T/m2" -o materialize_dir="$T/c1"
same_as "$T/plain" "$T/m2"
ok $? "a remount without the shim serves every byte as a plain mount does"
is "$(stat_field "$T/m2" chunks_converted)" 0 "from the copies (nothing converted)"
$CHECK "$T/m2" "$T/src" >"$T/check2" 2>&1
ok $? "and equal to the reference" || diag "$T/check2"
unmount_view "$T/m2"

# -- 2: a full disk ------------------------------------------------------------
mkdir -m 700 "$T/c2"
with_shim enospc "$T/src" "$T/m3" -o materialize_dir="$T/c2",prefetch
wait_log "$T/m3.log" "No space left on device" $nshards
ok $? "a write failing with ENOSPC fails its copy with a message"
is "$(ls -A "$T/c2" | wc -l)" 0 "and leaves nothing in materialize_dir"
is "$(stat_field "$T/m3" copies_written)" 0 "no copy is counted as written"
same_as "$T/plain" "$T/m3"
ok $? "the view is still served right"
unmount_view "$T/m3"

# -- 3: no O_TMPFILE: an exclusive temporary name, and housekeeping -----------
mkdir -m 700 "$T/c3"
with_shim notmpfile,short "$T/src" "$T/m4" -o materialize_dir="$T/c3",prefetch
wait_copies "$T/m4" $nshards
ok $? "without O_TMPFILE copies are written under a temporary name"
grep -q '^notmpfile' "$T/shim.log" && [ "$(ls "$T/c3" | grep -c -- '-tmp\.')" = 0 ]
ok $? "and no temporary name is left"
unmount_view "$T/m4"
mount_view "$T/src" "$T/m5" -o materialize_dir="$T/c3"
same_as "$T/plain" "$T/m5" && [ "$(stat_field "$T/m5" chunks_converted)" = 0 ]
ok $? "those copies are served, every byte as a plain mount's"
unmount_view "$T/m5"

dead=$T/c3/0123456789abcdef-tmp.0000000000000001
live=$T/c3/0123456789abcdef-tmp.0000000000000002
other=$T/c3/0123456789abcdef-tmp.0000000000000003
echo dead >"$dead"
echo live >"$live"
echo other >"$other"
chown nobody "$other"
$PY -c 'import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(600)' \
	"$live" </dev/null >/dev/null 2>&1 &      # a writer that lives: it holds the lock
holder=$!
sleep 0.5
mount_view "$T/src" "$T/m6" -o materialize_dir="$T/c3"
gone "$dead"
ok $? "at mount, a temporary file no living writer holds is removed"
[ -e "$live" ] && [ -e "$other" ]
ok $? "one a writer holds, and one of another user, are kept"
kill "$holder"
wait "$holder" 2>/dev/null
unmount_view "$T/m6"

# -- 4: a copy and record planted by another user in a sticky dir -------------
mkdir "$T/c5"
chmod 1777 "$T/c5"
mount_view "$T/src" "$T/m7" -o materialize_dir="$T/c5",prefetch
wait_copies "$T/m7" $nshards
ok $? "a sticky materialize_dir (1777) is accepted"
unmount_view "$T/m7"
for rec in "$T"/c5/*-record; do
	key=$(basename "$rec" -record)
	copy=$(ls "$T/c5/$key".*)
	size=$(stat -c %s "$copy")
	cp "$rec" "$T/record.$key"
	chmod 644 "$T/record.$key"
	rm -f "$copy" "$rec"
	# The right name and size, other bytes, and a record that says so:
	# everything a copy needs but its owner.
	runuser -u nobody -- bash -c "head -c $size /dev/zero >'$copy' && chmod 600 '$copy'"
	runuser -u nobody -- bash -c "sed 's|^copy .*|$(ident_line "$copy")|' '$T/record.$key' >'$rec' && chmod 600 '$rec'"
done
[ "$(stat -c %U "$T"/c5/* | sort -u)" = nobody ]
ok $? "user nobody planted a copy and record for each shard"
mount_view "$T/src" "$T/m8" -o materialize_dir="$T/c5"
wait_log "$T/m8.log" "owned by uid 65534" $nshards
ok $? "the planted copies are refused, with a message naming their owner"
same_as "$T/plain" "$T/m8" && [ "$(stat_field "$T/m8" chunks_converted)" -gt 0 ]
ok $? "the view serves converted bytes, not the planted ones"
unmount_view "$T/m8"

# -- 5: links planted under every name the daemon writes ----------------------
echo "root's file" >"$T/victim"
keys=$(ls "$T/c5" | sed -n 's/-record$//p')
rm -f "$T"/c5/*
for key in $keys; do
	file=$(sed -n 's/^file \([^ ]*\) .*/\1/p' "$T/record.$key")
	runuser -u nobody -- ln -s "$T/victim" "$T/c5/$key.$file"
	runuser -u nobody -- ln -s "$T/victim" "$T/c5/$key-record"
done
[ "$(find "$T/c5" -type l | wc -l)" = $((2 * nshards)) ]
ok $? "user nobody planted links under the names of every copy and record"
mount_view "$T/src" "$T/m9" -o materialize_dir="$T/c5",prefetch
wait_copies "$T/m9" $nshards
ok $? "root writes its copies all the same"
[ "$(cat "$T/victim")" = "root's file" ] && [ "$(find "$T/c5" -type l | wc -l)" = 0 ] &&
	[ "$(stat -c %U "$T"/c5/* | sort -u)" = root ]
ok $? "the links were replaced, never written through"
unmount_view "$T/m9"

rm -f "$T"/c5/*
for key in $keys; do
	runuser -u nobody -- ln -s "$T/victim" "$T/c5/$key-tmp.0000000000000000"
done
with_shim notmpfile,zerorandom "$T/src" "$T/m10" -o materialize_dir="$T/c5",prefetch
wait_log "$T/m10.log" "cannot create a file: File exists" $nshards
ok $? "a link under the temporary name (made predictable by the shim) is not opened: that copy fails"
[ "$(cat "$T/victim")" = "root's file" ]
ok $? "and the link's target is untouched"
same_as "$T/plain" "$T/m10"
ok $? "the view is still served right"
unmount_view "$T/m10"

# -- 6: a source rewritten in place, its mtime put back (touch -r) ------------
old_copy=$(ls "$T"/c1/*."$shard1")
cat "$T/plain/$shard1" >/dev/null      # its pages are in the page cache now
touch -r "$T/src/$shard1" "$T/stamp"
$PY - "$T/src/$shard1" <<'EOF'
import os, sys
with open(sys.argv[1], "r+b") as f:        # same size, other bytes: the last 64 KiB
    f.seek(-65536, os.SEEK_END)
    data = bytearray(f.read())
    f.seek(-65536, os.SEEK_END)
    f.write(bytes(b ^ 0x5A for b in data))
EOF
touch -r "$T/stamp" "$T/src/$shard1"
[ "$(stat -c %.9Y "$T/src/$shard1")" = "$(stat -c %.9Y "$T/stamp")" ]
ok $? "the shard was rewritten in place with its mtime put back"
sleep 1.5       # the watcher's round
cat "$T/plain/$shard1" >/dev/null 2>"$T/e11"
grep -q "Input/output error" "$T/e11"
ok $? "a live mount notices (ctime) and fails the read with EIO"
mount_view "$T/src" "$T/m12" -o materialize_dir="$T/c1"
$CHECK "$T/m12" "$T/src" >"$T/check12" 2>&1
ok $? "a new mount on the same materialize_dir serves the new bytes (reference)" || diag "$T/check12"
mount_view "$T/src" "$T/plain2"
same_as "$T/plain2" "$T/m12"
ok $? "every byte as a plain mount of the new source"
wait_copies "$T/m12" 1          # the check read the shard to its end: a new copy
[ ! -e "$old_copy" ] && [ "$(ls "$T"/c1/*-record | wc -l)" = $nshards ]
ok $? "the copy of the old shard was removed at mount (and a new one written), the other kept"
unmount_view "$T/m12"
unmount_view "$T/plain2"

# -- 7: a materialize_dir others can write to ---------------------------------
mkdir -m 777 "$T/c8" "$T/m13"
chmod 777 "$T/c8"
"$SDAFS" -o materialize_dir="$T/c8" "$T/src" "$T/m13" 2>"$T/e13"
[ $? -ne 0 ] && grep -q "other users can write to it" "$T/e13" && ! is_mounted "$T/m13"
ok $? "a materialize_dir writable by others, not sticky, is refused at mount with a message"
chmod 775 "$T/c8"
"$SDAFS" -o materialize_dir="$T/c8" "$T/src" "$T/m13" 2>"$T/e13"
[ $? -ne 0 ] && grep -q "mode 0775" "$T/e13"
ok $? "so is one writable by its group"

# -- 8: materialize_max -------------------------------------------------------
$GEN "$T/srcA" --kind moe --shards 2 >/dev/null
$GEN "$T/srcB" --kind moe --shards 2 >/dev/null
mkdir -m 700 "$T/c9"
mount_view "$T/srcA" "$T/mA" -o materialize_dir="$T/c9",prefetch
wait_copies "$T/mA" 2
unmount_view "$T/mA"
a1=$(ls "$T"/c9/*.model-00001-of-00002.safetensors)
a2=$(ls "$T"/c9/*.model-00002-of-00002.safetensors)
record_of() { local name; name=$(basename "$1"); echo "$T/c9/${name%%.*}-record"; }
touch -d '2 hours ago' "$(record_of "$a1")"   # last used: the first shard's longest ago
touch -d '1 hour ago' "$(record_of "$a2")"
size1=$(stat -c %s "$a1")
size2=$(stat -c %s "$a2")
budget=$((size1 + 2 * size2))          # srcB's copies have srcA's sizes: room for three
mount_view "$T/srcB" "$T/mB" -o materialize_dir="$T/c9",prefetch,materialize_max=$budget
wait_copies "$T/mB" 2
ok $? "with materialize_max the new copies are written"
[ ! -e "$a1" ] && [ ! -e "$(record_of "$a1")" ]
ok $? "the least recently used copy and its record were evicted"
[ -e "$a2" ] && [ "$(ls "$T"/c9/*-record | wc -l)" = 3 ]
ok $? "the others were kept"
[ "$(cat "$T"/c9/*.safetensors | wc -c)" -le $budget ]
ok $? "the copies fit in the budget"
grep -q "least recently used copies" "$T/mB.log"
ok $? "the log says what was evicted"
unmount_view "$T/mB"

# -- 9: --verify-copies ---------------------------------------------------------
"$SDAFS" --verify-copies -o materialize_dir="$T/c9" "$T/srcB" >"$T/v1" 2>&1
[ $? -eq 0 ] && [ "$(grep -c '^ok ' "$T/v1")" = 2 ]
ok $? "--verify-copies reads both copies whole against their checksum" || diag "$T/v1"
rec=$(grep -l "/srcB/" "$T"/c9/*-record | head -1)
sed -i 's/^checksum 0/checksum 1/; t; s/^checksum ./checksum 0/' "$rec"   # its first digit
"$SDAFS" --verify-copies -o materialize_dir="$T/c9" "$T/srcB" >"$T/v2" 2>&1
[ $? -ne 0 ] && grep -q "^damaged .*other bytes than were written" "$T/v2"
ok $? "and says which one holds other bytes than were written" || diag "$T/v2"

unmount_view "$T/plain"
done_testing
