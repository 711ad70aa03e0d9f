#!/bin/bash
# Quantized families through real mounts: DeepSeek-V3 (F8_E4M3 weights with
# 128x128 F32 block scales; the fixture's dims are not multiples of 128, so
# the last blocks are partial) and GPT-OSS (MXFP4 experts).  Each native view
# equals the independent reference from_hf byte for byte (special FP8 codes
# and scales included); its materialized copy mounts as native and shows an
# HF view equal to the reference to_hf (dequantized: sdafs does not
# re-quantize).  A scale of the wrong shape, or blocks without scales, fail
# the mount naming the tensor.
. "$(dirname "$0")/lib.sh"
plan 29

GEN_DS="--family deepseek_v3 --hidden 192 --moe-inter 96 --special-values --shards 2"
GEN_GO="--family gpt_oss --hidden 192 --moe-inter 96 --special-values --shards 2"

both_ways() {   # both_ways NAME SRC FAMILY [sdafs options]: 5 tests
	local name=$1 src=$2 fam=$3
	shift 3
	mount_view "$src" "$T/$name" "$@"
	ok $? "$name: mounts" || { diag "$T/$name.log"; return; }
	$CHECK "$T/$name" "$src" --family "$fam" >"$T/$name.check" 2>&1
	ok $? "$name: the native view equals the reference from_hf" || diag "$T/$name.check"
	cp -r "$T/$name" "$T/$name-copy"
	unmount_view "$T/$name"
	ok $? "$name: unmounts cleanly"
	mount_view "$T/$name-copy" "$T/$name-hf"
	$CHECK "$T/$name-hf" "$T/$name-copy" --family "$fam" --direction to_hf >"$T/$name.check2" 2>&1
	ok $? "$name: the copy's HF view equals the reference to_hf" || diag "$T/$name.check2"
	unmount_view "$T/$name-hf"
	ok $? "$name: the HF view unmounts cleanly"
}

$GEN "$T/ds" $GEN_DS >/dev/null
both_ways deepseek "$T/ds" deepseek_v3

mount_view "$T/ds" "$T/ds-ep" -o ep_rank=1,ep_size=3
$CHECK "$T/ds-ep" "$T/ds" --family deepseek_v3 --ep-rank 1 --ep-size 3 >"$T/ds-ep.check" 2>&1
ok $? "deepseek ep_rank=1,ep_size=3: the rank's dequantized experts" || diag "$T/ds-ep.check"
unmount_view "$T/ds-ep"

mount_view "$T/ds" "$T/ds-f16" -o dtype=fp16
$CHECK "$T/ds-f16" "$T/ds" --family deepseek_v3 --dtype fp16 >"$T/ds-f16.check" 2>&1
ok $? "deepseek dtype=fp16: products rounded to F16 (overflow, subnormals)" || diag "$T/ds-f16.check"
unmount_view "$T/ds-f16"

# Kimi-K2 is DeepSeek-V3 by model_type.
cp -r "$T/ds" "$T/kimi"
$PY - "$T/kimi/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("architectures")
c["model_type"] = "kimi_k2"
json.dump(c, open(sys.argv[1], "w"))
EOF
"$SDAFS" --inspect "$T/kimi" 2>&1 | head -1 | grep -q "adapter deepseek_v3, hf->native"
ok $? "model_type kimi_k2 selects the deepseek_v3 table"

$GEN "$T/go" $GEN_GO >/dev/null
both_ways gpt-oss "$T/go" gpt_oss

$GEN "$T/go-bf16" $GEN_GO --no-quant >/dev/null
both_ways gpt-oss-bf16 "$T/go-bf16" gpt_oss

# config.json of a dequantized view: transformers must not take it for a
# quantized checkpoint.  quantization_config is left out, every other key
# kept in its order (as Python's json reads the mounted file).
config_keys() { # config_keys FILE: the keys of a config.json, in order, as transformers reads them
	/usr/bin/python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))))' "$1"
}
want_keys() {   # want_keys FILE: the same, less quantization_config
	/usr/bin/python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c.pop("quantization_config"); print(" ".join(c))' "$1"
}
mount_view "$T/ds" "$T/ds-cfg"
is "$(config_keys "$T/ds-cfg/config.json")" "$(want_keys "$T/ds/config.json")" \
	"deepseek FP8 -> native: config.json without quantization_config, the other keys in order"
unmount_view "$T/ds-cfg"
mount_view "$T/go" "$T/go-cfg"
is "$(config_keys "$T/go-cfg/config.json")" "$(want_keys "$T/go/config.json")" \
	"gpt-oss MXFP4 -> native: the same"
unmount_view "$T/go-cfg"
$GEN "$T/ds-native" $GEN_DS --layout native >/dev/null
# a native copy whose config still says fp8 (as an older view's copy would)
/usr/bin/python3 - "$T/ds-native/config.json" "$T/ds/config.json" <<'EOF'
import json, sys
c, q = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["quantization_config"]
c["quantization_config"] = q
json.dump(c, open(sys.argv[1], "w"), indent=2)
EOF
mount_view "$T/ds-native" "$T/ds-hf"
is "$(config_keys "$T/ds-hf/config.json")" "$(want_keys "$T/ds-native/config.json")" \
	"the HF view of such a native copy leaves it out too (sdafs does not re-quantize)"
