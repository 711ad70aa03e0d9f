#!/bin/bash
# Views read by the real consumers (issue 18): safetensors.safe_open with
# torch tensors over native and HF views of a tied Llama, a Nemotron-H MoE
# and a DeepSeek-V3 FP8 checkpoint, every tensor compared bit for bit with
# the independent reference; transformers loads the tied Llama's HF view and
# its source, and one forward pass gives identical logits.  Skips where
# torch, safetensors or transformers is missing (point SDAFS_PYTHON at a
# python that has them: scripts/gpu-check.sh does on a GPU machine).
. "$(dirname "$0")/lib.sh"
CLIENT="$PY $REPO/tests/integration/real_clients.py"

if ! $PY -c 'import torch, safetensors, transformers' 2>/dev/null; then
	echo "1..0 # skip $PY has no torch, safetensors and transformers"
	exit 0
fi
plan 7

$GEN "$T/llama" --family llama --tied >/dev/null &&
	$GEN "$T/moe" --kind moe >/dev/null &&
	$GEN "$T/dsv3" --family deepseek_v3 >/dev/null &&
	$GEN "$T/moe-native" --kind moe --layout native >/dev/null
ok $? "checkpoints generated"

# client_check NAME SRC VIEW-OPTION DIRECTION
client_check() {
	local m="$T/m-$1"
	if ! mount_view "$2" "$m" -o "$3"; then
		ok 1 "$1: mounts"
		return
	fi
	$CLIENT tensors "$m" "$2" --direction "$4" >"$T/$1.out" 2>&1
	ok $? "$1: every tensor through safetensors.safe_open equals the reference" || diag "$T/$1.out"
}

client_check llama-native "$T/llama" view=native from_hf
client_check moe-native "$T/moe" view=native from_hf
client_check dsv3-native "$T/dsv3" view=native from_hf
client_check moe-hf "$T/moe-native" view=hf to_hf

mount_view "$T/llama" "$T/m-llama-hf" -o view=hf
$CLIENT tensors "$T/m-llama-hf" "$T/llama" --direction to_hf >"$T/llama-hf.out" 2>&1
ok $? "llama-hf: every tensor through safetensors.safe_open equals the reference" || diag "$T/llama-hf.out"
$CLIENT logits "$T/m-llama-hf" "$T/llama" >"$T/logits.out" 2>&1
ok $? "transformers: the tied Llama's HF view gives the source's logits" || diag "$T/logits.out"
