#!/bin/bash
# sdafs convert writes, without mounting, exactly the files a mount with the
# same options shows: for every family and direction the suite mounts, the
# directory it writes equals cp -r of the mount (diff -r, byte for byte), and
# --all-ranks equals each rank's mount while reading the source once.  DST
# appears whole or not at all: a bad source, an interrupted or killed run, a
# DST that is not empty leave nothing under its name, a killed run's
# leftover is cleaned by the next one, --force replaces.  Progress on a
# terminal (script) and on a pipe; no /dev/fuse needed.
. "$(dirname "$0")/lib.sh"
DCP="$PY $REPO/tests/fixtures/gen_dcp.py"
PEFT="$PY $REPO/tests/fixtures/gen_peft.py"
# The mounts only give the expected bytes (other tests check them against
# the reference): the optimised build is enough there.  convert runs under
# the sanitizers.
FAST=${SDAFS_FAST_BUILD:-$BUILD}/sdafs
EX=$REPO/examples/adapters

# same_as_mount NAME SRC [sdafs options]: convert's DST is cp -r of the mount (1 test)
same_as_mount() {
	local name=$1 src=$2
	shift 2
	if ! SDAFS=$FAST mount_view "$src" "$T/m-$name" "$@"; then
		ok 1 "$name: mounts"
		diag "$T/m-$name.log"
		return
	fi
	cp -r "$T/m-$name" "$T/want-$name"
	unmount_view "$T/m-$name"
	"$SDAFS" convert -q "$@" "$src" "$T/$name" >"$T/$name.err" 2>&1 &&
		diff -r "$T/want-$name" "$T/$name" >"$T/$name.diff" 2>&1
	ok $? "$name: convert writes exactly what cp -r of the mount holds" ||
		diag "$T/$name.err" "$T/$name.diff"
	rm -rf "$T/want-$name"
}

