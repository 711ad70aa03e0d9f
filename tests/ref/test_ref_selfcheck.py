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



# ------------------------------------------------------------------ helpers for the other families

def T(dtype, arr):
    """An in-memory reference Tensor."""
    arr = np.asarray(arr)
    return ref.Tensor(dtype, arr.shape, lambda: arr)


def arrays(sd):
    return {k: (t.dtype, t.shape, np.asarray(t.array())) for k, t in sd.items()}


def bf16_grid(rows):
    """bf16 bits of a nested list of exactly representable values."""
    a = np.array(rows, dtype=np.float32)
    return bf16(*a.ravel()).reshape(a.shape)


# ------------------------------------------------------------------ Step3p5 (spec 4)

STEP_CONFIG = {"architectures": ["Step3p5ForCausalLM"], "model_type": "step3p5", "hidden_size": 2,
               "num_hidden_layers": 2, "moe_num_experts": 2, "moe_intermediate_size": 2,
               "moe_layers_enum": "1", "torch_dtype": "bfloat16"}
# E=2, I=2, H=2.  G/U [E,I,H], D [E,H,I]; G is F32 with one bf16 tie (1+2^-8 -> 1.0)
STEP_G = [[[1 + 2 ** -8, 2], [3, 4]], [[-1, -2], [-3, -4]]]
STEP_U = [[[5, 6], [7, 8]], [[-5, -6], [-7, -8]]]
STEP_D = [[[1, 2], [3, 4]], [[0.5, 0.25], [-0.5, -0.25]]]


def step_hf(prefix="model."):
    return {
        prefix + "embed_tokens.weight": T("BF16", bf16_grid([[1, 2], [3, 4]])),
        prefix + "layers.0.mlp.gate_proj.weight": T("BF16", bf16_grid([[1, 1], [2, 2]])),
        prefix + "layers.1.moe.gate_proj.weight": T("F32", f32(*np.ravel(STEP_G)).reshape(2, 2, 2)),
        prefix + "layers.1.moe.up_proj.weight": T("BF16", bf16_grid(STEP_U)),
        prefix + "layers.1.moe.down_proj.weight": T("BF16", bf16_grid(STEP_D)),
        prefix + "layers.1.moe.gate.weight": T("BF16", bf16_grid([[1, 0], [0, 1]])),
        prefix + "layers.1.moe.router_bias": T("F32", f32(0.5, -0.5)),
        prefix + "layers.1.share_expert.up_proj.weight": T("BF16", bf16_grid([[3, 3], [4, 4]])),
        "lm_head.weight": T("BF16", bf16_grid([[9, 8], [7, 6]])),
    }


@test
def step3p5_gate_up_merge_to_e_h_2i_cast_bf16():
    n = arrays(ref.from_hf(step_hf(), STEP_CONFIG))
    dt, shape, a = n["model.layers.1.moe.experts.gate_and_up_projs"]
    # GU[e,h,j] = G[e,j,h] (j<I), U[e,j-I,h]: GU[0] = [[1(tie),3,5,7],[2,4,6,8]]
    want = bf16_grid([[[1, 3, 5, 7], [2, 4, 6, 8]], [[-1, -3, -5, -7], [-2, -4, -6, -8]]])
    assert (dt, shape) == ("BF16", (2, 2, 4)) and np.array_equal(a, want), hexes(a)
    dt, shape, a = n["model.layers.1.moe.experts.down_projs"]
    # D^T per expert: [[1,3],[2,4]], [[0.5,-0.5],[0.25,-0.25]]
    want = bf16_grid([[[1, 3], [2, 4]], [[0.5, -0.5], [0.25, -0.25]]])
    assert (dt, shape) == ("BF16", (2, 2, 2)) and np.array_equal(a, want), hexes(a)
    dt, shape, a = n["model.layers.1.moe.gate.e_score_correction_bias"]
    assert dt == "F32" and a.tolist() == [0.5, -0.5]
    want_keys = sorted(["model.embed_tokens.weight", "model.layers.0.mlp.gate_proj.weight",
                        "model.layers.1.moe.experts.gate_and_up_projs", "model.layers.1.moe.experts.down_projs",
                        "model.layers.1.moe.gate.weight", "model.layers.1.moe.gate.e_score_correction_bias",
                        "model.layers.1.share_expert.up_proj.weight", "lm_head.weight"])
    assert sorted(n) == want_keys, sorted(set(n) ^ set(want_keys))


