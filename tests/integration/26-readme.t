#!/bin/bash
# The README's commands work as written.  Every code block of README.md is
# marked (readme_blocks.py says how): the commands of run blocks are run,
# one test each, in the repository root against generated checkpoints put
# where the README's paths point (moved under a temporary directory); fstab
# lines are mounted with mount -T; a systemd .mount unit is checked with
# systemd-analyze and mounted as systemd would mount it; skipped blocks are
# reported with their reason.  So a README line that stops working fails
# make check.
. "$(dirname "$0")/lib.sh"
FAST=${SDAFS_FAST_BUILD:-$REPO/build}

mapfile -t items < <($PY "$REPO/tests/integration/readme_blocks.py" "$REPO/README.md" "$T")
n=1     # the marker check
for it in "${items[@]}"; do
	case ${it%%$'\t'*} in
	CMD|SKIP) n=$((n + 1)) ;;
	BLOCK) [[ $it == *$'\t'skip$'\t'* ]] && n=$((n + 1)); [[ $it == *$'\t'systemd-unit$'\t'* ]] && n=$((n + 2)) ;;
	TEXT) f=${it#*$'\t'*$'\t'}; [[ $f == /* ]] && n=$((n + 1)) ;;   # an fstab entry
	esac
done
plan $n

errors=$(printf '%s\n' "${items[@]}" | grep '^ERROR' | cut -f2- | tr '\t' ' ')
is "$errors" "" "every code block of README.md has a readme-test marker"

# The README's data, where its paths point (build/sdafs is the build's binary).
mkdir -p "$T/data" "$T/ckpts/peft/epoch_0_step_200" "$T/ckpts/epoch_0_step_1000"
$GEN "$T/data/Nemotron-H-MoE" --kind moe --mtp --shards 2 >/dev/null
$GEN "$T/data/hf" --kind moe --shards 2 >/dev/null
$GEN "$T/data/qwen3-moe" --family qwen3_moe >/dev/null
$GEN "$T/hf-for-dcp" --kind moe >/dev/null
$PY "$REPO/tests/fixtures/gen_dcp.py" "$T/hf-for-dcp" "$T/ckpts/epoch_0_step_1000/model" >/dev/null
$PY "$REPO/tests/fixtures/gen_peft.py" "$T/ckpts/peft/epoch_0_step_200/model" --layout native >/dev/null
for it in "${items[@]}"; do
	[[ $it == MKDIR$'\t'* ]] && mkdir -p "${it#MKDIR$'\t'}"
done

# mount(8) runs /sbin/mount.sdafs: this build's helper, unless another sdafs is installed there.
helper_ours=0
if [ ! -e /sbin/mount.sdafs ] || [ "$(readlink /sbin/mount.sdafs)" = "$FAST/mount.sdafs" ]; then
	ln -sf "$FAST/mount.sdafs" /sbin/mount.sdafs && helper_ours=1
fi
unmount_all() { # every sdafs mount below $T, and wait for the daemons to go
	local m
	for m in $(awk -v t="$T/" 'index($5, t) == 1 && / - fuse\.sdafs / { print $5 }' /proc/self/mountinfo); do
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	for _ in $(seq 100); do pgrep -f "$T/" >/dev/null || return 0; sleep 0.05; done
}
trap 'unmount_all; [ $helper_ours = 1 ] && rm -f /sbin/mount.sdafs; cleanup' EXIT

# srun, as it starts one task per rank with SLURM_PROCID and SLURM_NTASKS set.
SRUN='srun() {
	local n=1 r rc=0
	while [ $# -gt 0 ]; do case $1 in
		--ntasks-per-node=*|--ntasks=*) n=${1#*=}; shift ;;
		-n) n=$2; shift 2 ;;
		-*) shift ;;
		*) break ;;
	esac; done
	for ((r = 0; r < n; r++)); do SLURM_PROCID=$r SLURM_NTASKS=$n "$@" || rc=1; done
	return $rc
}'

run_command() { # run_command LINE ORIGINAL COMMAND
	local line=$1 orig=$2 cmd=$3
	if [[ $cmd == *"mount -t sdafs"* ]] && [ $helper_ours = 0 ]; then
		TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$line: /sbin/mount.sdafs belongs to an installed sdafs"
		return
	fi
	(cd "$REPO" && bash -c "$SRUN"$'\n'"$cmd") >"$T/cmd.out" 2>&1
	ok $? "README:$line: ${orig%%  *}" || diag "$T/cmd.out"
}

fstab_entry() { # fstab_entry LINE ENTRY: mount it as mount(8) does from /etc/fstab
	local line=$1 entry=$2 where
	where=$(awk '{ print $2 }' <<<"$entry")
	echo "$entry" >"$T/fstab"
	if [ $helper_ours = 0 ]; then
		TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$line: /sbin/mount.sdafs belongs to an installed sdafs"
		return
	fi
	mount -T "$T/fstab" "$where" >"$T/cmd.out" 2>&1 && is_mounted "$where"
	ok $? "README:$line: the /etc/fstab line mounts (mount -T FSTAB $where)" || diag "$T/cmd.out"
}

systemd_unit() {        # systemd_unit LINE FILE: verify it, then mount it as systemd does
	local line=$1 unit=$2 what where type opts name
	what=$(sed -n 's/^What=//p' "$unit"); where=$(sed -n 's/^Where=//p' "$unit")
	type=$(sed -n 's/^Type=//p' "$unit"); opts=$(sed -n 's/^Options=//p' "$unit")
	if command -v systemd-analyze >/dev/null && command -v systemd-escape >/dev/null; then
		name=$(systemd-escape --path "$where").mount
		cp "$unit" "$T/$name"
		systemd-analyze verify "$T/$name" >"$T/verify.out" 2>&1 && [ ! -s "$T/verify.out" ]
		ok $? "README:$line: systemd-analyze verify accepts the unit (as $name)" || diag "$T/verify.out"
	else
		TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$line: no systemd-analyze"
	fi
	if [ $helper_ours = 0 ]; then
		TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$line: /sbin/mount.sdafs belongs to an installed sdafs"
		return
	fi
	mount "$what" "$where" -t "$type" -o "$opts" >"$T/cmd.out" 2>&1 && is_mounted "$where"
	ok $? "README:$line: the unit mounts as systemd mounts it (mount What Where -t $type -o $opts)" || diag "$T/cmd.out"
}

finish_block() {        # the block that was read: fstab or unit text is used now; then a clean slate
	case $kind in
	systemd-unit) systemd_unit "$start" "$T/unit" ;;
	esac
	unmount_all
}

kind= start=
: >"$T/unit"
for it in "${items[@]}"; do
	IFS=$'\t' read -r tag a b c <<<"$it"
	case $tag in
	BLOCK)
		[ -n "$kind" ] && finish_block
		kind=$b start=$a
		: >"$T/unit"
		[ "$kind" = skip ] && { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$a: $c"; }
		;;
	CMD) run_command "$a" "$b" "$c" ;;
	SKIP) TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip README:$a: ${b%%  *}: $c" ;;
	TEXT)
		if [ "$kind" = fstab ] && [[ $b == /* ]]; then fstab_entry "$a" "$b"; fi
		[ "$kind" = systemd-unit ] && echo "$b" >>"$T/unit"
		;;
	esac
done
[ -n "$kind" ] && finish_block
done_testing
