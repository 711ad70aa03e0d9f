#!/usr/bin/python3
"""Self-test of tests/ref/peft_ref.py against values worked out by hand (TAP output).

Each expected array below is written out element by element from the spec's
tables (§2.5), not computed, so a mistake in peft_ref's loops shows up here
rather than being copied into every integration check.
"""

import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_ref  # noqa: E402

TESTS = []
P = "base_model.model.model.layers.3.mlp.experts"


def test(fn):
    TESTS.append(fn)
    return fn


def eq(got, want, what):
    if got.shape != want.shape or not np.array_equal(got, want):
        raise AssertionError("%s:\n%s\nwant\n%s" % (what, got, want))


def arange(*shape):
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


@test
def v5_down_b_rows_are_expert_major():
    # down_B [E=2, r=2, H=3]: row e*r + k holds down_B[e, k, :]
    d = arange(2, 2, 3)          # d[e,k,h] = 6e + 3k + h
    out = peft_ref.to_hf({P + ".lora_down_B": ("F32", d)})
    want = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]], dtype=np.float32)
    eq(out[P + ".lora_A.weight"][1], want, "lora_A.weight")


@test
def v5_down_a_columns_are_rank_major():
    # down_A [E=2, I=2, r=3]: column k*E + e holds down_A[e, :, k]
    a = arange(2, 2, 3)          # a[e,i,k] = 6e + 3i + k
    out = peft_ref.to_hf({P + ".lora_down_A": ("F32", a)})
    # columns: (k0,e0)=[0,3] (k0,e1)=[6,9] (k1,e0)=[1,4] (k1,e1)=[7,10] (k2,e0)=[2,5] (k2,e1)=[8,11]
    want = np.array([[0, 6, 1, 7, 2, 8], [3, 9, 4, 10, 5, 11]], dtype=np.float32)
    eq(out[P + ".lora_B.weight"][1], want, "lora_B.weight")


@test
def v5_gate_and_up_go_to_the_base_layer_wrapper():
    a = arange(2, 3, 1)          # gate_and_up_A [E=2, H=3, r=1]
    b = arange(2, 1, 4)          # gate_and_up_B [E=2, r=1, U=4]
    out = peft_ref.to_hf({P + ".lora_gate_and_up_A": ("F32", a),
                          P + ".lora_gate_and_up_B": ("F32", b)})
    eq(out[P + ".base_layer.lora_B.weight"][1],
       np.array([[0, 3], [1, 4], [2, 5]], dtype=np.float32), "base_layer.lora_B")
    eq(out[P + ".base_layer.lora_A.weight"][1],
       np.array([[0, 1, 2, 3], [4, 5, 6, 7]], dtype=np.float32), "base_layer.lora_A")


@test
def v4_gated_splits_b_at_i_and_copies_a_to_gate_and_up():
    a = arange(2, 2, 1)          # gate_and_up_A [E=2, H=2, r=1]
    b = arange(2, 1, 4)          # gate_and_up_B [E=2, r=1, U=4] -> I = 2 (gated)
    d = arange(2, 2, 1)          # down_A [E=2, I=2, r=1]
    out = peft_ref.to_hf({P + ".lora_gate_and_up_A": ("F32", a),
                          P + ".lora_gate_and_up_B": ("F32", b),
                          P + ".lora_down_A": ("F32", d)}, v4=True)
    eq(out[P + ".1.gate_proj.lora_A.weight"][1], np.array([[2, 3]], dtype=np.float32), "gate A e1")
    eq(out[P + ".1.up_proj.lora_A.weight"][1], np.array([[2, 3]], dtype=np.float32), "up A e1")
    eq(out[P + ".1.gate_proj.lora_B.weight"][1], np.array([[4], [5]], dtype=np.float32), "gate B e1")
    eq(out[P + ".1.up_proj.lora_B.weight"][1], np.array([[6], [7]], dtype=np.float32), "up B e1")
    eq(out[P + ".0.down_proj.lora_A.weight"][1], np.array([[0, 1]], dtype=np.float32), "down A e0")