@test
def step3p5_split_back_to_gate_up_down_router_bias():
    native = {
        "model.layers.1.moe.experts.gate_and_up_projs":
            T("BF16", bf16_grid([[[1, 3, 5, 7], [2, 4, 6, 8]], [[-1, -3, -5, -7], [-2, -4, -6, -8]]])),
        "model.layers.1.moe.experts.down_projs": T("BF16", bf16_grid([[[1, 3], [2, 4]], [[0.5, -0.5], [0.25, -0.25]]])),
        "model.layers.1.moe.gate.e_score_correction_bias": T("F32", f32(0.5, -0.5)),
        "model.layers.1.moe.gate.weight": T("BF16", bf16_grid([[1, 0], [0, 1]])),
        "model.norm.weight": T("BF16", bf16_grid([1, 1])),
    }
    h = arrays(ref.to_hf(native, STEP_CONFIG))
    assert sorted(h) == sorted(["model.layers.1.moe.gate_proj.weight", "model.layers.1.moe.up_proj.weight",
                                "model.layers.1.moe.down_proj.weight", "model.layers.1.moe.router_bias",
                                "model.layers.1.moe.gate.weight", "model.norm.weight"]), sorted(h)
    assert np.array_equal(h["model.layers.1.moe.gate_proj.weight"][2],
                          bf16_grid([[[1, 2], [3, 4]], [[-1, -2], [-3, -4]]]))
    assert np.array_equal(h["model.layers.1.moe.up_proj.weight"][2], bf16_grid(STEP_U))
    assert np.array_equal(h["model.layers.1.moe.down_proj.weight"][2], bf16_grid(STEP_D))
    assert h["model.layers.1.moe.router_bias"][0] == "F32"
    # no cast in to_hf (auto); explicit fp16 casts everything but the fp32 router bias
    h16 = arrays(ref.to_hf(native, STEP_CONFIG, "fp16"))
    assert h16["model.layers.1.moe.up_proj.weight"][0] == "F16"
    assert h16["model.layers.1.moe.up_proj.weight"][2].view(np.uint16)[0, 0, 0] == 0x4500   # 5.0
    assert h16["model.layers.1.moe.router_bias"][0] == "F32" and h16["model.norm.weight"][0] == "F16"


@test
def step3p5_split_point_is_moe_intermediate_size():
    cfg = dict(STEP_CONFIG, moe_intermediate_size=1)
    gu = T("BF16", bf16_grid([[[1, 2, 3, 4], [5, 6, 7, 8]]]))          # [E=1, H=2, 4]
    h = arrays(ref.to_hf({"model.layers.0.moe.experts.gate_and_up_projs": gu}, dict(cfg, moe_num_experts=1)))
    assert h["model.layers.0.moe.gate_proj.weight"][1] == (1, 1, 2)
    assert h["model.layers.0.moe.up_proj.weight"][1] == (1, 3, 2)
    assert np.array_equal(h["model.layers.0.moe.up_proj.weight"][2], bf16_grid([[[2, 6], [3, 7], [4, 8]]]))


@test
def step3p5_unprefixed_legacy_gate_bias_and_no_layer_keys():
    n = arrays(ref.from_hf(step_hf(prefix=""), STEP_CONFIG))
    assert "layers.1.moe.experts.gate_and_up_projs" in n and "layers.1.moe.gate.e_score_correction_bias" in n
    native = {
        "layers.1.moe.experts.down_projs": T("BF16", bf16_grid([[[1, 3], [2, 4]], [[1, 1], [1, 1]]])),
        "layers.1.moe.experts.gate_and_up_projs": T("BF16", bf16_grid(np.ones((2, 2, 4)).tolist())),
        "layers.1.moe.gate.bias": T("F32", f32(1, 2)),
        "prefix.moe.gate.e_score_correction_bias": T("F32", f32(3, 4)),
    }
    h = ref.to_hf(native, STEP_CONFIG)
    assert sorted(h) == sorted(["layers.1.moe.down_proj.weight", "layers.1.moe.gate_proj.weight",
                                "layers.1.moe.up_proj.weight", "layers.1.moe.router_bias",
                                "prefix.moe.gate.e_score_correction_bias"]), sorted(h)
    assert h["layers.1.moe.router_bias"].array().tolist() == [1, 2]


@test
def step3p5_ep_slices_dim0_and_lone_gate_is_dropped():
    n = arrays(ref.from_hf(step_hf(), STEP_CONFIG, ep=(1, 2)))
    dt, shape, a = n["model.layers.1.moe.experts.gate_and_up_projs"]
    assert shape == (1, 2, 4) and np.array_equal(a[0], bf16_grid([[-1, -3, -5, -7], [-2, -4, -6, -8]]))
    hf = step_hf()
    del hf["model.layers.1.moe.up_proj.weight"]
    n = ref.from_hf(hf, STEP_CONFIG)
    assert "model.layers.1.moe.experts.gate_and_up_projs" not in n and "model.layers.1.moe.experts.down_projs" in n
    hf = step_hf()
    hf["model.layers.1.moe.gate_proj.weight_scale_inv"] = T("F32", f32(1))
    try:
        ref.from_hf(hf, STEP_CONFIG)
    except ValueError as e:
        assert "unanchored" in str(e), str(e)
    else:
        raise AssertionError("no ValueError for moe.gate_proj.weight_scale_inv")


