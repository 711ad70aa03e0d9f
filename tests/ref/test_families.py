#!/usr/bin/python3
"""End-to-end test of the Python tooling for every family (TAP output).

For each case: generate the HF fixture and the native fixture (gen_checkpoint.py
--layout native); the native fixture must equal the reference from_hf of the HF one
(check_view.py --direction from_hf); the reference to_hf of the native fixture is
written as a view (automodel_ref.py --direction to_hf --view) and checked with
check_view.py --direction to_hf; roundtrip_diff.py of the original against it must
pass (also for an explicit --dtype fp32 HF view); flipping one byte of a view must make
check_view.py and roundtrip_diff.py fail; EP views must be exact slices of the full
ones.  Needs no sdafs build: it tests the independent side only.

Usage: test_families.py [--keep DIR] [--only FAMILY]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import automodel_ref as ref  # noqa: E402
import safetensors_lite as st  # noqa: E402

PY = "/usr/bin/python3"
GEN = os.path.join(HERE, "..", "fixtures", "gen_checkpoint.py")
REF = os.path.join(HERE, "automodel_ref.py")
CHECK = os.path.join(HERE, "check_view.py")
RT = os.path.join(HERE, "roundtrip_diff.py")

# (family, generator options, the round trip changes dtypes)
CASES = [
    ("nemotron_h", [], False),
    ("nemotron_h", ["--mtp", "--extra-layer", "--scale-inv", "--special-values", "--shards", "3"], False),
    ("nemotron_h", ["--kind", "dense", "--mtp", "--scale-inv", "--special-values"], False),
    ("nemotron_h", ["--expert-dtype", "f32", "--special-values", "--torch-dtype", "float16"], True),
    ("step3p5", [], False),
    ("step3p5", ["--special-values", "--scale-inv", "--no-model-prefix", "--expert-dtype", "f32"], True),
    ("step3p5", ["--legacy-gate-bias", "--extra-layer", "--moe-layers", "0,2", "--torch-dtype", "none"], False),
    ("nemotron_omni", [], False),
    ("nemotron_omni", ["--special-values", "--scale-inv", "--extra-layer", "--shards", "4"], False),
    ("qwen3_moe", [], False),
    ("qwen3_moe", ["--special-values", "--scale-inv", "--expert-dtype", "f32", "--torch-dtype", "float16"], True),
    ("qwen3_moe", ["--no-model-prefix", "--dense-layers", "", "--extra-layer"], False),
    ("mixtral", [], False),
    ("mixtral", ["--special-values", "--scale-inv", "--extra-layer", "--shards", "1", "--no-index"], False),
    ("llama", [], False),
    ("llama", ["--tied", "--special-values", "--scale-inv", "--extra-layer", "--shards", "3"], False),
]

# Quantized families (no roundtrip_diff: the HF view is dequantized, names and
# dtypes change on purpose).  Dims not multiples of 128 give partial FP8 blocks.
QUANT_CASES = [
    ("deepseek_v3", ["--hidden", "192", "--moe-inter", "96", "--special-values"]),
    ("deepseek_v3", ["--no-quant", "--shards", "3"]),
    ("gpt_oss", ["--hidden", "192", "--moe-inter", "96", "--special-values"]),
    ("gpt_oss", ["--no-quant"]),
]

RESULTS = []


def ok(cond, name, diag=""):
    RESULTS.append(cond)
    print("%s %d - %s" % ("ok" if cond else "not ok", len(RESULTS), name), flush=True)
    if not cond and diag:
        for line in diag.rstrip().splitlines()[-25:]:
            print("# " + line)


def run(*args):
    p = subprocess.run([PY] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return p.returncode, p.stdout


def flip_byte(viewdir, prefer):
    """Flip one bit in the data of the first tensor whose name contains prefer (else the
    first tensor) of the view; returns the tensor name."""
    files = sorted(f for f in os.listdir(viewdir) if f.endswith(".safetensors"))
    chosen = None
    for fname in files:
        f = st.SafetensorsFile(os.path.join(viewdir, fname))
        for name in f.order:
            dt, shape, b, e = f.tensors[name]
            if e > b and (chosen is None or (prefer in name and prefer not in chosen[1])):
                chosen = (f, name, b, e)
    f, name, b, e = chosen
    at = f.data_start + (b + e) // 2
    with open(f.path, "r+b") as fh:
        fh.seek(at)
        x = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([x ^ 0x01]))
    return name


def copy_with_readme(src, dst, readme_from):
    """A copy of src whose README.md is readme_from's (generated READMEs name their command)."""
    shutil.copytree(src, dst)
    shutil.copyfile(os.path.join(readme_from, "README.md"), os.path.join(dst, "README.md"))


