#!/bin/bash
# NeMo Automodel's sharded training checkpoints (model/ with one shard per
# rank, tensors split into chunks, DCP_SHARDING_INFO, .hf_metadata/): the
# mount is the consolidated HF checkpoint offline consolidation would write,
# in the files fqn_to_file_index_mapping gives and the dtypes
# fqn_to_dtype_mapping gives; view=native chains on to the native layout;
# malformed shard sets fail naming the tensor.
. "$(dirname "$0")/lib.sh"
DCP="$PY $REPO/tests/fixtures/gen_dcp.py"
CONS="$PY $REPO/tests/ref/check_consolidated.py"
# name | gen_dcp options | check_consolidated options
cases=(
	"default||"
	"three-ranks-dim0|--ranks 3 --split-dims 0|"
	"any-tiling|--ranks 5 --split-dims any|"
	"no-mapping|--no-mapping|--no-mapping"
	"fp32-saved|--dtype-map fp32|--dtype-map fp32"
)
breaks=(gap overlap dtype rank offsets-missing outside)
plan $(( ${#cases[@]} * 2 + 3 + ${#breaks[@]} * 2 ))

$GEN "$T/hf" --kind moe --mtp --shards 2 >/dev/null
for c in "${cases[@]}"; do
	IFS='|' read -r name gopts copts <<<"$c"
	$DCP "$T/hf" "$T/$name" $gopts >/dev/null
	mount_view "$T/$name" "$T/m-$name"
	$CONS "$T/m-$name" "$T/hf" --dcp "$T/$name" $copts >"$T/$name.check" 2>&1
	ok $? "$name: the mount is the consolidated HF checkpoint" || diag "$T/$name.check"
	unmount_view "$T/m-$name"
	ok $? "$name: unmounts cleanly, sanitizer log clean"
done

# Chaining: the same sharded save straight to the native layout.
# The reference is the HF checkpoint without its README (.hf_metadata has none).
mkdir -p "$T/hf-nr" && cp "$T"/hf/* "$T/hf-nr/" && rm -f "$T/hf-nr/README.md"
mount_view "$T/default" "$T/nat" -o view=native
ok $? "view=native mounts the sharded save"
$CHECK "$T/nat" "$T/hf-nr" >"$T/nat.check" 2>&1
ok $? "and equals the reference from_hf of the original HF checkpoint" || diag "$T/nat.check"
unmount_view "$T/nat"
ok $? "unmounts cleanly, sanitizer log clean"

for kind in "${breaks[@]}"; do
	out=$($DCP "$T/hf" "$T/bad-$kind" --break "$kind")
	tensor=$(echo "$out" | awk '$1 == "BROKEN" {print $3}')
	"$SDAFS" --inspect "$T/bad-$kind" >/dev/null 2>"$T/bad-$kind.err"
	grep -q "$tensor" "$T/bad-$kind.err" && ! "$SDAFS" --inspect "$T/bad-$kind" >/dev/null 2>&1
	ok $? "$kind: the mount is refused, naming the tensor ($tensor)" || diag "$T/bad-$kind.err"
	! grep -qE "ERROR: AddressSanitizer|runtime error" "$T/bad-$kind.err"
	ok $? "$kind: no sanitizer complaint"
done
done_testing