# name | generator | generator options | sdafs options
families=(
	"moe|$GEN|--kind moe --mtp --extra-layer --scale-inv --special-values --shards 3|"
	"dense|$GEN|--kind dense --scale-inv --special-values --shards 2|"
	"single|$GEN|--kind moe --shards 1 --no-index|"
	"f32|$GEN|--kind moe --expert-dtype f32 --special-values --shards 2|"
	"step3p5|$GEN|--family step3p5 --special-values --shards 2|"
	"step3p5-unprefixed|$GEN|--family step3p5 --no-model-prefix|"
	"omni|$GEN|--family nemotron_omni --scale-inv --shards 2|"
	"qwen3-moe|$GEN|--family qwen3_moe --special-values|-o adapter_file=$EX/qwen3_moe.json"
	"mixtral|$GEN|--family mixtral --shards 2|-o adapter_file=$EX/mixtral.json"
	"deepseek|$GEN|--family deepseek_v3 --hidden 192 --moe-inter 96 --special-values --shards 2|"
	"gpt-oss|$GEN|--family gpt_oss --hidden 192 --moe-inter 96 --special-values --shards 2|"
	"gpt-oss-bf16|$GEN|--family gpt_oss --hidden 192 --moe-inter 96 --no-quant|"
	"llama-tied|$GEN|--family llama --tied --special-values --shards 2|"
)
# name | source under $T (a generated one, or a directory convert wrote above)
# | sdafs options: the same sources another way
variants=(
	"f32-fp16|src-f32|-o dtype=fp16"
	"moe-fp32|src-moe|-o dtype=fp32"
	"moe-fp32-bf16|moe-fp32|-o dtype=bf16"
	"moe-hf-ep|moe|-o ep_rank=1,ep_size=3"
	"deepseek-ep|src-deepseek|-o ep_rank=1,ep_size=3"
	"deepseek-fp16|src-deepseek|-o dtype=fp16,backend=cpu"
	"llama-hf|src-llama-tied|-o view=hf"
)
# Automodel sharded saves and PEFT adapters: name | generator options | sdafs options
dcps=(
	"dcp|--ranks 2|"
	"dcp-any|--ranks 5 --split-dims any|"
	"dcp-fp32|--dtype-map fp32|"
	"dcp-native|--ranks 3|-o view=native"
)
pefts=(
	"peft-native-v5|--layout native --dora|"
	"peft-native-v4|--layout native --dora|-o peft=v4"
	"peft-v5|--layout v5 --dora|"
	"peft-v4|--layout v4 --legacy-dora|"
	"peft-v4-incomplete|--layout v4 --incomplete|"
)
backs=(moe step3p5 step3p5-unprefixed omni qwen3-moe mixtral deepseek gpt-oss llama-tied)
plan $(( ${#families[@]} + ${#variants[@]} + ${#dcps[@]} + 1 + ${#pefts[@]} + ${#backs[@]} + 31 ))

opts_of() {     # the sdafs options of family NAME
	local c
	for c in "${families[@]}"; do
		IFS='|' read -r n _ _ o <<<"$c"
		[ "$n" = "$1" ] && echo "$o"
	done
}

for c in "${families[@]}"; do
	IFS='|' read -r name gen gopts opts <<<"$c"
	$gen "$T/src-$name" $gopts >/dev/null
	same_as_mount "$name" "$T/src-$name" $opts
done
for c in "${variants[@]}"; do
	IFS='|' read -r name src opts <<<"$c"
	same_as_mount "$name" "$T/$src" $opts
done
for c in "${dcps[@]}"; do
	IFS='|' read -r name gopts opts <<<"$c"
	$DCP "$T/src-moe" "$T/src-$name" $gopts >/dev/null
	same_as_mount "$name" "$T/src-$name" $opts
done
$DCP "$T/src-llama-tied" "$T/src-dcp-tied" --ranks 3 >/dev/null
same_as_mount dcp-tied-native "$T/src-dcp-tied" -o view=native
for c in "${pefts[@]}"; do
	IFS='|' read -r name gopts opts <<<"$c"
	$PEFT "$T/src-$name" $gopts >/dev/null
	same_as_mount "$name" "$T/src-$name" $opts
done
# The other direction: each native directory convert wrote, as the source.
for name in "${backs[@]}"; do
	opts=$(opts_of "$name")
	[ "$name" = llama-tied ] && opts="-o view=hf"
	same_as_mount "$name-back" "$T/$name" $opts
done

# --all-ranks: one run writes every rank's view, each equal to its mount,
# and reads the source once (as much as one whole view reads).
"$SDAFS" convert -o ep_size=3 --all-ranks "$T/src-moe" "$T/ranks" >"$T/ranks.err" 2>&1
ok $? "--all-ranks with ep_size=3 converts" || diag "$T/ranks.err"
is "$(ls "$T/ranks" | tr '\n' ' ')" "rank-00000 rank-00001 rank-00002 " "it writes rank-00000 .. rank-00002"
for r in 0 1 2; do
	SDAFS=$FAST mount_view "$T/src-moe" "$T/m-rank$r" -o ep_rank=$r,ep_size=3
	diff -r "$T/m-rank$r" "$T/ranks/rank-0000$r" >"$T/rank$r.diff" 2>&1
	ok $? "rank $r equals the mount with ep_rank=$r,ep_size=3" || diag "$T/rank$r.diff"
	unmount_view "$T/m-rank$r"
done
read_of() { sed -n 's/.*; \(.*\) of the source read$/\1/p' "$1"; }
"$SDAFS" convert "$T/src-moe" "$T/whole" >"$T/whole.err" 2>&1
is "$(read_of "$T/ranks.err")" "$(read_of "$T/whole.err")" \
	"three ranks read as many source bytes as one whole view: each once"

# A bad source is refused with the mount's message; nothing is created.
cp -r "$T/src-moe" "$T/bad"
$PY "$REPO/tests/fixtures/break_checkpoint.py" "$T/bad" missing-expert
mkdir -p "$T/out"
"$SDAFS" convert "$T/bad" "$T/out/dst" 2>"$T/bad.err"
rc=$?
"$SDAFS" --inspect "$T/bad" >/dev/null 2>"$T/bad-mount.err"
[ $rc -eq 1 ] && grep -q "expert weights missing" "$T/bad.err" && cmp -s "$T/bad.err" "$T/bad-mount.err"
ok $? "a bad source: exit 1 with the mount's message" || diag "$T/bad.err"
is "$(ls -A "$T/out")" "" "and nothing is created beside DST"

# An existing DST: refused when not empty, replaced with --force.
mkdir -p "$T/full" && echo keep >"$T/full/mine.txt"
"$SDAFS" convert "$T/src-dense" "$T/full" 2>"$T/full.err"
[ $? -eq 1 ] && grep -q "not empty" "$T/full.err" && [ "$(cat "$T/full/mine.txt")" = keep ]
ok $? "a DST that is not empty is refused and left as it was" || diag "$T/full.err"
"$SDAFS" convert -q --force "$T/src-dense" "$T/full" 2>"$T/force.err" &&
	diff -r "$T/dense" "$T/full" >"$T/force.diff" 2>&1
ok $? "--force replaces it with the view" || diag "$T/force.err" "$T/force.diff"
mkdir -p "$T/empty"
"$SDAFS" convert -q "$T/src-dense" "$T/empty" 2>"$T/empty.err" && diff -r "$T/dense" "$T/empty" >/dev/null
ok $? "an empty DST is filled"
is "$(ls -A "$T" | grep -c sdafs-tmp)" 0 "no temporary directory is left beside them"
"$SDAFS" convert --force "$T/src-dense" "$T/src-dense" 2>"$T/self.err"
[ $? -eq 1 ] && grep -q "holds the source" "$T/self.err" && [ -f "$T/src-dense/config.json" ]
ok $? "DST that holds the source is refused, even with --force" || diag "$T/self.err"

# Killed in the middle: nothing under DST's name; a second run of the same
# DST while the first is alive is refused; the leftover of the killed one is
# recognisable and the next run cleans it.  -j1 on a larger checkpoint so
# that there is a middle to stop in.
$GEN "$T/big" --kind moe --hidden 512 --experts 16 --moe-inter 512 --pattern MEMEME --shards 4 >/dev/null
# start_big NAME: convert big into out/NAME in the background (pid in $pid)
# and return once it has written tensor bytes into its temporary directory
start_big() {
	"$SDAFS" convert -q -j1 "$T/big" "$T/out/$1" 2>"$T/$1.err" &
	pid=$!
	for _ in $(seq 1 2000); do
		[ -n "$(find "$T/out" -path "*.$1.sdafs-tmp-*" -name '*.safetensors' -size +0 2>/dev/null)" ] &&
			break
		sleep 0.005
	done
}
start_big killed
kill -STOP $pid
[ ! -e "$T/out/killed" ] && ls -A "$T/out" | grep -q '^\.killed\.sdafs-tmp-'
ok $? "mid-way: DST is not there, its temporary directory is beside it"
"$SDAFS" convert -q "$T/big" "$T/out/killed" 2>"$T/second.err"
[ $? -eq 1 ] && grep -q "another sdafs convert is writing it" "$T/second.err"
ok $? "a second run of the same DST is refused while the first is alive" || diag "$T/second.err"
kill -KILL $pid
wait $pid 2>/dev/null
[ ! -e "$T/out/killed" ] && [ "$(ls -A "$T/out" | grep -c '^\.killed\.sdafs-tmp-')" = 1 ]
ok $? "kill -9: no DST, one recognisable leftover"
"$SDAFS" convert -q "$T/big" "$T/out/killed" 2>"$T/again.err"
ok $? "the next run of the same DST succeeds" || diag "$T/again.err"
is "$(ls -A "$T/out" | grep -c sdafs-tmp)" 0 "and removes the leftover"
SDAFS=$FAST mount_view "$T/big" "$T/m-big"
diff -r "$T/m-big" "$T/out/killed" >"$T/big.diff" 2>&1
ok $? "and its DST equals the mount" || diag "$T/big.diff"
unmount_view "$T/m-big"

# SIGTERM: the run stops, removes its temporary directory, exits 1.
start_big termed
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 1 ] && [ ! -e "$T/out/termed" ] && [ "$(ls -A "$T/out" | grep -c sdafs-tmp)" = 0 ]
ok $? "SIGTERM: exit 1, no DST, no temporary directory" || diag "$T/termed.err"

# Progress: a bar redrawn in place on a terminal, plain lines on a pipe.
script -q -c "'$SDAFS' convert -j1 '$T/big' '$T/tty'" /dev/null >"$T/tty.out" 2>&1
grep -q $'\r\[[#.]*\] *[0-9]*%  [0-9.]*/[0-9.]* [KMG]*i*B  .*/s.* [._a-z0-9-]*\(safetensors\|json\)' "$T/tty.out"
ok $? "on a terminal: a bar with bytes, percentage, rate and file, redrawn with \\r" || diag "$T/tty.out"
grep -q "written and synced" "$T/tty.out"
ok $? "then a summary line"
"$SDAFS" convert "$T/src-dense" "$T/piped" 2>&1 | cat >"$T/pipe.out"
! grep -q $'[\r\033]' "$T/pipe.out" && grep -q "^sdafs convert: $T/piped: .* written and synced" "$T/pipe.out"
ok $? "on a pipe: plain lines, no \\r, no escapes, a summary" || diag "$T/pipe.out"
"$SDAFS" convert --quiet "$T/src-dense" "$T/quiet" 2>"$T/quiet.err"
! grep -q "sdafs convert" "$T/quiet.err"
ok $? "--quiet: no progress, no summary" || diag "$T/quiet.err"

# Options: the mount's view options only.
"$SDAFS" convert -o mpi "$T/src-dense" "$T/x1" 2>"$T/o1.err"
[ $? -eq 1 ] && grep -q "mpi is an option of mounts" "$T/o1.err" && [ ! -e "$T/x1" ]
ok $? "-o mpi is refused: an option of mounts" || diag "$T/o1.err"
"$SDAFS" convert --all-ranks "$T/src-dense" "$T/x2" 2>"$T/o2.err"
[ $? -eq 1 ] && grep -q "needs -o ep_size=N" "$T/o2.err"
ok $? "--all-ranks without ep_size is refused" || diag "$T/o2.err"
"$SDAFS" convert -o dtype=fp8 "$T/src-dense" "$T/x3" 2>"$T/o3.err"
[ $? -eq 1 ] && grep -q "dtype=fp8: expected" "$T/o3.err"
ok $? "a bad option value gets the mount's message" || diag "$T/o3.err"
"$SDAFS" convert -o ro "$T/src-dense" "$T/x4" 2>"$T/o4.err"
[ $? -eq 1 ] && grep -q "unknown option 'ro'" "$T/o4.err" && [ ! -e "$T/x4" ]
ok $? "an option sdafs does not know is refused, named" || diag "$T/o4.err"
"$SDAFS" convert --help | grep -q "usage: sdafs convert" && "$SDAFS" --help | grep -q "sdafs convert"
ok $? "sdafs convert --help and sdafs --help describe it"

# Where there is no /dev/fuse at all (a container): the same bytes.
if unshare -m true 2>/dev/null; then
	unshare -m bash -c 'mount -t tmpfs none /dev && [ ! -e /dev/fuse ] && exec "$@"' sh \
		"$SDAFS" convert -q "$T/src-dense" "$T/nofuse" 2>"$T/nofuse.err"
	ok $? "without /dev/fuse convert works" || diag "$T/nofuse.err"
	diff -r "$T/dense" "$T/nofuse" >/dev/null
	ok $? "and writes the same files"
else
	for _ in 1 2; do TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip unshare -m not permitted here"; done
fi
done_testing