def case(work, i, family, opts, dtype_changed):
    tag = "%s %s" % (family, " ".join(opts) or "(default)")
    d = os.path.join(work, "c%02d" % i)
    hf, nat, hf2, hf3 = (os.path.join(d, x) for x in ("hf", "native", "hf2", "hf3"))
    rc1, o1 = run(GEN, hf, "--family", family, *opts)
    rc2, o2 = run(GEN, nat, "--family", family, "--layout", "native", *opts)
    ok(rc1 == 0 and rc2 == 0, "%s: generates HF and native fixtures" % tag, o1 + o2)
    if rc1 or rc2:
        return
    cmp_dir = os.path.join(d, "native-cmp")
    copy_with_readme(nat, cmp_dir, hf)
    rc, out = run(CHECK, cmp_dir, hf, "--direction", "from_hf", "--family", family)
    if "--no-index" in opts:        # a view always has an index; this fixture has none
        fails = [x for x in out.splitlines() if x.startswith("FAIL: ")]
        ok(rc != 0 and fails == ["FAIL: model.safetensors.index.json is missing"],
           "%s: native fixture == reference from_hf of the HF fixture, apart from the index" % tag, out)
    else:
        ok(rc == 0, "%s: native fixture == reference from_hf of the HF fixture" % tag, out)

    rc, out = run(REF, nat, "--direction", "to_hf", "--view", hf2, "--quiet", "--shards", "2")
    ok(rc == 0, "%s: reference to_hf view of the native fixture" % tag, out)
    rc, out = run(CHECK, hf2, nat, "--direction", "to_hf")
    ok(rc == 0, "%s: check_view --direction to_hf passes on it" % tag, out)

    flags = ["--dtype-changed"] if dtype_changed else []
    rc, out = run(RT, hf, hf2, "--quiet", *flags)
    ok(rc == 0, "%s: roundtrip_diff HF vs HF->native->HF passes%s" % (tag, " (--dtype-changed)" if flags else ""),
       out)
    print("# " + out.strip().splitlines()[-1])
    if dtype_changed:
        rc, out = run(RT, hf, hf2, "--quiet")
        ok(rc != 0 and "dtype" in out, "%s: without --dtype-changed the cast is reported" % tag, out)

    rc, out = run(REF, nat, "--direction", "to_hf", "--dtype", "fp32", "--view", hf3, "--quiet")
    rc2, out2 = run(RT, hf, hf3, "--quiet", "--dtype-changed")
    rc3, out3 = run(CHECK, hf3, nat, "--direction", "to_hf", "--dtype", "fp32")
    ok(rc == 0 and rc2 == 0 and rc3 == 0, "%s: --dtype fp32 HF view: check_view and roundtrip_diff pass" % tag,
       out + out2 + out3)
    shape_ok = all(t.dtype in ("F32", "I64", "I32", "U8") for t in ref.load_hf_state_dict(hf3).values())
    ok(shape_ok, "%s: --dtype fp32 HF view holds only F32 floats" % tag)

    bad = os.path.join(d, "hf2-bad")
    shutil.copytree(hf2, bad)
    name = flip_byte(bad, "expert" if family != "step3p5" else "moe.")
    rc, out = run(CHECK, bad, nat, "--direction", "to_hf")
    rc2, out2 = run(RT, hf, bad, "--quiet", *flags)
    ok(rc != 0 and name in out and rc2 != 0 and name in out2,
       "%s: one flipped byte in HF view tensor %s fails check_view and roundtrip_diff" % (tag, name), out + out2)
    name = flip_byte(cmp_dir, "norm")
    rc, out = run(CHECK, cmp_dir, hf, "--direction", "from_hf")
    ok(rc != 0 and name in out, "%s: one flipped byte in native tensor %s fails check_view" % (tag, name), out)

    ep_checks(tag, family, hf, nat)