@test
def v4_non_gated_has_no_gate_keys():
    b = arange(2, 1, 2)
    d = arange(2, 2, 1)          # I = 2 = U: not gated
    out = peft_ref.to_hf({P + ".lora_gate_and_up_B": ("F32", b), P + ".lora_down_A": ("F32", d)},
                         v4=True)
    assert not any("gate_proj" in n for n in out), sorted(out)
    eq(out[P + ".1.up_proj.lora_B.weight"][1], np.array([[2], [3]], dtype=np.float32), "up B e1")


@test
def from_hf_inverts_both_formats():
    rng = np.random.default_rng(7)
    nat = {P + ".lora_gate_and_up_A": ("F32", rng.standard_normal((3, 5, 2)).astype(np.float32)),
           P + ".lora_gate_and_up_B": ("F32", rng.standard_normal((3, 2, 8)).astype(np.float32)),
           P + ".lora_down_A": ("F32", rng.standard_normal((3, 4, 2)).astype(np.float32)),
           P + ".lora_down_B": ("F32", rng.standard_normal((3, 2, 5)).astype(np.float32)),
           "x.lora_magnitude": ("F32", np.ones(5, dtype=np.float32))}
    for v4 in (False, True):
        back = peft_ref.from_hf(peft_ref.to_hf(nat, v4=v4), 2)
        assert sorted(back) == sorted(nat), (v4, sorted(back))
        for n in nat:
            eq(back[n][1], nat[n][1], "%s (v4=%s)" % (n, v4))


@test
def v4_group_missing_an_expert_passes_through():
    hf = {P + ".%d.down_proj.lora_A.weight" % e: ("F32", arange(1, 2)) for e in (0, 2)}
    hf[P + ".1.up_proj.lora_A.weight"] = ("F32", arange(1, 2))
    out = peft_ref.from_hf(hf, 1)
    assert sorted(out) == sorted(hf), sorted(out)


@test
def dora_legacy_and_current_names_map_to_lora_magnitude():
    hf = {"m.q.lora_magnitude_vector.default.weight": ("F32", arange(3)),
          "m.k.lora_magnitude_vector": ("F32", arange(3))}
    out = peft_ref.from_hf(hf, 1)
    assert sorted(out) == ["m.k.lora_magnitude", "m.q.lora_magnitude"], sorted(out)
    assert sorted(peft_ref.to_hf(out)) == ["m.k.lora_magnitude_vector", "m.q.lora_magnitude_vector"]


# ---- names in the family's layout (spec §3.1, §5, §6, §7 item 3, §8, §11.2), by hand

BB = "base_model.model.backbone.layers.1.mixer.experts"
MM = "base_model.model.model.layers.1.mixer.experts"


@test
def nemotron_h_hf_adapter_loads_under_model_names():
    # the issue's regression: transformers' NemotronH names (backbone.) -> from_hf's
    # ^(base_model.model.)?backbone. -> model.; lora_A.weight [r*E, H] is down_B
    a = arange(4, 3)             # r=2, E=2, H=3
    out = peft_ref.from_hf({BB + ".lora_A.weight": ("F32", a)}, 2, "nemotron_h")
    assert sorted(out) == [MM + ".lora_down_B"], sorted(out)
    eq(out[MM + ".lora_down_B"][1],
       np.array([[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]], dtype=np.float32), "down_B")


@test
def nemotron_h_per_expert_and_module_renames():
    hf = {BB + ".%d.up_proj.lora_A.weight" % e: ("F32", arange(1, 2)) for e in (0, 1)}
    hf["base_model.model.backbone.embeddings.lora_embedding_A"] = ("F32", arange(2, 4))
    hf["base_model.model.backbone.norm_f.lora_A.weight"] = ("F32", arange(1, 2))
    hf["base_model.model.backbone.layers.0.mixer.in_proj.lora_magnitude_vector"] = ("F32", arange(3))
    out = peft_ref.from_hf(hf, 1, "nemotron_h")
    assert sorted(out) == sorted([
        MM + ".lora_gate_and_up_A",
        "base_model.model.model.embed_tokens.lora_embedding_A",     # embeddings -> embed_tokens
        "base_model.model.model.norm.lora_A.weight",                # norm_f -> norm
        "base_model.model.model.layers.0.mixer.in_proj.lora_magnitude"]), sorted(out)


