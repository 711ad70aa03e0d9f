#!/bin/bash
# Every CPU kernel path gives the same view.  Each path this CPU has
# (-o cpu=scalar|sse2|avx2|avx512) serves checkpoints whose conversion runs
# every kernel: BF16 and F32 experts transposed (wide enough to be streamed,
# with ragged edges) and the casts F32->BF16, F32->F16, F16->F32 and
# BF16->F32 over special values; each view equals the independent reference
# and .sdafs-stats names the path.  SDAFS_CPU chooses when -o cpu= does not;
# an unknown name and a path the CPU lacks are refused before mounting.
# Paths the CPU lacks are TAP skips.  (The whole suite runs on one path
# with: SDAFS_CPU=scalar make integration.)
. "$(dirname "$0")/lib.sh"
PATHS="scalar sse2 avx2 avx512"
# name, checkpoint, dtype=: every kernel runs in at least one of them
VIEWS="bf16:bf16:auto bf16-to-f32:bf16:fp32 f32:f32:fp32 f32-to-bf16:f32:auto
       f32-to-f16:f32:fp16 f16-to-f32:f16:fp32"
plan $((4 * 6 * 3 + 4))

skip() {        # skip COUNT REASON
	local i
	for i in $(seq 1 "$1"); do
		TAP_N=$((TAP_N + 1))
		echo "ok $TAP_N # skip $2"
	done
}

# experts of 264 x 136: 33 and 17 blocks of 8, 72 KB each
$GEN "$T/bf16" --kind moe --special-values --hidden 264 --moe-inter 136 >/dev/null
$GEN "$T/f32" --kind moe --expert-dtype f32 --special-values --hidden 264 --moe-inter 136 >/dev/null
$GEN "$T/f16" --kind moe --expert-dtype f16 --special-values >/dev/null

check() {       # check PATH NAME SRC DTYPE: three results
	local p=$1 name=$2 src=$3 dt=$4 mnt="$T/$1-$2"
	if ! mount_view "$src" "$mnt" -o "cpu=$p,dtype=$dt"; then
		diag "$mnt.log"
		ok 1 "$p: $name: mounts"
		ok 1 "$p: $name: .sdafs-stats names the path"
		ok 1 "$p: $name: unmounts cleanly"
		return
	fi
	$CHECK "$mnt" "$src" --dtype "$dt" >"$mnt.check" 2>&1
	ok $? "$p: $name: every byte equals the reference" || diag "$mnt.check"
	is "$(stat_field "$mnt" cpu_kernels)" "$p" "$p: $name: .sdafs-stats names the path"
	unmount_view "$mnt"
	ok $? "$p: $name: unmounts cleanly, sanitizer log clean" || diag "$mnt.log"
}

for p in $PATHS; do
	if "$SDAFS" --inspect -o cpu=$p "$T/bf16" >/dev/null 2>"$T/$p.probe"; then
		for v in $VIEWS; do
			IFS=: read -r name src dt <<<"$v"
			check "$p" "$name" "$T/$src" "$dt"
		done
	elif grep -q "has no $p kernels" "$T/$p.probe"; then
		skip 18 "this CPU has no $p kernels"
	else
		diag "$T/$p.probe"
		skip 17 "cannot tell whether this CPU has $p kernels"
		ok 1 "$p: probing the path"
	fi
done

"$SDAFS" -o cpu=avx9000 "$T/bf16" "$T/never" 2>"$T/unknown.err"
[ $? -ne 0 ] && grep -q "cpu=avx9000: unknown kernel path" "$T/unknown.err"
ok $? "an unknown cpu= is refused before mounting, naming the option" || diag "$T/unknown.err"
SDAFS_CPU=avx9000 "$SDAFS" "$T/bf16" "$T/never" 2>"$T/unknown-env.err"
[ $? -ne 0 ] && grep -q "SDAFS_CPU=avx9000: unknown kernel path" "$T/unknown-env.err"
ok $? "an unknown SDAFS_CPU is refused before mounting, naming the variable" ||
	diag "$T/unknown-env.err"

missing=$(for p in $PATHS; do grep -l "has no $p kernels" "$T/$p.probe" >/dev/null 2>&1 && echo "$p"; done | head -1)
if [ -n "$missing" ]; then
	grep -q "this CPU has no $missing kernels (the widest it has:" "$T/$missing.probe"
	ok $? "cpu=$missing, which this CPU lacks, is refused with what it has instead" ||
		diag "$T/$missing.probe"
else
	skip 1 "this CPU has every kernel path"
fi

export SDAFS_CPU=scalar
mount_view "$T/bf16" "$T/env-scalar"
unset SDAFS_CPU
is "$(stat_field "$T/env-scalar" cpu_kernels)" scalar "SDAFS_CPU=scalar chooses the path when cpu= is not given"
unmount_view "$T/env-scalar"
done_testing
