#!/usr/bin/python3
"""Self-test of the reference converter and its casts (TAP output).

The expected values here are written out by hand from the spec, not computed by
the code under test: tiny checkpoints (E=2 experts, H=2, I=3) are built in a
temporary directory and run through automodel_ref.from_hf.
"""

import json
import os
import struct
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import automodel_ref as ref  # noqa: E402
import safetensors_lite as st  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def f32(*vals):
    return np.array(vals, dtype=np.float32)


def bits32(*vals):
    return [int(x) for x in np.array(vals, dtype=np.uint32)]


def hexes(a):
    return [hex(int(x)) for x in np.asarray(a).ravel()]


def write_ckpt(d, config, tensors):
    """tensors: name -> (dtype, numpy storage array)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    entries = [(k, dt, a.shape) for k, (dt, a) in tensors.items()]
    st.write_file(os.path.join(d, "model.safetensors"), entries, lambda n: [tensors[n][1]])


def bf16(*vals):
    """bf16 bit patterns of exactly representable values (hand-checked: no rounding)."""
    u = f32(*vals).view(np.uint32)
    assert np.all(u & 0xFFFF == 0), "not exactly representable in bf16"
    return (u >> 16).astype(np.uint16)


# ------------------------------------------------------------------ casts

@test
def bf16_rne_ties_to_even():
    # 1 + 2^-8 is halfway between 1.0 (0x3F80, even) and 1+2^-7 (0x3F81): rounds down
    # 1 + 3*2^-8 is halfway between 0x3F81 (odd) and 0x3F82 (even): rounds up
    got = st.f32_bits_to_bf16(f32(1 + 2 ** -8, 1 + 3 * 2 ** -8).view(np.uint32))
    assert hexes(got) == ["0x3f80", "0x3f82"], hexes(got)


@test
def bf16_rne_near_ties_and_negative():
    got = st.f32_bits_to_bf16(bits32(0x3F808001, 0x3F807FFF, 0xBF818000, 0x3F80FFFF))
    assert hexes(got) == ["0x3f81", "0x3f80", "0xbf82", "0x3f81"], hexes(got)


@test
def bf16_nan_is_canonical_7fc0():
    got = st.f32_bits_to_bf16(bits32(0x7FC00000, 0xFFC00001, 0x7F800001, 0xFFFFFFFF))
    assert hexes(got) == ["0x7fc0"] * 4, hexes(got)


@test
def bf16_inf_zero_overflow_subnormal():
    # +-Inf stay, +-0 stay, max finite rounds to Inf, 0x7F7F7FFF stays finite (0x7F7F),
    # tie at 0x7F7F8000 (odd lsb) rounds up to Inf, smallest subnormal -> 0,
    # subnormal ties: 0x00008000 -> 0 (even), 0x00018000 -> 0x0002
    got = st.f32_bits_to_bf16(bits32(0x7F800000, 0xFF800000, 0, 0x80000000, 0x7F7FFFFF, 0xFF7FFFFF,
                                     0x7F7F7FFF, 0x7F7F8000, 0x00000001, 0x00008000, 0x00018000))
    want = ["0x7f80", "0xff80", "0x0", "0x8000", "0x7f80", "0xff80",
            "0x7f7f", "0x7f80", "0x0", "0x0", "0x2"]
    assert hexes(got) == want, hexes(got)


@test
def bf16_to_f32_is_a_shift():
    got = st.bf16_to_f32_bits(np.array([0x3F80, 0xFFC1, 0x7F81, 0x0001, 0x8000], dtype=np.uint16))
    assert hexes(got) == ["0x3f800000", "0xffc10000", "0x7f810000", "0x10000", "0x80000000"], hexes(got)


@test
def f16_rounding_overflow_and_nan():
    # 65504 = f16 max; 65520 is the tie between max and 2^16 -> Inf; 2^-25 ties -> 0;
    # 3*2^-25 ties between 1 and 2 ulp -> 2 (0x0002); 1+2^-11 -> 1.0; 1+3*2^-11 -> 0x3C02;
    # NaN -> sign | 0x7E00
    got = st.f32_bits_to_f16_bits(np.concatenate([
        f32(65504, 65520, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11).view(np.uint32),
        np.array(bits32(0xFFC00001, 0x7F800001), dtype=np.uint32)]))
    want = ["0x7bff", "0x7c00", "0x0", "0x2", "0x3c00", "0x3c02", "0xfe00", "0x7e00"]
    assert hexes(got) == want, hexes(got)


@test
def same_dtype_cast_is_identity():
    a = np.array([0x7F81, 0xFFC1, 0x1234], dtype=np.uint16)
    assert st.cast(a, "BF16", "BF16") is a


@test
def writer_pads_header_to_8_and_reader_round_trips():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        a = np.arange(3, dtype=np.float32)
        st.write_file(p, [("t", "F32", (3,))], lambda n: [a])
        raw = open(p, "rb").read()
        (hlen,) = struct.unpack("<Q", raw[:8])
        assert hlen % 8 == 0 and raw[8:8 + hlen].rstrip(b" ").endswith(b"}")
        assert json.loads(raw[8:8 + hlen])["__metadata__"] == {"format": "pt"}
        f = st.SafetensorsFile(p, strict=True)
        assert f.tensors["t"] == ("F32", (3,), 0, 12) and list(f.array("t")) == [0, 1, 2]


# ------------------------------------------------------------------ one MoE layer

MOE_CONFIG = {"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
              "hidden_size": 2, "num_hidden_layers": 1, "hybrid_override_pattern": "E",
              "n_routed_experts": 2, "moe_intermediate_size": 3, "torch_dtype": "bfloat16",
              "num_nextn_predict_layers": 1, "mtp_hybrid_override_pattern": "E"}

# routed experts in F32 so the merge must cast; up [I=3, H=2], down [H=2, I=3]
UP0 = [[1, 2], [3, 4], [5, 6]]
UP1 = [[7, 8], [9, 10], [11, 1 + 2 ** -8]]            # last value: tie -> 1.0
DOWN0 = [[-1, -2, -3], [-4, -5, -6]]
DOWN1 = [[0.5, 0.25, 1 + 3 * 2 ** -8], [-0.5, 2, 4]]  # 1+3*2^-8: tie -> 1+2^-6


def moe_checkpoint(d, drop=None, config=MOE_CONFIG):
    t = {
        "backbone.embeddings.weight": ("BF16", bf16(1, 2, 3, 4, 5, 6, 7, 8).reshape(4, 2)),
        "backbone.layers.0.norm.weight": ("BF16", bf16(1, 1)),
        "backbone.layers.0.mixer.gate.weight": ("BF16", bf16(0.5, -0.5, 1, 2).reshape(2, 2)),
        "backbone.layers.0.mixer.gate.e_score_correction_bias": ("F32", f32(0.1, 0.2)),
        "backbone.layers.0.mixer.experts.0.up_proj.weight": ("F32", f32(*sum(UP0, [])).reshape(3, 2)),
        "backbone.layers.0.mixer.experts.0.up_proj.weight_scale_inv": ("F32", f32(1)),
        "backbone.layers.0.mixer.experts.0.down_proj.weight": ("F32", f32(*sum(DOWN0, [])).reshape(2, 3)),
        "backbone.layers.0.mixer.experts.1.up_proj.weight": ("F32", f32(*sum(UP1, [])).reshape(3, 2)),
        "backbone.layers.0.mixer.experts.1.down_proj.weight": ("F32", f32(*sum(DOWN1, [])).reshape(2, 3)),
        "backbone.layers.0.mixer.experts.1.gate_proj.weight": ("F32", f32(9, 9, 9, 9, 9, 9).reshape(3, 2)),
        "backbone.layers.0.mixer.shared_experts.up_proj.weight": ("BF16", bf16(1, 2, 3, 4).reshape(2, 2)),
        "backbone.layers.0.mixer.shared_experts.down_proj.weight": ("BF16", bf16(5, 6, 7, 8).reshape(2, 2)),
        "backbone.layers.0.mixer.in_proj.weight_scale_inv": ("F32", f32(2)),
        # layer index == num_hidden_layers: truncated before anything else
        "backbone.layers.1.norm.weight": ("BF16", bf16(3, 3)),
        "backbone.layers.1.mixer.experts.0.up_proj.weight": ("F32", f32(1, 2, 3, 4, 5, 6).reshape(3, 2)),
        "backbone.norm_f.weight": ("BF16", bf16(2, 2)),
        "lm_head.weight": ("BF16", bf16(8, 7, 6, 5, 4, 3, 2, 1).reshape(4, 2)),
        "mtp.layers.0.enorm.weight": ("BF16", bf16(1, 2)),
        "mtp.layers.0.mixer.experts.0.up_proj.weight": ("BF16", bf16(1, 2, 3, 4, 5, 6).reshape(3, 2)),
        "mtp.layers.0.mixer.experts.1.up_proj.weight": ("BF16", bf16(-1, -2, -3, -4, -5, -6).reshape(3, 2)),
        "mtp.layers.0.mixer.experts.0.down_proj.weight": ("BF16", bf16(1, 2, 3, 4, 5, 6).reshape(2, 3)),
        "mtp.layers.0.mixer.experts.1.down_proj.weight": ("BF16", bf16(6, 5, 4, 3, 2, 1).reshape(2, 3)),
        "mtp.layers.0.mixer.experts.1.down_proj.weight_scale_inv": ("F32", f32(1)),
        "mtp.layers.0.mixer.A_log": ("BF16", bf16(1.5, -2)),
    }
    for k in drop or ():
        del t[k]
    write_ckpt(d, config, t)


def native(d, dtype="auto"):
    return {k: (t.dtype, t.shape, t.array()) for k, t in ref.expected_tensors(d, dtype).items()}


MOE_KEYS = sorted([
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.0.norm.weight",
    "model.layers.0.mixer.gate.weight", "model.layers.0.mixer.gate.e_score_correction_bias",
    "model.layers.0.mixer.experts.gate_and_up_projs", "model.layers.0.mixer.experts.down_projs",
    "model.layers.0.mixer.shared_experts.up_proj.weight", "model.layers.0.mixer.shared_experts.down_proj.weight",
    "mtp.layers.0.enorm.weight", "mtp.layers.0.mixer._fp32_params.A_log",
    "mtp.layers.0.mixer.experts.gate_and_up_projs", "mtp.layers.0.mixer.experts.down_projs",
])


@test
def moe_key_set_renamed_truncated_scale_inv_dropped():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        got = sorted(native(d))
        assert got == MOE_KEYS, "\n".join(sorted(set(got) ^ set(MOE_KEYS)))


@test
def moe_gate_and_up_projs_is_stacked_up_transpose_cast_to_bf16():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        dt, shape, a = native(d)["model.layers.0.mixer.experts.gate_and_up_projs"]
        assert (dt, shape) == ("BF16", (2, 2, 3)), (dt, shape)
        # GU[e] = up_e^T: [[1,3,5],[2,4,6]] and [[7,9,11],[8,10,1+2^-8 -> 1.0]]
        want = np.array([[[0x3F80, 0x4040, 0x40A0], [0x4000, 0x4080, 0x40C0]],
                         [[0x40E0, 0x4110, 0x4130], [0x4100, 0x4120, 0x3F80]]], dtype=np.uint16)
        assert np.array_equal(a, want), hexes(a)


@test
def moe_down_projs_is_stacked_down_transpose_cast_to_bf16():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        dt, shape, a = native(d)["model.layers.0.mixer.experts.down_projs"]
        assert (dt, shape) == ("BF16", (2, 3, 2)), (dt, shape)
        # D[e] = down_e^T: [[-1,-4],[-2,-5],[-3,-6]] and [[0.5,-0.5],[0.25,2],[1+3*2^-8 -> 1+2^-6, 4]]
        want = np.array([[[0xBF80, 0xC080], [0xC000, 0xC0A0], [0xC040, 0xC0C0]],
                         [[0x3F00, 0xBF00], [0x3E80, 0x4000], [0x3F82, 0x4080]]], dtype=np.uint16)
        assert np.array_equal(a, want), hexes(a)


@test
def moe_dtype_override_fp32_keeps_f32_bits():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        dt, shape, a = native(d, "fp32")["model.layers.0.mixer.experts.gate_and_up_projs"]
        assert (dt, shape) == ("F32", (2, 2, 3))
        assert a[1, 1, 2] == np.float32(1 + 2 ** -8) and a[0, 0, 1] == 3


@test
def moe_dtype_override_fp16():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        dt, shape, a = native(d, "fp16")["model.layers.0.mixer.experts.down_projs"]
        # 1+3*2^-8 is exact in f16 (0x3C0C); -6 is 0xC600
        assert dt == "F16" and a.view(np.uint16)[1, 2, 0] == 0x3C0C and a.view(np.uint16)[0, 2, 1] == 0xC600


@test
def moe_passthrough_tensors_keep_dtype_and_bits():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        n = native(d)
        dt, shape, a = n["model.layers.0.mixer.gate.e_score_correction_bias"]
        assert dt == "F32" and list(a) == [np.float32(0.1), np.float32(0.2)]
        dt, shape, a = n["model.embed_tokens.weight"]
        assert dt == "BF16" and shape == (4, 2) and a[3, 1] == 0x4100  # 8.0
        dt, shape, a = n["model.norm.weight"]
        assert dt == "BF16" and list(a) == [0x4000, 0x4000]


@test
def mtp_experts_merged_and_reprefixed_a_log_upcast():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        n = native(d)
        dt, shape, a = n["mtp.layers.0.mixer.experts.gate_and_up_projs"]
        want = bf16(1, 3, 5, 2, 4, 6, -1, -3, -5, -2, -4, -6).reshape(2, 2, 3)
        assert (dt, shape) == ("BF16", (2, 2, 3)) and np.array_equal(a, want), hexes(a)
        dt, shape, a = n["mtp.layers.0.mixer.experts.down_projs"]
        want = bf16(1, 4, 2, 5, 3, 6, 6, 3, 5, 2, 4, 1).reshape(2, 3, 2)
        assert (dt, shape) == ("BF16", (2, 3, 2)) and np.array_equal(a, want), hexes(a)
        dt, shape, a = n["mtp.layers.0.mixer._fp32_params.A_log"]
        assert dt == "F32" and list(a) == [1.5, -2.0]


@test
def missing_expert_raises_runtime_error():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d, drop=["backbone.layers.0.mixer.experts.1.down_proj.weight"])
        try:
            native(d)
        except RuntimeError as e:
            assert str(e).startswith("Expert weights missing from checkpoint: 1/4 required"), str(e)
            assert "model.layers.0.mixer.experts.1.down_proj.weight" in str(e)
        else:
            raise AssertionError("no RuntimeError")


@test
def config_torch_dtype_sets_adapter_dtype_default_bf16():
    with tempfile.TemporaryDirectory() as d:
        cfg = dict(MOE_CONFIG, torch_dtype="float32")
        moe_checkpoint(d, config=cfg)
        assert native(d)["model.layers.0.mixer.experts.down_projs"][0] == "F32"
        del cfg["torch_dtype"]
        moe_checkpoint(d, config=cfg)
        assert native(d)["model.layers.0.mixer.experts.down_projs"][0] == "BF16"


@test
def ep_ranges_follow_divmod_rule():
    got = [ref.expert_range(8, (r, 3)) for r in range(3)]
    assert got == [(0, 3), (3, 6), (6, 8)], got
    assert ref.expert_range(8, (1, 4)) == (2, 4) and ref.expert_range(8) == (0, 8)


@test
def ep_rank_keeps_only_its_experts():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        n = {k: (t.dtype, t.shape, t.array()) for k, t in ref.expected_tensors(d, "auto", (1, 2)).items()}
        dt, shape, a = n["model.layers.0.mixer.experts.gate_and_up_projs"]
        # expert 1 only: [[7,9,11],[8,10,1.0]]
        want = np.array([[[0x40E0, 0x4110, 0x4130], [0x4100, 0x4120, 0x3F80]]], dtype=np.uint16)
        assert (dt, shape) == ("BF16", (1, 2, 3)) and np.array_equal(a, want), hexes(a)


@test
def experts_in_mixed_dtypes_each_cast_to_adapter_dtype():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        sd = ref.load_hf_state_dict(d)
        k = "backbone.layers.0.mixer.experts.0.up_proj.weight"
        sd[k] = ref.Tensor("BF16", (3, 2), lambda: bf16(1, 2, 3, 4, 5, 6).reshape(3, 2))
        n = ref.from_hf(sd, MOE_CONFIG)
        a = n["model.layers.0.mixer.experts.gate_and_up_projs"].array()
        assert a[0].tolist() == [[0x3F80, 0x4040, 0x40A0], [0x4000, 0x4080, 0x40C0]], hexes(a)
        assert a[1, 1, 2] == 0x3F80


# ------------------------------------------------------------------ one dense Mamba layer

@test
def dense_mamba_fp32_holder_upcast_and_scale_inv_kept():
    cfg = {"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "hidden_size": 2,
           "num_hidden_layers": 1, "hybrid_override_pattern": "M", "torch_dtype": "bfloat16"}
    with tempfile.TemporaryDirectory() as d:
        write_ckpt(d, cfg, {
            "backbone.embeddings.weight": ("BF16", bf16(1, 2, 3, 4).reshape(2, 2)),
            "backbone.layers.0.norm.weight": ("BF16", bf16(1, 1)),
            "backbone.layers.0.mixer.A_log": ("BF16", np.array([0x3FC0, 0xFFC1], dtype=np.uint16)),
            "backbone.layers.0.mixer.dt_bias": ("F16", np.array([0x3C00, 0x7E01], dtype=np.uint16).view(np.float16)),
            "backbone.layers.0.mixer.D": ("F32", f32(0.1, -0.0)),
            "backbone.layers.0.mixer.norm.weight": ("BF16", bf16(1, 2)),
            "backbone.layers.0.mixer.in_proj.weight": ("BF16", bf16(1, 2, 3, 4).reshape(2, 2)),
            "backbone.layers.0.mixer.in_proj.weight_scale_inv": ("F32", f32(0.5)),
            "backbone.layers.3.mixer.D": ("F32", f32(1, 1)),
            "backbone.norm_f.weight": ("BF16", bf16(1, 1)),
            "model.norm_f.weight": ("BF16", bf16(4, 4)),
            "lm_head.weight": ("BF16", bf16(1, 2, 3, 4).reshape(2, 2)),
        })
        n = native(d)
        want = sorted(["model.embed_tokens.weight", "model.layers.0.norm.weight",
                       "model.layers.0.mixer._fp32_params.A_log", "model.layers.0.mixer._fp32_params.dt_bias",
                       "model.layers.0.mixer._fp32_params.D", "model.layers.0.mixer.norm.weight",
                       "model.layers.0.mixer.in_proj.weight", "model.layers.0.mixer.in_proj.weight_scale_inv",
                       "model.norm.weight", "model.norm_f.weight", "lm_head.weight"])
        assert sorted(n) == want, sorted(set(n) ^ set(want))
        dt, shape, a = n["model.layers.0.mixer._fp32_params.A_log"]
        assert dt == "F32" and hexes(a.view(np.uint32)) == ["0x3fc00000", "0xffc10000"], hexes(a.view(np.uint32))
        dt, shape, a = n["model.layers.0.mixer._fp32_params.dt_bias"]
        # f16 1.0 -> 0x3F800000; quiet NaN payload 0x201 << 13 kept
        assert dt == "F32" and hexes(a.view(np.uint32)) == ["0x3f800000", "0x7fc02000"], hexes(a.view(np.uint32))
        dt, shape, a = n["model.layers.0.mixer._fp32_params.D"]
        assert dt == "F32" and hexes(a.view(np.uint32)) == ["0x3dcccccd", "0x80000000"]
        assert n["model.norm.weight"][2].tolist() == [0x3F80, 0x3F80]
        assert n["model.norm_f.weight"][2].tolist() == [0x4080, 0x4080]   # model.* is not renamed


def main():
    print("1..%d" % len(TESTS))
    bad = 0
    for i, fn in enumerate(TESTS, 1):
        name = fn.__name__.replace("_", " ")
        try:
            fn()
            print("ok %d - %s" % (i, name))
        except Exception:
            bad += 1
            print("not ok %d - %s" % (i, name))
            for line in traceback.format_exc().rstrip().splitlines():
                print("# " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
