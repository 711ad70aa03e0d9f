#!/bin/bash
# The messages of mistakes a user makes: an unknown -o option gets the
# nearest name and the list (not libfuse's bare "unknown option(s)"); a
# missing MOUNTPOINT, --json without --inspect and --inspect SRC MNT get one
# line, not the usage; the CPU-backend line only with -v (its reason is in
# .sdafs-stats); a failed mount names its cause; an Automodel epoch
# directory points at its model/; a family only an example table describes
# names the table.
. "$(dirname "$0")/lib.sh"
plan 27

$GEN "$T/src" --kind moe >/dev/null
mkdir -p "$T/mnt"

run() {         # run ARGS...: sdafs's exit status in $rc, its stderr in $T/err
	"$SDAFS" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
says() {        # says TEXT DESCRIPTION: exit 1, TEXT in the message, no mount
	grep -qF -- "$1" "$T/err" && [ "$rc" = 1 ] && ! is_mounted "$T/mnt"
	ok $? "$2" || { echo "#   exit $rc, expected: $1"; diag "$T/err"; }
}
lines() { wc -l <"$T/err"; }

run -o cachesize=1G "$T/src" "$T/mnt"
says "sdafs: unknown option 'cachesize=1G'; did you mean cache_size?" "-o cachesize=1G: names the option and the nearest one"
grep -q "^sdafs: options are view, adapter, adapter_file, dtype, cache_size, backend, ep_rank, ep_size" "$T/err"
ok $? "and lists the valid options" || diag "$T/err"
! grep -q "fuse: unknown option\|usage:\|converting on" "$T/err" && [ "$(lines)" = 3 ]
ok $? "and nothing else: no libfuse message, no usage, no backend line" || diag "$T/err"
run -o view=native,vew=hf "$T/src" "$T/mnt"
says "unknown option 'vew=hf'; did you mean view?" "-o vew=hf: did you mean view?"
run -o frobnicate "$T/src" "$T/mnt"
grep -q "unknown option 'frobnicate'$" "$T/err"
ok $? "a name close to none gets no guess" || diag "$T/err"
run --frobnicate "$T/src" "$T/mnt"
says "sdafs: unknown argument '--frobnicate'" "an unknown flag is named"
mount_view "$T/src" "$T/mnt" -o noatime,auto_unmount
ok $? "libfuse's own mount options (noatime, auto_unmount) are passed on"
unmount_view "$T/mnt"

run "$T/src"
says "sdafs: missing MOUNTPOINT: sdafs [-o OPTIONS] SRC MOUNTPOINT" "SRC without MOUNTPOINT: says what is missing"
is "$(lines)" 1 "in one line"
run
says "sdafs: missing SRC and MOUNTPOINT" "no arguments: says what is missing, in one line"
run --json "$T/src"
says "sdafs: --json goes with --inspect" "--json without --inspect: one line" && is "$(lines)" 1 "(one line)"
run --inspect "$T/src" "$T/mnt"
says "sdafs: --inspect takes only SRC; '$T/mnt' is one argument too many" "--inspect SRC MNT refuses MNT"
[ ! -s "$T/out" ]
ok $? "and prints no plan"

mount_view "$T/src" "$T/mnt"
reason=$(stat_field "$T/mnt" backend_reason)
! grep -q "converting on the CPU" "$T/mnt.log"
ok $? "no 'converting on the CPU' line at a plain mount" || diag "$T/mnt.log"
[ -n "$reason" ]
ok $? ".sdafs-stats has the reason: backend_reason \"$reason\""
unmount_view "$T/mnt"
rm -f "$T/mnt.log"
mount_view "$T/src" "$T/mnt" -v
if [ "$reason" = "built without CUDA" ]; then
	! grep -q "converting on the CPU" "$T/mnt.log"
	ok $? "-v: nothing to say on a build without CUDA"
else
	grep -qF "sdafs: converting on the CPU: $reason" "$T/mnt.log"
	ok $? "-v says it, with the reason" || diag "$T/mnt.log"
fi
unmount_view "$T/mnt"

run "$T/src" "$T/nowhere"
says "sdafs: mount point $T/nowhere does not exist; create it first (mkdir -p $T/nowhere)" "a missing mount point is named, with the fix"
touch "$T/file"
run "$T/src" "$T/file"
says "sdafs: mount point $T/file is not a directory" "a mount point that is a file"
mount_view "$T/src" "$T/dead"
kill -KILL "${PIDS[-1]}"
wait "${PIDS[-1]}" 2>/dev/null
run "$T/src" "$T/dead"
grep -qF "sdafs: mount point $T/dead is a FUSE mount whose daemon is gone; unmount it first (fusermount3 -u $T/dead)" "$T/err" && [ "$rc" = 1 ]
ok $? "a mount point left by a killed daemon: says to unmount it" || diag "$T/err"
fusermount3 -u "$T/dead"
if [ "$(id -u)" = 0 ]; then
	unshare -m sh -c 'mount -t tmpfs none /dev && exec "$0" "$@"' "$SDAFS" "$T/src" "$T/mnt" >/dev/null 2>"$T/err"
	rc=$?
	says "sdafs: there is no /dev/fuse: load the fuse module (modprobe fuse)" "no /dev/fuse (a mount namespace without it): says so"
else
	TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip a mount namespace needs root"
fi
if [ "$(id -u)" = 0 ] && runuser -u nobody -- true 2>/dev/null; then
	chmod 755 "$T"
	runuser -u nobody -- "$SDAFS" "$T/src" "$T/mnt" >/dev/null 2>"$T/err"
	rc=$?
	says "cannot mount on $T/mnt: this user may not write to it, and fusermount3 mounts only on directories its user owns or may write to" \
		"a user who may not write to the mount point is told that, not to check the directory"
else
	TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip needs root and a user nobody"
fi

mkdir -p "$T/ckpts/epoch_0_step_10"
$GEN "$T/ckpts/epoch_0_step_10/model" --kind moe >/dev/null
run "$T/ckpts/epoch_0_step_10" "$T/mnt"
says "sdafs: $T/ckpts/epoch_0_step_10 holds an Automodel checkpoint in model/ (as epoch_*_step_* directories do): mount $T/ckpts/epoch_0_step_10/model" \
	"an Automodel epoch directory: says to mount its model/"

$GEN "$T/qwen" --family qwen3_moe >/dev/null
run --inspect "$T/qwen"
says "architecture Qwen3MoeForCausalLM is not supported by a built-in adapter, but the example table" \
	"Qwen3-MoE: the message names the example table that describes it"
grep -q "qwen3_moe.json describes it: mount with -o adapter=qwen3_moe$" "$T/err"
ok $? "and how to use it" || diag "$T/err"
"$SDAFS" --inspect -o adapter=qwen3_moe "$T/qwen" | head -1 | grep -q "adapter qwen3_moe, hf->native"
ok $? "adapter=qwen3_moe finds the table by name"
$GEN "$T/mixtral" --family mixtral >/dev/null
run --inspect "$T/mixtral"
says "architecture MixtralForCausalLM is not supported by a built-in adapter, but the example table" "Mixtral: the same"
done_testing