def quant_case(work, i, family, opts):
    tag = "%s %s" % (family, " ".join(opts) or "(default)")
    d = os.path.join(work, "q%02d" % i)
    hf, nat, hf2 = (os.path.join(d, x) for x in ("hf", "native", "hf2"))
    rc1, o1 = run(GEN, hf, "--family", family, *opts)
    rc2, o2 = run(GEN, nat, "--family", family, "--layout", "native", *opts)
    ok(rc1 == 0 and rc2 == 0, "%s: generates HF and native fixtures" % tag, o1 + o2)
    if rc1 or rc2:
        return
    quant = "--no-quant" not in opts
    dts = {t.dtype for t in ref.load_hf_state_dict(hf).values()}
    ok(("F8_E4M3" in dts if family == "deepseek_v3" else "U8" in dts) == quant,
       "%s: the HF fixture is %squantized" % (tag, "" if quant else "not "), str(dts))
    cmp_dir = os.path.join(d, "native-cmp")
    copy_with_readme(nat, cmp_dir, hf)
    rc, out = run(CHECK, cmp_dir, hf, "--direction", "from_hf", "--family", family)
    ok(rc == 0, "%s: native fixture == reference from_hf of the HF fixture" % tag, out)
    native = ref.load_hf_state_dict(nat)
    ok(all(t.dtype not in ("F8_E4M3", "U8") and not k.endswith(("_scale_inv", "_blocks", "_scales"))
           for k, t in native.items()), "%s: the native state dict holds no quantized tensor" % tag)
    rc, out = run(REF, nat, "--direction", "to_hf", "--view", hf2, "--quiet", "--shards", "2")
    rc2, out2 = run(CHECK, hf2, nat, "--direction", "to_hf")
    ok(rc == 0 and rc2 == 0, "%s: reference to_hf view of the native fixture passes check_view" % tag, out + out2)
    hf_keys = set(ref.load_hf_state_dict(hf))
    back = set(ref.load_hf_state_dict(hf2))
    want = {k for k in hf_keys if not k.endswith(("_scale_inv", "_scales"))}
    want = {k[:-len("_blocks")] if k.endswith("_blocks") else k for k in want}
    ok(back == want, "%s: HF -> native -> HF gives the source's names without the scales" % tag,
       "missing %s extra %s" % (sorted(want - back)[:5], sorted(back - want)[:5]))
    name = flip_byte(cmp_dir, "experts")
    rc, out = run(CHECK, cmp_dir, hf, "--direction", "from_hf")
    ok(rc != 0 and name in out, "%s: one flipped byte in native tensor %s fails check_view" % (tag, name), out)
    if family == "deepseek_v3":
        ep_checks(tag, family, hf, nat)


def quant_selfcheck():
    """The decoders against values worked out by hand from the formats."""
    codes = np.array([0x00, 0x80, 0x01, 0x07, 0x08, 0x38, 0xC0, 0x7E, 0x7F, 0xFF], dtype=np.uint8)
    want = [0x00000000, 0x80000000, 0x3B000000, 0x3C600000, 0x3C800000, 0x3F800000, 0xC0000000,
            0x43E00000, 0x7FF00000, 0xFFF00000]
    got = ref.fp8_e4m3_to_f32(codes).view(np.uint32).tolist()
    ok(got == want, "reference F8_E4M3 decode of hand-checked codes", "%s" % [hex(x) for x in got])
    q = ref.Tensor("F8_E4M3", (130, 129), lambda: np.full((130, 129), 0x38, dtype=np.uint8))
    s = ref.Tensor("F32", (2, 2), lambda: np.array([[1, 2], [4, np.inf]], dtype=np.float32))
    w = ref.dequant_fp8_block(q, s, "F32").array()
    ok(w[127, 127] == 1 and w[127, 128] == 2 and w[128, 0] == 4 and np.isinf(w[129, 128]),
       "reference FP8 dequant picks the scale of each 128x128 block, partial blocks included")
    blocks = ref.Tensor("U8", (1, 1, 1, 2), lambda: np.array([[[[0x21, 0xF0]]]], dtype=np.uint8))
    for scale, vals in ((127, [0.5, 1.0, 0.0, -6.0]), (128, [1.0, 2.0, 0.0, -12.0])):
        sc = ref.Tensor("U8", (1, 1, 1), lambda scale=scale: np.array([[[scale]]], dtype=np.uint8))
        got = ref.dequant_mxfp4(blocks, sc, "F32").array().reshape(-1).tolist()
        ok(got == vals, "reference MXFP4: low nibble first, times 2^(%d-127)" % scale, str(got))
    sc = ref.Tensor("U8", (1, 1, 1), lambda: np.array([[[255]]], dtype=np.uint8))
    got = ref.dequant_mxfp4(blocks, sc, "BF16").array().reshape(-1).tolist()
    ok(got == [0x7F80, 0x7F80, 0x7FC0, 0xFF80], "reference MXFP4: scale 255 is 2^128 = Inf in F32 (0 * Inf = NaN)",
       str([hex(x) for x in got]))