unmount_view "$T/ds-hf"

# Backends: the CPU on request, the GPU on request where there is one (the
# same bytes, counted per backend in .sdafs-stats); without a usable GPU
# backend=cuda refuses the mount, saying why.  The GPU mount runs the
# optimised build: CUDA does not start under AddressSanitizer's layout.
FAST=${SDAFS_FAST_BUILD:-$REPO/build}
mount_view "$T/ds" "$T/cpu" -o backend=cpu
$CHECK "$T/cpu" "$T/ds" --family deepseek_v3 >"$T/cpu.check" 2>&1
ok $? "backend=cpu: the view equals the reference" || diag "$T/cpu.check"
[ "$(stat_field "$T/cpu" backend)" = cpu ] && [ "$(stat_field "$T/cpu" bytes_converted_cuda)" = 0 ] &&
	[ "$(stat_field "$T/cpu" bytes_converted_cpu)" = "$(stat_field "$T/cpu" bytes_converted)" ] &&
	[ "$(stat_field "$T/cpu" bytes_converted)" -gt 0 ]
ok $? "backend=cpu: .sdafs-stats counts every converted byte as the CPU's"
unmount_view "$T/cpu"
if SDAFS=$FAST/sdafs mount_view "$T/ds" "$T/cuda" -o backend=cuda; then
	$CHECK "$T/cuda" "$T/ds" --family deepseek_v3 >"$T/cuda.check" 2>&1
	ok $? "backend=cuda: the view equals the reference" || diag "$T/cuda.check"
	[ "$(stat_field "$T/cuda" backend)" = cuda ] && [ "$(stat_field "$T/cuda" bytes_converted_cuda)" -gt 0 ]
	ok $? "backend=cuda: .sdafs-stats counts the GPU's bytes"
	unmount_view "$T/cuda"
else
	grep -q "backend=cuda: .*\(no usable GPU\|built without CUDA\)" "$T/cuda.log"
	ok $? "backend=cuda without a usable GPU refuses the mount, saying why" || diag "$T/cuda.log"
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N # skip no usable GPU: $(grep -o 'backend=cuda: [^;]*' "$T/cuda.log" | head -1)"
fi

# Malformed: rewrite one tensor's header entry (the data stays the same size).
refused() {     # refused NAME DIR WORDS...: 2 tests
	local name=$1 dir=$2 missing="" w
	shift 2
	mkdir -p "$T/mnt-$name"
	"$SDAFS" "$dir" "$T/mnt-$name" 2>"$T/$name.err"
	local rc=$?
	if is_mounted "$T/mnt-$name"; then fusermount3 -u "$T/mnt-$name"; rc=0; fi
	[ $rc -ne 0 ]
	ok $? "$name: the mount is refused" || diag "$T/$name.err"
	for w in "$@"; do grep -qF -- "$w" "$T/$name.err" || missing="$missing [$w]"; done
	[ -z "$missing" ]
	ok $? "$name: the message names the tensor and the problem" || { echo "#   missing:$missing"; diag "$T/$name.err"; }
}

rewrite() {     # rewrite DIR PYTHON-FN-BODY: edit (name, dtype, shape) entries of every shard
	$PY - "$1" "$2" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["REPO"], "tests", "ref"))
import safetensors_lite as st
d, body = sys.argv[1], sys.argv[2]
exec("def edit(name, dtype, shape):\n" + body)
for fn in sorted(os.listdir(d)):
    if not fn.endswith(".safetensors"):
        continue
    f = st.SafetensorsFile(os.path.join(d, fn))
    arrays = {n: f.array(n, mmap=False) for n in f.order}
    entries = []
    for n in f.order:
        dt, shape, _, _ = f.tensors[n]
        name, dt, shape = edit(n, dt, list(shape))
        arrays[name] = arrays.pop(n).reshape(shape)
        entries.append((name, dt, tuple(shape)))
    st.write_file(os.path.join(d, fn), entries, lambda n: [arrays[n]])
idx = os.path.join(d, "model.safetensors.index.json")
if os.path.exists(idx):
    import json
    j = json.load(open(idx))
    j["weight_map"] = {edit(k, None, [1])[0]: v for k, v in j["weight_map"].items()}
    json.dump(j, open(idx, "w"))
EOF
}
export REPO

cp -r "$T/ds" "$T/bad-scale"
rewrite "$T/bad-scale" '    if name == "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv":
        return name, dtype, shape[::-1]
    return name, dtype, shape'
refused bad-scale "$T/bad-scale" "model.layers.0.self_attn.kv_a_proj_with_mqa.weight" "F32[2,1]" \
	"needs F32[1,2]"

cp -r "$T/go" "$T/no-scales"
rewrite "$T/no-scales" '    if name.endswith("layers.1.mlp.experts.down_proj_scales"):
        return name.replace("_scales", "_scalez"), dtype, shape
    return name, dtype, shape'
refused no-scales "$T/no-scales" "model.layers.1.mlp.experts.down_proj_blocks" \
	"model.layers.1.mlp.experts.down_proj_scales" "not in the checkpoint"
done_testing