# ------------------------------------------------------------------ Nemotron-H to_hf (spec 3.3, 3.4)

NEMO_NATIVE_CONFIG = {"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "hidden_size": 2,
                      "num_hidden_layers": 1, "n_routed_experts": 2, "moe_intermediate_size": 3,
                      "torch_dtype": "bfloat16"}


def nemo_native():
    return {
        "model.embed_tokens.weight": T("BF16", bf16_grid([[1, 2], [3, 4]])),
        "model.norm.weight": T("BF16", bf16_grid([2, 2])),
        "lm_head.weight": T("BF16", bf16_grid([[5, 6], [7, 8]])),
        "model.layers.0.mixer._fp32_params.A_log": T("BF16", np.array([0x3FC0, 0xFFC1], dtype=np.uint16)),
        "model.layers.0.mixer.gate.e_score_correction_bias": T("BF16", bf16_grid([0.5, 2])),
        # GU [E=2, H=2, I=3]: up_e = GU[e]^T
        "model.layers.0.mixer.experts.gate_and_up_projs":
            T("BF16", bf16_grid([[[1, 3, 5], [2, 4, 6]], [[7, 9, 11], [8, 10, 12]]])),
        "model.layers.0.mixer.experts.down_projs": T("BF16", bf16_grid([[[1, 4], [2, 5], [3, 6]],
                                                                         [[6, 3], [5, 2], [4, 1]]])),
        "mtp.layers.0.mixer.experts.gate_and_up_projs": T("BF16", bf16_grid(np.ones((2, 2, 3)).tolist())),
        "mtp.layers.0.mixer._fp32_params.D": T("F32", f32(1, 2)),
    }


@test
def nemotron_to_hf_split_up_only_renames_and_f32_forcing():
    h = arrays(ref.to_hf(nemo_native(), NEMO_NATIVE_CONFIG))
    want = sorted(["backbone.embeddings.weight", "backbone.norm_f.weight", "lm_head.weight",
                   "backbone.layers.0.mixer.A_log", "backbone.layers.0.mixer.gate.e_score_correction_bias",
                   "backbone.layers.0.mixer.experts.0.up_proj.weight", "backbone.layers.0.mixer.experts.1.up_proj.weight",
                   "backbone.layers.0.mixer.experts.0.down_proj.weight",
                   "backbone.layers.0.mixer.experts.1.down_proj.weight",
                   "mtp.layers.0.mixer.experts.0.up_proj.weight", "mtp.layers.0.mixer.experts.1.up_proj.weight",
                   "mtp.layers.0.mixer.D"])
    assert sorted(h) == want, sorted(set(h) ^ set(want))
    dt, shape, a = h["backbone.layers.0.mixer.experts.1.up_proj.weight"]
    assert (dt, shape) == ("BF16", (3, 2)) and np.array_equal(a, bf16_grid([[7, 8], [9, 10], [11, 12]]))
    dt, shape, a = h["backbone.layers.0.mixer.experts.0.down_proj.weight"]
    assert (dt, shape) == ("BF16", (2, 3)) and np.array_equal(a, bf16_grid([[1, 2, 3], [4, 5, 6]]))
    dt, shape, a = h["backbone.layers.0.mixer.A_log"]
    assert dt == "F32" and hexes(a.view(np.uint32)) == ["0x3fc00000", "0xffc10000"]
    dt, shape, a = h["backbone.layers.0.mixer.gate.e_score_correction_bias"]
    assert dt == "F32" and a.tolist() == [0.5, 2.0]
    # explicit dtype: everything floating to F16 except Mamba scalars / e_score_correction_bias (F32)
    h16 = arrays(ref.to_hf(nemo_native(), NEMO_NATIVE_CONFIG, "fp16"))
    assert h16["backbone.layers.0.mixer.experts.1.up_proj.weight"][0] == "F16"
    assert h16["backbone.layers.0.mixer.experts.1.up_proj.weight"][2].view(np.uint16)[0, 0] == 0x4700   # 7.0
    assert h16["lm_head.weight"][0] == "F16" and h16["mtp.layers.0.mixer.D"][0] == "F32"
    assert h16["backbone.layers.0.mixer.A_log"][0] == "F32"
    assert h16["backbone.layers.0.mixer.gate.e_score_correction_bias"][0] == "F32"


@test
def nemotron_from_hf_ignores_gate_proj_and_to_hf_never_emits_it():
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d)
        n = ref.expected_tensors(d)
        h = ref.to_hf(n, MOE_CONFIG)
        assert not [k for k in h if "gate_proj" in k], [k for k in h if "gate_proj" in k]
        assert "backbone.layers.0.mixer.experts.1.up_proj.weight" in h