def ep_checks(tag, family, hf, nat):
    """EP views are exact pieces of the full views (in process)."""
    cfg = ref.load_config(hf)
    if family == "llama" or (family == "nemotron_h" and ref.n_routed_experts(cfg) is None):
        return                      # dense: no experts to split
    size = 3
    full_native = ref.expected_tensors(hf)
    full_hf = ref.expected_tensors(nat, direction="to_hf")
    problems = []
    seen_hf = set()
    for rank in range(size):
        ep = (rank, size)
        n_ep = ref.expected_tensors(hf, ep=ep)
        e = {"nemotron_h": cfg.get("n_routed_experts"), "step3p5": cfg.get("moe_num_experts"),
             "qwen3_moe": cfg.get("num_experts"), "mixtral": cfg.get("num_local_experts"),
             "nemotron_omni": (cfg.get("llm_config") or {}).get("n_routed_experts"),
             "deepseek_v3": cfg.get("n_routed_experts")}[family]
        start, end = ref.expert_range(e, ep)
        if sorted(n_ep) != sorted(full_native):
            problems.append("rank %d: native key set differs" % rank)
        for k, t in n_ep.items():
            full = full_native[k]
            want = full.array()
            if k.endswith("_projs"):
                want = want[start:end]
            if t.dtype != full.dtype or not np.array_equal(np.asarray(t.array()).view(np.uint8),
                                                           np.ascontiguousarray(want).view(np.uint8)):
                problems.append("rank %d: native %s is not rows [%d:%d] of the full tensor" % (rank, k, start, end))
        h_ep = ref.expected_tensors(nat, ep=ep, direction="to_hf")
        for k, t in h_ep.items():
            if family == "step3p5" and k.endswith("_proj.weight") and ".moe." in k:
                want = np.ascontiguousarray(full_hf[k].array()[start:end])
            elif k in full_hf:
                want = full_hf[k].array()
            else:
                problems.append("rank %d: HF key %s is not in the full HF view" % (rank, k))
                continue
            if not np.array_equal(np.ascontiguousarray(t.array()).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8)):
                problems.append("rank %d: HF %s differs from the full view" % (rank, k))
            seen_hf.add(k)
        # to_hf of the rank's own native view (local shards) gives the same HF view
        h_local = ref.to_hf(n_ep, cfg, ep=ep)
        if sorted(h_local) != sorted(h_ep) or any(h_local[k].tobytes() != h_ep[k].tobytes() for k in h_ep):
            problems.append("rank %d: to_hf of the rank's native view differs from the rank's HF view" % rank)
    if sorted(seen_hf) != sorted(full_hf):
        problems.append("the ranks' HF views together miss %d keys" % len(set(full_hf) - seen_hf))
    ok(not problems, "%s: EP 3 ranks: native/HF views are exact slices, local shards convert alike" % tag,
       "\n".join(problems[:20]))


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    p.add_argument("--only", help="run only this family's cases")
    a = p.parse_args(argv)
    cases = [c for c in CASES if a.only in (None, c[0])]
    work = a.keep or tempfile.mkdtemp(prefix="sdafs-families.")
    os.makedirs(work, exist_ok=True)
    try:
        for i, (family, opts, changed) in enumerate(cases):
            try:
                case(work, i, family, opts, changed)
            except Exception:
                ok(False, "%s %s: no exception" % (family, " ".join(opts)), traceback.format_exc())
        for i, (family, opts) in enumerate(c for c in QUANT_CASES if a.only in (None, c[0])):
            try:
                quant_case(work, i, family, opts)
            except Exception:
                ok(False, "%s %s: no exception" % (family, " ".join(opts)), traceback.format_exc())
        quant_selfcheck()
        # gen option checks
        rc, out = run(GEN, os.path.join(work, "x"), "--family", "mixtral", "--pattern", "ME")
        ok(rc != 0 and "--pattern" in out, "gen_checkpoint refuses Nemotron options for other families", out)
        rc, out = run(GEN, os.path.join(work, "y"), "--family", "nemotron_h", "--no-model-prefix")
        ok(rc != 0, "gen_checkpoint refuses --no-model-prefix for nemotron_h", out)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("1..%d" % len(RESULTS))
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
