#!/usr/bin/python3
"""gen_many_shards.py OUTDIR [--shards 1000] [--tensors 100000] [--experts 128]

A Nemotron-H MoE checkpoint (HuggingFace layout) with many shards and many
tensors but tiny data, for the bench's mount + `ls -l` timing: what matters
there is the number of files and safetensors headers, not the bytes.

Standard library only.  The model is a valid NemotronHForCausalLM: config.json
as tests/fixtures/gen_checkpoint.py writes it (hidden 32, expert width 8,
--experts routed experts), a hybrid_override_pattern of Mamba (M), MoE (E),
attention (*) and MLP (-) blocks chosen so the checkpoint holds exactly
--tensors tensors, split in state-dict order over --shards files
model-0000K-of-0NNNN.safetensors plus model.safetensors.index.json.  Tensor
bytes are a constant bf16 pattern (0x3c00 ~ 0.0078), written with the header.
"""

import argparse
import json
import os
import struct
import sys

H = 32            # hidden
MOE_I = 8         # moe_intermediate_size
SHARED_I = 16     # moe_shared_expert_intermediate_size
INTER = 64        # intermediate_size (dense MLP)
VOCAB = 256
MAMBA_HEADS, MAMBA_HD, N_GROUPS, SSM, CONV_K = 1, 32, 1, 16, 4
ATTN_HEADS, KV_HEADS, HEAD_DIM = 1, 1, 32

# tensors per block type
COUNT = {"M": 9, "*": 5, "-": 3}


def count_e(experts):
    return 5 + 2 * experts      # norm, gate.weight, bias, 2 per expert, 2 shared


def block(prefix, kind, experts):
    """(name, dtype, shape) of one block, in gen_checkpoint.py's order."""
    m = prefix + "mixer."
    out = [(prefix + "norm.weight", "BF16", [H])]
    if kind == "M":
        conv = MAMBA_HEADS * MAMBA_HD + 2 * N_GROUPS * SSM
        out += [
            (m + "in_proj.weight", "BF16", [2 * MAMBA_HEADS * MAMBA_HD + 2 * N_GROUPS * SSM + MAMBA_HEADS, H]),
            (m + "conv1d.weight", "BF16", [conv, 1, CONV_K]),
            (m + "conv1d.bias", "BF16", [conv]),
            (m + "A_log", "BF16", [MAMBA_HEADS]),
            (m + "dt_bias", "BF16", [MAMBA_HEADS]),
            (m + "D", "F32", [MAMBA_HEADS]),
            (m + "norm.weight", "BF16", [MAMBA_HEADS * MAMBA_HD]),
            (m + "out_proj.weight", "BF16", [H, MAMBA_HEADS * MAMBA_HD]),
        ]
    elif kind == "*":
        out += [
            (m + "q_proj.weight", "BF16", [ATTN_HEADS * HEAD_DIM, H]),
            (m + "k_proj.weight", "BF16", [KV_HEADS * HEAD_DIM, H]),
            (m + "v_proj.weight", "BF16", [KV_HEADS * HEAD_DIM, H]),
            (m + "o_proj.weight", "BF16", [H, ATTN_HEADS * HEAD_DIM]),
        ]
    elif kind == "-":
        out += [(m + "up_proj.weight", "BF16", [INTER, H]), (m + "down_proj.weight", "BF16", [H, INTER])]
    else:
        out += [(m + "gate.weight", "BF16", [experts, H]),
                (m + "gate.e_score_correction_bias", "F32", [experts])]
        for e in range(experts):
            out += [(m + "experts.%d.up_proj.weight" % e, "BF16", [MOE_I, H]),
                    (m + "experts.%d.down_proj.weight" % e, "BF16", [H, MOE_I])]
        out += [(m + "shared_experts.up_proj.weight", "BF16", [SHARED_I, H]),
                (m + "shared_experts.down_proj.weight", "BF16", [H, SHARED_I])]
    return out