@test
def nemotron_to_hf_down_shape_mismatch_passes_and_bad_e_raises():
    native = {"model.layers.0.mixer.experts.down_projs": T("BF16", bf16_grid(np.ones((2, 2, 2)).tolist()))}
    h = ref.to_hf(native, NEMO_NATIVE_CONFIG)      # shape[1]=2 != I=3: passes under its (renamed) name
    assert list(h) == ["backbone.layers.0.mixer.experts.down_projs"], list(h)
    native = {"model.layers.0.mixer.experts.gate_and_up_projs": T("BF16", bf16_grid(np.ones((3, 2, 3)).tolist()))}
    try:
        ref.to_hf(native, NEMO_NATIVE_CONFIG)
    except ValueError as e:
        assert str(e) == "Expected first dimension to be E, got 3", str(e)
    else:
        raise AssertionError("no ValueError")


@test
def nemotron_to_hf_ep_rank_keeps_global_expert_ids():
    for native in (nemo_native(),
                   {"model.layers.0.mixer.experts.gate_and_up_projs":      # the rank's local shard
                    T("BF16", bf16_grid([[[7, 9, 11], [8, 10, 12]]]))}):
        h = arrays(ref.to_hf(native, NEMO_NATIVE_CONFIG, ep=(1, 2)))
        ups = sorted(k for k in h if "up_proj" in k and k.startswith("backbone."))
        assert ups == ["backbone.layers.0.mixer.experts.1.up_proj.weight"], ups
        assert np.array_equal(h[ups[0]][2], bf16_grid([[7, 8], [9, 10], [11, 12]]))


# ------------------------------------------------------------------ NemotronOmni (spec 5)

OMNI_CONFIG = {"architectures": ["NemotronH_Nano_Omni_Reasoning_V3"],
               "model_type": "NemotronH_Nano_Omni_Reasoning_V3",
               "llm_config": dict(NEMO_NATIVE_CONFIG, torch_dtype="float32")}


@test
def omni_mlp1_table_sound_encoder_and_llm_both_ways():
    one = lambda: T("BF16", bf16_grid([1, 2]))  # noqa: E731
    hf = {
        "mlp1.0.weight": one(), "mlp1.1.weight": one(), "mlp1.3.weight": one(), "mlp1.4.weight": one(),
        "vision_model.radio_model.model.blocks.0.attn.qkv.weight": one(),
        "sound_encoder.encoder.layers.0.self_attn.linear_q.weight": one(),
        "sound_projection.linear1.weight": one(),
        "language_model.backbone.embeddings.weight": one(),
        "language_model.backbone.norm_f.weight": one(),
        "language_model.lm_head.weight": one(),
        "language_model.backbone.layers.0.mixer.A_log": one(),
        "language_model.backbone.layers.1.norm.weight": one(),          # >= llm num_hidden_layers: dropped
        "language_model.mtp.layers.0.enorm.weight": one(),
    }
    for e in range(2):
        hf["language_model.backbone.layers.0.mixer.experts.%d.up_proj.weight" % e] = \
            T("BF16", bf16_grid([[1, 2], [3, 4], [5, 6]]))
        hf["language_model.backbone.layers.0.mixer.experts.%d.down_proj.weight" % e] = \
            T("BF16", bf16_grid([[1, 2, 3], [4, 5, 6]]))
    n = arrays(ref.from_hf(hf, OMNI_CONFIG))
    want = sorted([
        "vision_projector.norm.weight", "vision_projector.linear1.weight", "vision_projector.linear2.weight",
        "mlp1.4.weight", "vision_model.radio_model.model.blocks.0.attn.qkv.weight",
        "sound_encoder.layers.0.self_attn.linear_q.weight", "sound_projection.linear1.weight",
        "language_model.model.embed_tokens.weight", "language_model.model.norm.weight",
        "language_model.lm_head.weight", "language_model.model.layers.0.mixer._fp32_params.A_log",
        "language_model.mtp.layers.0.enorm.weight",
        "language_model.model.layers.0.mixer.experts.gate_and_up_projs",
        "language_model.model.layers.0.mixer.experts.down_projs"])
    assert sorted(n) == want, sorted(set(n) ^ set(want))
    assert n["language_model.model.layers.0.mixer._fp32_params.A_log"][0] == "F32"
    # llm_config.torch_dtype float32 is the adapter dtype of the merged experts
    dt, shape, a = n["language_model.model.layers.0.mixer.experts.gate_and_up_projs"]
    assert (dt, shape) == ("F32", (2, 2, 3)) and a[1].tolist() == [[1, 3, 5], [2, 4, 6]]
    back = ref.to_hf(ref.from_hf(hf, OMNI_CONFIG), OMNI_CONFIG)
    want_back = sorted(set(hf) - {"language_model.backbone.layers.1.norm.weight"})
    assert sorted(back) == want_back, sorted(set(back) ^ set(want_back))
    assert back["language_model.backbone.layers.0.mixer.A_log"].dtype == "F32"
    assert back["mlp1.3.weight"].dtype == "BF16"


