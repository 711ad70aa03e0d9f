#!/bin/bash
# Progress of background work: .sdafs-stats has a prefetch object (files and
# bytes total and done, rate, errors, done) for materialize_dir copies, and
# `sdafs status [--wait] [MNT...]` lists the sdafs mounts and waits for
# prefetching to end (a bar on a terminal, plain lines otherwise), its exit
# status saying whether every copy was made.
. "$(dirname "$0")/lib.sh"
plan 18

$GEN "$T/src" --kind moe --shards 3 >/dev/null
mkdir -p "$T/copies"
prefetch() {    # prefetch MNT KEY: a field of the prefetch object
	stat_field "$1" "prefetch.$2"
}

mount_view "$T/src" "$T/m1" -o materialize_dir="$T/copies",prefetch
"$SDAFS" status --wait "$T/m1" >"$T/wait.out" 2>"$T/wait.err"
ok $? "sdafs status --wait MNT exits 0 once every copy is made" || diag "$T/wait.out" "$T/wait.err"
tail -1 "$T/wait.out" | grep -q "^prefetch: 3/3 files, .* (100%), .*, 0 errors, done$"
ok $? "without a terminal it prints plain lines, the last one saying done" || diag "$T/wait.out"
! grep -q $'\r' "$T/wait.out"
ok $? "and no carriage returns"

shards=$(ls "$T"/m1/model-*.safetensors | wc -l)
bytes=$(cat "$T"/m1/model-*.safetensors | wc -c)
is "$(prefetch "$T/m1" files_total) $(prefetch "$T/m1" files_done)" "$shards $shards" \
	"prefetch.files_total and files_done: every converted shard ($shards)"
is "$(prefetch "$T/m1" bytes_total) $(prefetch "$T/m1" bytes_done)" "$bytes $bytes" \
	"prefetch.bytes_total and bytes_done: the shards' bytes ($bytes)"
is "$(prefetch "$T/m1" errors) $(prefetch "$T/m1" done)" "0 True" "prefetch.errors 0, done true"
$PY -c 'import json, sys; p = json.load(open(sys.argv[1]))["prefetch"]; sys.exit(not p["bytes_per_second"] > 0)' "$T/m1/.sdafs-stats"
ok $? "prefetch.bytes_per_second is a rate"
is "$(ls "$T/copies" | grep -vc -- '-record$')" "$shards" "and the copies are on disk (each with its record)"

"$SDAFS" status >"$T/list" 2>&1
grep -q "^$T/m1 \+$T/src \+native \+nemotron_h \+.* done 3/3 files, 0 errors$" "$T/list"
ok $? "sdafs status lists the mount: mount point, source, view, adapter, cache, prefetch" || diag "$T/list"
script -qec "$SDAFS status --wait $T/m1" /dev/null >"$T/tty.out" 2>&1
grep -q "\[##############################\] 100%" "$T/tty.out" && grep -q $'\r' "$T/tty.out"
ok $? "on a terminal --wait draws a bar (redrawn in place)" || diag "$T/tty.out"
unmount_view "$T/m1"

mount_view "$T/src" "$T/m2" -o materialize_dir="$T/copies"
is "$(prefetch "$T/m2" files_done)/$(prefetch "$T/m2" files_total) $(prefetch "$T/m2" done)" "$shards/$shards True" \
	"a later mount counts the copies it found as done"
unmount_view "$T/m2"

mount_view "$T/src" "$T/m3"
$PY -c 'import json, sys; sys.exit("prefetch" in json.load(open(sys.argv[1])))' "$T/m3/.sdafs-stats"
ok $? "without materialize_dir there is no prefetch object"
"$SDAFS" status "$T/m3" | grep -q " -$"
ok $? "and status shows '-' for it"
unmount_view "$T/m3"

"$SDAFS" status "$T/src" >/dev/null 2>"$T/not.err"
[ $? = 1 ] && grep -q "$T/src is not an sdafs mount" "$T/not.err"
ok $? "sdafs status DIR of a directory that is no sdafs mount: exit 1, says so" || diag "$T/not.err"
"$SDAFS" status --frobnicate >/dev/null 2>&1
is $? 2 "an unknown option: exit 2"

if [ "$(id -u)" = 0 ]; then     # a copy that cannot be written: a full disk
	mkdir -p "$T/tiny"
	mount -t tmpfs -o size=16k tmpfs "$T/tiny"
	trap 'umount "$T/tiny" 2>/dev/null; cleanup' EXIT
	mount_view "$T/src" "$T/m4" -o materialize_dir="$T/tiny",prefetch
	"$SDAFS" status --wait "$T/m4" >"$T/full.out" 2>"$T/full.err"
	[ $? = 1 ] && grep -q "could not be copied" "$T/full.err"
	ok $? "copies that fail (a full disk): --wait exits 1 and says so" || diag "$T/full.out" "$T/full.err"
	is "$(prefetch "$T/m4" errors) $(prefetch "$T/m4" files_done) $(prefetch "$T/m4" done)" "$shards 0 True" \
		"and prefetch.errors counts every one, files_done none, done true"
	is "$(ls -A "$T/tiny")" "" "no copy is left behind, not even a truncated one (a short write is a failure)"
	unmount_view "$T/m4"
else
	for _ in 1 2 3; do TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip a full tmpfs needs root"; done
fi
done_testing