def pattern_for(tensors, experts):
    """A pattern of (ME)* pairs plus a few M/*/- blocks with exactly `tensors`
    tensors (3 more: embeddings, norm_f, lm_head)."""
    rest = tensors - 3 - COUNT["*"]         # one attention block always
    pair = COUNT["M"] + count_e(experts)
    pairs = rest // pair
    while pairs > 0:
        left = rest - pairs * pair
        for n_m in range(0, 40):
            for n_a in range(0, 10):
                r = left - n_m * COUNT["M"] - n_a * COUNT["*"]
                if r >= 0 and r % COUNT["-"] == 0:
                    # interleave: ME pairs, the attention block early, extras at the end
                    pat = "ME" * min(pairs, 2) + "*" + "ME" * (pairs - min(pairs, 2))
                    return pat + "M" * n_m + "*" * n_a + "-" * (r // COUNT["-"])
        pairs -= 1
    sys.exit("gen_many_shards: cannot make %d tensors with %d experts" % (tensors, experts))


def config(pattern, experts):
    cfg = {
        "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "chunk_size": 128,
        "conv_kernel": CONV_K, "eos_token_id": 2, "head_dim": HEAD_DIM, "hidden_dropout": 0.0,
        "hidden_size": H, "hybrid_override_pattern": pattern, "initializer_range": 0.02,
        "intermediate_size": INTER, "layer_norm_epsilon": 1e-05, "mamba_head_dim": MAMBA_HD,
        "mamba_hidden_act": "silu", "mamba_num_heads": MAMBA_HEADS, "max_position_embeddings": 4096,
        "mlp_bias": False, "mlp_hidden_act": "relu2", "moe_intermediate_size": MOE_I,
        "moe_shared_expert_intermediate_size": SHARED_I, "n_groups": N_GROUPS,
        "num_attention_heads": ATTN_HEADS, "num_hidden_layers": len(pattern),
        "num_key_value_heads": KV_HEADS, "pad_token_id": 0, "residual_in_fp32": False,
        "rms_norm_eps": 1e-05, "ssm_state_size": SSM, "tie_word_embeddings": False,
        "use_bias": False, "use_cache": True, "use_conv_bias": True, "vocab_size": VOCAB,
        "n_routed_experts": experts, "num_experts_per_tok": min(2, experts), "n_group": 1,
        "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "torch_dtype": "bfloat16", "transformers_version": "4.55.0",
    }
    return dict(sorted(cfg.items()))


ITEM = {"BF16": 2, "F32": 4}


def nbytes(dtype, shape):
    n = ITEM[dtype]
    for d in shape:
        n *= d
    return n


def write_shard(path, items):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in items:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(b"\x00\x3c" * (off // 2))
    return off


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("outdir")
    p.add_argument("--shards", type=int, default=1000)
    p.add_argument("--tensors", type=int, default=100000)
    p.add_argument("--experts", type=int, default=128)
    a = p.parse_args()
    pattern = pattern_for(a.tensors, a.experts)
    items = [("backbone.embeddings.weight", "BF16", [VOCAB, H])]
    for i, kind in enumerate(pattern):
        items += block("backbone.layers.%d." % i, kind, a.experts)
    items += [("backbone.norm_f.weight", "BF16", [H]), ("lm_head.weight", "BF16", [VOCAB, H])]
    assert len(items) == a.tensors, (len(items), a.tensors)
    if a.shards > len(items):
        sys.exit("gen_many_shards: more shards than tensors")
    os.makedirs(a.outdir, exist_ok=True)
    weight_map, total = {}, 0
    width = max(5, len(str(a.shards)))
    for k in range(a.shards):
        lo, hi = k * len(items) // a.shards, (k + 1) * len(items) // a.shards
        name = "model-%0*d-of-%0*d.safetensors" % (width, k + 1, width, a.shards)
        total += write_shard(os.path.join(a.outdir, name), items[lo:hi])
        for it in items[lo:hi]:
            weight_map[it[0]] = name
    with open(os.path.join(a.outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.outdir, "config.json"), "w") as f:
        json.dump(config(pattern, a.experts), f, indent=2)
        f.write("\n")
    print("gen_many_shards: %s: %d tensors, %d bytes of tensor data in %d files, %d layers"
          % (a.outdir, len(items), total, a.shards, len(pattern)))


if __name__ == "__main__":
    main()
