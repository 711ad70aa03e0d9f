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
