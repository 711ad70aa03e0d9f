#!/bin/bash
# Every seed family, and two families described only by example tables,
# both ways through real mounts: the HF source's native view equals the
# reference from_hf; its materialized copy, mounted again, shows an HF view
# equal to the reference to_hf of that copy; HF -> native -> HF reproduces the
# source except for the differences Automodel itself makes, both through a
# copy and through a view of a view.
. "$(dirname "$0")/lib.sh"

RT="$PY $REPO/tests/ref/roundtrip_diff.py"
# name | family | generator options | sdafs options
cases=(
	"nemotron-moe|nemotron_h|--mtp --extra-layer --scale-inv --special-values --shards 3|"
	"nemotron-dense|nemotron_h|--kind dense --scale-inv --shards 2|"
	"step3p5|step3p5|--special-values --shards 2|"
	"step3p5-unprefixed|step3p5|--no-model-prefix|"
	"omni|nemotron_omni|--scale-inv --shards 2|"
	"qwen3-moe|qwen3_moe|--special-values|-o adapter_file=$REPO/examples/adapters/qwen3_moe.json"
	"mixtral|mixtral|--shards 2|-o adapter_file=$REPO/examples/adapters/mixtral.json"
)
plan $(( ${#cases[@]} * 7 + 9 ))

for c in "${cases[@]}"; do
	IFS='|' read -r name fam gen opts <<<"$c"
	d=$T/$name
	$GEN "$d/hf" --family "$fam" $gen >/dev/null
	mount_view "$d/hf" "$d/nat" $opts
	$CHECK "$d/nat" "$d/hf" --family "$fam" >"$d/check1" 2>&1
	ok $? "$name: the native view equals the reference from_hf" || diag "$d/check1"
	cp -r "$d/nat" "$d/natcopy"
	unmount_view "$d/nat"
	ok $? "$name: unmounts cleanly"
	mount_view "$d/natcopy" "$d/hf2" $opts
	ok $? "$name: the materialized native copy mounts (auto-detected as native)"
	$CHECK "$d/hf2" "$d/natcopy" --family "$fam" --direction to_hf >"$d/check2" 2>&1
	ok $? "$name: its HF view equals the reference to_hf" || diag "$d/check2"
	$RT "$d/hf" "$d/hf2" --family "$fam" >"$d/rt" 2>&1
	ok $? "$name: HF -> native -> HF reproduces the source but for Automodel's own differences" || diag "$d/rt"
	unmount_view "$d/hf2"
	# A view of a view: the native mount is the source of an HF mount.
	mount_view "$d/hf" "$d/v1" $opts && mount_view "$d/v1" "$d/v2" $opts
	$RT "$d/hf" "$d/v2" --family "$fam" >"$d/rt2" 2>&1
	ok $? "$name: mounting the native view as HF (a view of a view) round-trips too" || diag "$d/rt2"
	unmount_view "$d/v2" && unmount_view "$d/v1"
	ok $? "$name: both stacked mounts unmount cleanly"
done

# dtype in HF views: an fp32 native checkpoint published as bf16.
d=$T/dtype
$GEN "$d/hf" --mtp >/dev/null
mount_view "$d/hf" "$d/nat" -o dtype=fp32 && cp -r "$d/nat" "$d/nat32" && unmount_view "$d/nat"
mount_view "$d/nat32" "$d/bf16" -o dtype=bf16
$CHECK "$d/bf16" "$d/nat32" --direction to_hf --dtype bf16 >"$d/check" 2>&1
ok $? "dtype=bf16 on an fp32 native checkpoint casts all but the F32-kept tensors" || diag "$d/check"
unmount_view "$d/bf16"
mount_view "$d/nat32" "$d/auto"
$CHECK "$d/auto" "$d/nat32" --direction to_hf >"$d/check-auto" 2>&1
ok $? "dtype=auto in an HF view casts nothing beyond Automodel's F32" || diag "$d/check-auto"
unmount_view "$d/auto"

# Expert parallel HF view of a native checkpoint: global expert ids.
mount_view "$d/nat32" "$d/ep" -o ep_rank=1,ep_size=3
$CHECK "$d/ep" "$d/nat32" --direction to_hf --ep-rank 1 --ep-size 3 >"$d/check-ep" 2>&1
ok $? "ep_rank=1,ep_size=3: the HF view holds that rank's experts under global ids" || diag "$d/check-ep"
unmount_view "$d/ep"

# Direction detection and its errors.
"$SDAFS" --inspect -o view=native "$d/nat32" >/dev/null 2>"$d/err1"
[ $? -ne 0 ] && grep -q "already in the native layout" "$d/err1"
ok $? "view=native on a native checkpoint is refused with a message" || diag "$d/err1"
"$SDAFS" --inspect -o view=hf "$d/hf" >/dev/null 2>"$d/err2"
[ $? -ne 0 ] && grep -q "already in the HF layout" "$d/err2"
ok $? "view=hf on an HF checkpoint is refused with a message" || diag "$d/err2"
mkdir -p "$d/mixed"
cp "$d/hf/config.json" "$d/mixed/"
cp "$d/hf/model-00001-of-00002.safetensors" "$d/mixed/a.safetensors"
cp "$d/nat32/model-00002-of-00002.safetensors" "$d/mixed/b.safetensors"
"$SDAFS" --inspect "$d/mixed" >/dev/null 2>"$d/err3"
[ $? -ne 0 ] && grep -q "mixes HF keys" "$d/err3" && grep -q "nemotron_h" "$d/err3"
ok $? "a checkpoint mixing HF and native keys is refused, naming an example of each" || diag "$d/err3"
"$SDAFS" --inspect -o adapter=step3p5 "$d/hf" >/dev/null 2>"$d/err4"
[ $? -ne 0 ] && grep -q "no tensor name fits step3p5" "$d/err4" && grep -q "supported adapters" "$d/err4"
ok $? "keys that fit neither layout of the chosen adapter are refused, listing the adapters" || diag "$d/err4"
"$SDAFS" --list-adapters >"$d/list"
grep -q "^nemotron_h " "$d/list" && grep -q "^step3p5 " "$d/list" && grep -q "^nemotron_omni " "$d/list"
ok $? "--list-adapters lists the built-in families"
printf '{"name": "broken", "hf_to_native": [{"op": "rename", "match": "(", "to": "x"}]}' >"$d/broken.json"
"$SDAFS" --inspect -o adapter_file="$d/broken.json" "$d/hf" >/dev/null 2>"$d/err5"
[ $? -ne 0 ] && grep -q "hf_to_native rule 1" "$d/err5"
ok $? "an adapter_file with a bad rule points at the rule" || diag "$d/err5"
done_testing