@test
def nemotron_h_save_keeps_model_names():
    # to_hf's ^model\. -> backbone. does not fire behind base_model.model. (spec §7 item 3)
    out = peft_ref.to_hf({MM + ".lora_down_B": ("F32", arange(2, 1, 3)),
                          "base_model.model.model.embed_tokens.lora_embedding_B": ("F32", arange(3, 1))},
                         family="nemotron_h")
    assert sorted(out) == sorted([MM + ".lora_A.weight",
                                  "base_model.model.model.embed_tokens.lora_embedding_B"]), sorted(out)
    # without the prefix the same rules do fire
    assert peft_ref.rename("model.embed_tokens.lora_embedding_B", "nemotron_h", "to_hf") == \
        "backbone.embeddings.lora_embedding_B"


@test
def nemotron_omni_keys_keep_their_names_both_ways():
    # the wrapper routes only keys starting language_model. (spec §5); a PEFT key starts
    # base_model.model.
    for key in ("base_model.model.language_model.backbone.layers.1.mixer.experts.lora_A.weight",
                "base_model.model.language_model.model.layers.1.mixer.experts.lora_down_A",
                "base_model.model.mlp1.1.lora_A.weight",
                "base_model.model.vision_projector.linear1.lora_A.weight"):
        for d in ("from_hf", "to_hf"):
            assert peft_ref.rename(key, "nemotron_omni", d) == key, (key, d)
    # the routed part is renamed where the prefix is not in front
    assert peft_ref.rename("language_model.backbone.layers.1.mixer.in_proj.lora_A.weight",
                           "nemotron_omni", "from_hf") == \
        "language_model.model.layers.1.mixer.in_proj.lora_A.weight"


@test
def gpt_oss_router_is_the_native_gate():
    hf = "base_model.model.model.layers.0.mlp.router.lora_B.weight"
    nat = "base_model.model.model.layers.0.mlp.gate.lora_B.weight"
    assert peft_ref.rename(hf, "gpt_oss", "from_hf") == nat
    assert peft_ref.rename(nat, "gpt_oss", "to_hf") == hf
    assert peft_ref.rename(nat, "gpt_oss", "from_hf") == nat


@test
def families_without_module_renames_keep_every_name():
    keys = ("base_model.model.model.layers.3.moe.experts.lora_gate_and_up_A",
            "base_model.model.model.layers.3.moe.gate_proj.lora_A.weight",
            "base_model.model.model.layers.3.moe.gate.lora_A.weight",
            "base_model.model.model.layers.0.mlp.experts.0.gate_proj.lora_A.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector")
    for family in ("step3p5", "deepseek_v3", "llama", "qwen3_moe", "mixtral"):
        for key in keys:
            for d in ("from_hf", "to_hf"):
                assert peft_ref.rename(key, family, d) == key, (family, key, d)


@test
def no_family_keeps_names():
    assert sorted(peft_ref.from_hf({BB + ".lora_A.weight": ("F32", arange(4, 3))}, 2)) == \
        [BB + ".lora_down_B"]


def main():
    print("1..%d" % len(TESTS))
    bad = 0
    for i, fn in enumerate(TESTS, 1):
        try:
            fn()
            print("ok %d - %s" % (i, fn.__name__.replace("_", " ")))
        except Exception:
            bad += 1
            print("not ok %d - %s" % (i, fn.__name__.replace("_", " ")))
            for line in traceback.format_exc().rstrip().splitlines():
                print("# " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