# ------------------------------------------------------------------ Mixtral / Qwen3-MoE (gated mixin)

MIXTRAL_CONFIG = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 2,
                  "num_hidden_layers": 1, "num_local_experts": 2, "intermediate_size": 2,
                  "torch_dtype": "bfloat16"}


def mixtral_hf():
    x = "model.layers.0.block_sparse_moe."
    return {
        x + "gate.weight": T("BF16", bf16_grid([[1, 0], [0, 1]])),
        # w1 (gate) / w3 (up) [I=2, H=2], w2 (down) [H=2, I=2]; expert 0 in F32 with a bf16 tie
        x + "experts.0.w1.weight": T("F32", f32(1, 2, 3, 1 + 3 * 2 ** -8).reshape(2, 2)),
        x + "experts.0.w3.weight": T("F32", f32(5, 6, 7, 8).reshape(2, 2)),
        x + "experts.0.w2.weight": T("F32", f32(-1, -2, -3, -4).reshape(2, 2)),
        x + "experts.1.w1.weight": T("BF16", bf16_grid([[9, 10], [11, 12]])),
        x + "experts.1.w3.weight": T("BF16", bf16_grid([[13, 14], [15, 16]])),
        x + "experts.1.w2.weight": T("BF16", bf16_grid([[0.5, 0.25], [2, 4]])),
        x + "experts.1.w2.weight_scale_inv": T("F32", f32(1)),
        "model.layers.0.self_attn.q_proj.weight_scale_inv": T("F32", f32(1)),
        "model.norm.weight": T("BF16", bf16_grid([1, 1])),
    }


@test
def mixtral_gated_merge_w1_w3_concat_and_w2_transpose():
    n = arrays(ref.from_hf(mixtral_hf(), MIXTRAL_CONFIG))
    assert sorted(n) == sorted(["model.layers.0.block_sparse_moe.gate.weight", "model.norm.weight",
                                "model.layers.0.block_sparse_moe.experts.gate_and_up_projs",
                                "model.layers.0.block_sparse_moe.experts.down_projs"]), sorted(n)
    dt, shape, a = n["model.layers.0.block_sparse_moe.experts.gate_and_up_projs"]
    # GU[e] = cat(w1^T, w3^T): [[1,3,5,7],[2,4(1+3*2^-8 -> 1+2^-6),6,8]], [[9,11,13,15],[10,12,14,16]]
    want = bf16_grid([[[1, 3, 5, 7], [2, 1 + 2 ** -6, 6, 8]], [[9, 11, 13, 15], [10, 12, 14, 16]]])
    assert (dt, shape) == ("BF16", (2, 2, 4)) and np.array_equal(a, want), hexes(a)
    dt, shape, a = n["model.layers.0.block_sparse_moe.experts.down_projs"]
    want = bf16_grid([[[-1, -3], [-2, -4]], [[0.5, 2], [0.25, 4]]])
    assert (dt, shape) == ("BF16", (2, 2, 2)) and np.array_equal(a, want), hexes(a)


@test
def mixtral_split_emits_w1_then_w3_per_expert_and_w2():
    n = ref.from_hf(mixtral_hf(), MIXTRAL_CONFIG)
    h = ref.to_hf(n, MIXTRAL_CONFIG)
    x = "model.layers.0.block_sparse_moe.experts."
    order = [k for k in h if k.startswith(x) and not k.endswith("w2.weight")]
    assert order == [x + "0.w1.weight", x + "0.w3.weight", x + "1.w1.weight", x + "1.w3.weight"], order
    assert h[x + "0.w1.weight"].array().tolist() == bf16_grid([[1, 2], [3, 1 + 2 ** -6]]).tolist()
    assert h[x + "1.w3.weight"].array().tolist() == bf16_grid([[13, 14], [15, 16]]).tolist()
    assert h[x + "1.w2.weight"].array().tolist() == bf16_grid([[0.5, 0.25], [2, 4]]).tolist()


@test
def mixtral_missing_w3_raises_runtime_error():
    hf = mixtral_hf()
    del hf["model.layers.0.block_sparse_moe.experts.1.w3.weight"]
    try:
        ref.from_hf(hf, MIXTRAL_CONFIG)
    except RuntimeError as e:
        assert str(e).startswith("Expert weights missing from checkpoint: 1/6 required"), str(e)
    else:
        raise AssertionError("no RuntimeError")


