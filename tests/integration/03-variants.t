#!/bin/bash
# Checkpoint variants: dense Nemotron-H (pure rename, *_scale_inv kept), a
# single unindexed file, F32 experts cast to the config dtype and to every
# -o dtype= override (round to nearest even, special values included), and
# a config without torch_dtype (bf16 default).  Each view equals the
# independent reference byte for byte.
. "$(dirname "$0")/lib.sh"
plan 16

check() {       # check NAME SRC [--dtype D] -- [sdafs options]
	local name=$1 src=$2 dt="auto"
	shift 2
	if [ "${1:-}" = "--dtype" ]; then dt=$2; shift 2; fi
	[ "${1:-}" = "--" ] && shift
	mount_view "$src" "$T/$name" "$@"
	ok $? "$name: mounts" || { diag "$T/$name.log"; return; }
	$CHECK "$T/$name" "$src" --dtype "$dt" >"$T/$name.check" 2>&1
	ok $? "$name: every byte equals the reference" || diag "$T/$name.check"
	unmount_view "$T/$name"
	ok $? "$name: unmounts cleanly"
}

$GEN "$T/dense" --kind dense --scale-inv --special-values --shards 2 >/dev/null
check dense "$T/dense"

$GEN "$T/single" --kind moe --shards 1 --no-index >/dev/null
check single "$T/single"

$GEN "$T/f32" --kind moe --expert-dtype f32 --special-values --shards 2 >/dev/null
check f32-auto "$T/f32"
check f32-fp16 "$T/f32" --dtype fp16 -- -o dtype=fp16
check f32-fp32 "$T/f32" --dtype fp32 -- -o dtype=fp32

$GEN "$T/nodtype" --kind moe --expert-dtype f32 --torch-dtype none >/dev/null
"$SDAFS" --inspect --json "$T/nodtype" | $PY -c '
import json, sys
plan = json.load(sys.stdin)
grouped = [t for f in plan["files"] for t in f["tensors"] if t["name"].endswith("_projs")]
sys.exit(0 if grouped and all(t["dtype"] == "BF16" for t in grouped) else 1)'
ok $? "no torch_dtype in config.json: merged experts default to BF16"
done_testing