@test
def qwen3_moe_unprefixed_keys_keep_no_prefix_both_ways():
    cfg = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": 1,
           "moe_intermediate_size": 1, "torch_dtype": "bfloat16"}
    hf = {"layers.0.mlp.experts.0.gate_proj.weight": T("BF16", bf16_grid([[1, 2]])),
          "layers.0.mlp.experts.0.up_proj.weight": T("BF16", bf16_grid([[3, 4]])),
          "layers.0.mlp.experts.0.down_proj.weight": T("BF16", bf16_grid([[5], [6]])),
          "layers.0.mlp.gate_proj.weight": T("BF16", bf16_grid([[7, 8]]))}
    n = arrays(ref.from_hf(hf, cfg))
    assert n["layers.0.mlp.experts.gate_and_up_projs"][2].tolist() == bf16_grid([[[1, 3], [2, 4]]]).tolist()
    assert "layers.0.mlp.gate_proj.weight" in n                # dense MLP: not an expert key
    back = ref.to_hf(ref.from_hf(hf, cfg), cfg)
    assert sorted(back) == sorted(hf), sorted(back)


# ------------------------------------------------------------------ detection, round trips

@test
def family_detection_from_architectures_and_model_type():
    assert ref.detect_family({"architectures": ["Step3p5ForCausalLM"]}) == "step3p5"
    assert ref.detect_family({"model_type": "mixtral"}) == "mixtral"
    assert ref.detect_family({}) == "nemotron_h"
    try:
        ref.detect_family({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    except ValueError as e:
        assert "GPT2LMHeadModel" in str(e)
    else:
        raise AssertionError("no ValueError")


def identical(a, b):
    return sorted(a) == sorted(b) and all(
        (a[k].dtype, a[k].shape) == (b[k].dtype, b[k].shape) and a[k].tobytes() == b[k].tobytes() for k in a)


@test
def round_trip_identity_on_tiny_models():
    # F32 Mamba scalars and BF16 experts in a BF16 model: nothing may change
    with tempfile.TemporaryDirectory() as d:
        moe_checkpoint(d, drop=["backbone.layers.0.mixer.experts.1.gate_proj.weight",
                                "backbone.layers.0.mixer.experts.0.up_proj.weight_scale_inv",
                                "backbone.layers.0.mixer.in_proj.weight_scale_inv",
                                "mtp.layers.0.mixer.experts.1.down_proj.weight_scale_inv",
                                "backbone.layers.1.norm.weight",
                                "backbone.layers.1.mixer.experts.0.up_proj.weight"],
                       config=dict(MOE_CONFIG, torch_dtype="float32"))
        hf = ref.load_hf_state_dict(d)
        hf["mtp.layers.0.mixer.A_log"] = T("F32", f32(1.5, -2))
        hf = {k: ref.cast_tensor(v, "F32") if ".experts." in k else v for k, v in hf.items()}
        cfg = dict(MOE_CONFIG, torch_dtype="float32")
        assert identical(ref.to_hf(ref.from_hf(hf, cfg), cfg), hf)
    for hf, cfg in ((step_hf(), dict(STEP_CONFIG, torch_dtype="float32")),
                    (mixtral_hf(), dict(MIXTRAL_CONFIG, torch_dtype="float32"))):
        hf = {k: v for k, v in hf.items() if not k.endswith("_scale_inv")}
        if cfg["model_type"] == "mixtral":           # mixed-dtype experts: make them all F32
            hf = {k: ref.cast_tensor(v, "F32") if ".experts." in k else v for k, v in hf.items()}
        else:
            hf = {k: ref.cast_tensor(v, "F32") if ".moe." in k and "proj" in k else v for k, v in hf.items()}
        assert identical(ref.to_hf(ref.from_hf(hf, cfg), cfg), hf), cfg["model_type"]


@test
def roundtrip_diff_passes_documented_differences_and_catches_a_flipped_byte():
    import contextlib
    import io
    import roundtrip_diff as rt
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "hf"), os.path.join(d, "hf2")
        moe_checkpoint(src, drop=["backbone.layers.0.mixer.experts.1.gate_proj.weight"])
        native = ref.expected_tensors(src)
        hf2 = ref.to_hf(native, MOE_CONFIG)
        os.makedirs(back)
        shutil_copy(os.path.join(src, "config.json"), os.path.join(back, "config.json"))
        ref.write_single(os.path.join(back, "model.safetensors"), hf2)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            fails, notes = rt.roundtrip_diff(src, back, dtype_changed=True)
        # experts are F32 in the source, BF16 after the adapter cast: --dtype-changed needed
        assert fails == 0, out.getvalue()
        assert notes["scale-inv"] == 3 and notes["truncated"] == 2 and notes["dtype"] == 4, notes
        with contextlib.redirect_stdout(io.StringIO()):
            fails, _ = rt.roundtrip_diff(src, back)
        assert fails == 4, fails                    # the same, without --dtype-changed
        path = os.path.join(back, "model.safetensors")
        f = st.SafetensorsFile(path)
        _, _, b, _ = f.tensors["backbone.norm_f.weight"]
        with open(path, "r+b") as fh:
            fh.seek(f.data_start + b)
            x = fh.read(1)
            fh.seek(f.data_start + b)
            fh.write(bytes([x[0] ^ 1]))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            fails, _ = rt.roundtrip_diff(src, back, dtype_changed=True)
        assert fails == 1 and "backbone.norm_f.weight: BF16 [2], bytes differ" in out.getvalue(), out.getvalue()


@test
def roundtrip_diff_step3p5_gate_bias_written_back_as_router_bias():
    import contextlib
    import io
    import roundtrip_diff as rt
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "hf"), os.path.join(d, "hf2")
        hf = step_hf()
        hf["model.layers.1.moe.gate.bias"] = hf.pop("model.layers.1.moe.router_bias")
        hf = {k: ref.cast_tensor(v, "BF16") for k, v in hf.items()}
        write_ckpt(src, STEP_CONFIG, {k: (v.dtype, np.asarray(v.array())) for k, v in hf.items()})
        hf2 = ref.to_hf(ref.from_hf(hf, STEP_CONFIG), STEP_CONFIG)
        assert "model.layers.1.moe.router_bias" in hf2 and "model.layers.1.moe.gate.bias" not in hf2
        os.makedirs(back)
        shutil_copy(os.path.join(src, "config.json"), os.path.join(back, "config.json"))
        ref.write_single(os.path.join(back, "model.safetensors"), hf2)
        with contextlib.redirect_stdout(io.StringIO()):
            fails, notes = rt.roundtrip_diff(src, back)
        assert fails == 0 and notes["gate-bias"] == 1, (fails, notes)
        with contextlib.redirect_stdout(io.StringIO()):
            fails, _ = rt.roundtrip_diff(src, back, family="qwen3_moe")   # no such allowance there
        assert fails == 2, fails


# ------------------------------------------------------------------ llama family, tied lm_head (spec 6, 8)

LLAMA_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 1}


def llama_hf(with_head=False):
    hf = {"model.embed_tokens.weight": T("BF16", bf16(1, 2, 3, 4).reshape(2, 2)),
          "model.layers.0.self_attn.q_proj.weight": T("BF16", bf16(5, 6, 7, 8).reshape(2, 2)),
          "model.norm.weight": T("BF16", bf16(1, 1))}
    if with_head:
        hf["lm_head.weight"] = T("BF16", bf16(9, 10, 11, 12).reshape(2, 2))
    return hf


@test
def llama_family_from_every_dense_architecture_and_model_type():
    for arch in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"):
        assert ref.detect_family({"architectures": [arch]}) == "llama", arch
    for mt in ("llama", "qwen2", "qwen3", "mistral"):
        assert ref.detect_family({"model_type": mt}) == "llama", mt


@test
def llama_tied_from_hf_fills_lm_head_with_the_embedding():
    for cfg in (dict(LLAMA_CONFIG, tie_word_embeddings=True),
                dict(LLAMA_CONFIG, text_config={"tie_word_embeddings": True}),
                dict(LLAMA_CONFIG, thinker_config={"tie_word_embeddings": True},
                     text_config={"tie_word_embeddings": False})):
        nat = ref.from_hf(llama_hf(), cfg)
        assert sorted(nat) == sorted(list(llama_hf()) + ["lm_head.weight"]), sorted(nat)
        head = nat["lm_head.weight"]
        assert (head.dtype, head.shape) == ("BF16", (2, 2))
        assert hexes(head.array()) == ["0x3f80", "0x4000", "0x4040", "0x4080"], hexes(head.array())


@test
def llama_untied_or_complete_from_hf_is_a_pass_through():
    for cfg in (LLAMA_CONFIG, dict(LLAMA_CONFIG, tie_word_embeddings=False),
                dict(LLAMA_CONFIG, tie_word_embeddings=False, text_config={"tie_word_embeddings": True})):
        nat = ref.from_hf(llama_hf(), cfg)
        assert sorted(nat) == sorted(llama_hf()), (cfg, sorted(nat))
    nat = ref.from_hf(llama_hf(with_head=True), dict(LLAMA_CONFIG, tie_word_embeddings=True))
    assert hexes(nat["lm_head.weight"].array()) == ["0x4110", "0x4120", "0x4130", "0x4140"]
    no_embed = {k: v for k, v in llama_hf().items() if "embed" not in k}
    assert sorted(ref.from_hf(no_embed, dict(LLAMA_CONFIG, tie_word_embeddings=True))) == sorted(no_embed)
    try:
        ref.from_hf(llama_hf(), dict(LLAMA_CONFIG, tie_word_embeddings="yes"))
    except ValueError as e:
        assert "tie_word_embeddings" in str(e)
    else:
        raise AssertionError("no ValueError")


@test
def llama_to_hf_keeps_every_name_and_drops_extra_state():
    nat = dict(llama_hf(with_head=True))
    nat["model.layers.0.self_attn._extra_state"] = T("U8", np.zeros(4, dtype=np.uint8))
    hf = ref.to_hf(nat, dict(LLAMA_CONFIG, tie_word_embeddings=False))
    assert sorted(hf) == sorted(llama_hf(with_head=True)), sorted(hf)


@test
def llama_to_hf_of_a_tied_model_pops_lm_head():
    # spec 6: the save pops the tied lm_head (same storage as the embedding)
    hf = ref.to_hf(dict(llama_hf(with_head=True)), dict(LLAMA_CONFIG, tie_word_embeddings=True))
    assert sorted(hf) == sorted(llama_hf()), sorted(hf)


@test
def roundtrip_diff_llama_tied_round_trip_is_exact_and_an_extra_lm_head_fails():
    import contextlib
    import io
    import roundtrip_diff as rt
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "hf"), os.path.join(d, "hf2")
        cfg = dict(LLAMA_CONFIG, tie_word_embeddings=True)
        write_ckpt(src, cfg, {k: (t.dtype, t.array()) for k, t in llama_hf().items()})
        hf2 = ref.to_hf(ref.expected_tensors(src), cfg)
        os.makedirs(back)
        shutil_copy(os.path.join(src, "config.json"), os.path.join(back, "config.json"))
        ref.write_single(os.path.join(back, "model.safetensors"), hf2)
        with contextlib.redirect_stdout(io.StringIO()):
            fails, notes = rt.roundtrip_diff(src, back)
        assert "lm_head.weight" not in hf2 and fails == 0 and not any(notes.values()), (fails, notes)
        # an lm_head the original does not have is a failure, even the embedding's bytes
        extra = dict(hf2, **{"lm_head.weight": hf2["model.embed_tokens.weight"]})
        ref.write_single(os.path.join(back, "model.safetensors"), extra)
        with contextlib.redirect_stdout(io.StringIO()):
            fails, notes = rt.roundtrip_diff(src, back)
        assert fails == 1, (fails, notes)


@test
def rename_key_is_the_renames_alone():
    # spec 3.1 (in order; mtp. only routes the fp32 holder), 4 (router bias, with the
    # _hf_prefix), 5 (language_model.* through Nemotron-H), 8 (GPT-OSS)
    cases = [
        ("nemotron_h", "from_hf", "backbone.norm_f.weight", "model.norm.weight"),
        ("nemotron_h", "from_hf", "base_model.model.backbone.embeddings.weight",
         "base_model.model.model.embed_tokens.weight"),
        ("nemotron_h", "from_hf", "backbone.layers.0.mixer.A_log", "model.layers.0.mixer._fp32_params.A_log"),
        ("nemotron_h", "from_hf", "mtp.layers.0.mixer.D", "mtp.layers.0.mixer._fp32_params.D"),
        ("nemotron_h", "from_hf", "model.norm_f.weight", "model.norm_f.weight"),
        ("nemotron_h", "to_hf", "model.embed_tokens.weight", "backbone.embeddings.weight"),
        ("nemotron_h", "to_hf", "base_model.model.model.embed_tokens.weight",
         "base_model.model.model.embed_tokens.weight"),
        ("nemotron_h", "to_hf", "mtp.layers.1.mixer._fp32_params.A_log", "mtp.layers.1.mixer.A_log"),
        ("step3p5", "from_hf", "model.layers.2.moe.router_bias", "model.layers.2.moe.gate.e_score_correction_bias"),
        ("step3p5", "from_hf", "model.layers.2.moe.down_proj.weight", "model.layers.2.moe.down_proj.weight"),
        ("step3p5", "to_hf", "layers.2.moe.gate.bias", "layers.2.moe.router_bias"),
        ("nemotron_omni", "from_hf", "language_model.backbone.norm_f.weight", "language_model.model.norm.weight"),
        ("nemotron_omni", "to_hf", "vision_projector.linear2.weight", "mlp1.3.weight"),
        ("nemotron_omni", "to_hf", "sound_encoder.layers.0.weight", "sound_encoder.encoder.layers.0.weight"),
        ("gpt_oss", "from_hf", "model.layers.0.mlp.router.bias", "model.layers.0.mlp.gate.bias"),
        ("gpt_oss", "to_hf", "model.layers.0.mlp.experts.down_projs", "model.layers.0.mlp.experts.down_proj"),
        ("deepseek_v3", "from_hf", "model.layers.0.mlp.experts.0.up_proj.weight",
         "model.layers.0.mlp.experts.0.up_proj.weight"),
        ("llama", "to_hf", "model.embed_tokens.weight", "model.embed_tokens.weight"),
    ]
    for family, direction, key, want in cases:
        got = ref.rename_key(key, family, direction)
        assert got == want, (family, direction, key, got, want)


def shutil_copy(a, b):
    with open(a, "rb") as fa, open(b, "wb") as fb:
        fb.write(fa.read())

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
