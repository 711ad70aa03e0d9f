#!/usr/bin/python3
"""Compare an HF checkpoint with the HF checkpoint it becomes after HF -> native -> HF.

  roundtrip_diff.py HFDIR HF2DIR [--family auto|nemotron_h|...] [--dtype-changed]
                    [--max-report N] [--quiet]

HFDIR is the original HF checkpoint, HF2DIR the HF checkpoint obtained by converting it
to native (from_hf) and back (to_hf), e.g. an sdafs HF view of an sdafs native view, or
automodel_ref.py --direction to_hf --view of a native checkpoint.  Passes (exit 0) iff
config.json is identical and every tensor is identical (name, dtype, shape, bytes) except
for the differences Automodel itself makes, which are listed as NOTE lines and counted:

  widened-f32   (nemotron_h, Omni LLM) Mamba A_log/dt_bias/D, and keys containing
                e_score_correction_bias (forced F32), are F32 in HF2; their values equal
                the original's widened to F32, bit for bit (NaN payloads included).
  scale-inv     *_scale_inv dropped by the MoE mixin merge: every one for qwen3_moe and
                mixtral, nemotron_h with n_routed_experts, and the Omni language_model.*;
                never for step3p5 or dense Nemotron-H.
  truncated     (nemotron_h, Omni LLM) layers at or after num_hidden_layers
                (llm_config's for Omni) dropped by from_hf.
  gate-ignored  (nemotron_h, Omni LLM) per-expert gate_proj of the non-gated (relu2)
                experts, ignored by the merge.
  gate-bias     (step3p5) an HF moe.gate.bias (or moe.gate.e_score_correction_bias) is
                read as-is and written back as moe.router_bias (same bytes; the router_bias
                key is not in the original).
  dtype         only with --dtype-changed: a floating tensor whose dtype (or values)
                changed by casts, e.g. experts cast to the adapter dtype or a view mounted
                with dtype=; HF2 must equal the original cast to HF2's dtype, directly or
                through one intermediate float dtype (named in the note).

Anything else (a missing or extra tensor, another shape, dtype or byte difference, a
different config.json) is a FAIL line naming the tensor and the first differing element.
Other pass-through files are compared too but only reported as NOTE (a generated README
names its own command line).
"""

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import automodel_ref as ref  # noqa: E402
import check_view  # noqa: E402
import safetensors_lite as st  # noqa: E402

CATEGORIES = ("widened-f32", "scale-inv", "truncated", "gate-ignored", "gate-bias", "dtype")


class Report:
    def __init__(self, limit, quiet):
        self.limit = limit
        self.quiet = quiet
        self.fails = 0
        self.notes = {c: 0 for c in CATEGORIES}
        self.shown = 0

    def _show(self, line):
        self.shown += 1
        if self.shown <= self.limit:
            print(line, flush=True)
        elif self.shown == self.limit + 1:
            print("(further lines not shown)", flush=True)

    def fail(self, msg):
        self.fails += 1
        self._show("FAIL: " + msg)

    def note(self, category, msg):
        if category in self.notes:
            self.notes[category] += 1
        if not self.quiet:
            self._show("NOTE: %s: %s" % (category, msg))


# ---------------------------------------------------------------- family rules

class Rules:
    """Which documented differences a family's round trip may show."""

    def __init__(self, family, config):
        self.family = family
        self.config = config
        self.llm_prefix = "language_model." if family == "nemotron_omni" else ""
        nemo_cfg = (config.get("llm_config") or {}) if family == "nemotron_omni" else config
        self.nemo = family in ("nemotron_h", "nemotron_omni")
        self.nemo_moe = self.nemo and ref.n_routed_experts(nemo_cfg) is not None
        self.num_layers = int(nemo_cfg.get("num_hidden_layers") or 0) if self.nemo else 0

    def nemo_key(self, key):
        """The key inside the Nemotron-H LLM (None when the key is not part of it)."""
        if not self.nemo:
            return None
        if self.llm_prefix:
            return key[len(self.llm_prefix):] if key.startswith(self.llm_prefix) else None
        return key

    def widened(self, key):
        k = self.nemo_key(key)
        return k is not None and ref.nemotron_forced_f32(k)

    def scale_inv_dropped(self, key):
        if not key.endswith("_scale_inv"):
            return False
        if self.family in ("qwen3_moe", "mixtral"):
            return True
        return self.nemo_moe and self.nemo_key(key) is not None

    def truncated(self, key):
        k = self.nemo_key(key)
        if k is None or self.num_layers <= 0:
            return False
        m = re.match(r"^(?:backbone|model)\.layers\.(\d+)\.", k)
        return m is not None and int(m.group(1)) >= self.num_layers

    def gate_ignored(self, key):
        k = self.nemo_key(key)
        return (k is not None and self.nemo_moe and
                re.search(r"\.mixer\.experts\.\d+\.gate_proj\.weight$", k) is not None)

    def gate_bias_target(self, key, hf2):
        """For a Step3p5 moe.gate.bias / moe.gate.e_score_correction_bias key, the router_bias
        key HF2 holds instead (to_hf renames both; from_hf keeps them)."""
        if self.family != "step3p5" or not (".moe.gate.bias" in key or ".moe.gate.e_score_correction_bias" in key):
            return None
        m = re.search(r"layers\.(\d+)", key)
        if m is None:
            return None
        for prefix in ("model.", ""):
            cand = "%slayers.%s.moe.router_bias" % (prefix, m.group(1))
            if cand in hf2:
                return cand
        return None


# ---------------------------------------------------------------- comparison

def raw(t):
    return np.ascontiguousarray(t.array())


def same_bits(a, b):
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def cast_chain_matches(orig, dt_from, got, dt_to):
    """None, or the cast chain (e.g. "F32->BF16->F32") that turns orig into got."""
    if dt_from not in ref.CASTABLE or dt_to not in ref.CASTABLE:
        return None
    if same_bits(np.ascontiguousarray(st.cast(orig, dt_from, dt_to)), got):
        return "%s->%s" % (dt_from, dt_to)
    for mid in ref.CASTABLE:
        if mid in (dt_from, dt_to):
            continue
        via = st.cast(np.ascontiguousarray(st.cast(orig, dt_from, mid)), mid, dt_to)
        if same_bits(np.ascontiguousarray(via), got):
            return "%s->%s->%s" % (dt_from, mid, dt_to)
    return None


def describe(got_t, got, want_t, want):
    return check_view.first_difference(got.tobytes(), want.tobytes(), want_t.dtype, want_t.shape)


def compare_tensor(key, t1, t2, rules, dtype_changed, rep):
    """Original t1 vs round-tripped t2 under the same key."""
    if t1.shape != t2.shape:
        rep.fail("%s: shape %s in HF2, %s in the original" % (key, list(t2.shape), list(t1.shape)))
        return
    a1, a2 = raw(t1), raw(t2)
    if t1.dtype == t2.dtype and same_bits(a1, a2):
        return
    if rules.widened(key) and t2.dtype == "F32" and t1.dtype in ref.CASTABLE and t1.dtype != "F32":
        widened = np.ascontiguousarray(st.cast(a1, t1.dtype, "F32"))
        if same_bits(widened, a2):
            rep.note("widened-f32", "%s: %s -> F32, values equal after widening" % (key, t1.dtype))
            return
        else:
            rep.fail("%s: %s -> F32 (allowed), but the values differ from the widened original: %s"
                     % (key, t1.dtype, describe(t2, a2, t2, widened)))
            return
    if dtype_changed:
        chain = cast_chain_matches(a1, t1.dtype, a2, t2.dtype)
        if chain is not None:
            what = "dtype %s -> %s" % (t1.dtype, t2.dtype) if t1.dtype != t2.dtype else "values rounded"
            rep.note("dtype", "%s: %s (equals the original cast %s)" % (key, what, chain))
            return
    if t1.dtype != t2.dtype:
        extra = "" if dtype_changed else " (run with --dtype-changed if a dtype change is intended)"
        if t1.dtype in ref.CASTABLE and t2.dtype in ref.CASTABLE:
            want = np.ascontiguousarray(st.cast(a1, t1.dtype, t2.dtype))
            extra = "; vs the original cast to %s: %s%s" % (t2.dtype, describe(t2, a2, t2, want), extra) \
                if not same_bits(want, a2) else extra
        rep.fail("%s: dtype %s in HF2, %s in the original%s" % (key, t2.dtype, t1.dtype, extra))
        return
    rep.fail("%s: %s %s, bytes differ: %s" % (key, t1.dtype, list(t1.shape), describe(t2, a2, t1, a1)))


def compare_files(dir1, dir2, rep):
    """config.json must be identical; other pass-through files are only noted."""
    f1, _ = check_view.walk(dir1)
    f2, _ = check_view.walk(dir2)
    p1 = {p for p in f1 if not ref.is_weight_file(p)}
    p2 = {p for p in f2 if not ref.is_weight_file(p)}
    for rel in sorted(p1 | p2):
        if rel not in p2:
            (rep.fail if rel == "config.json" else lambda m: rep.note("file", m))(
                "file %s is missing from HF2" % rel)
        elif rel not in p1:
            rep.note("file", "file %s is only in HF2" % rel)
        else:
            same, off = check_view.same_file_bytes(os.path.join(dir1, rel), os.path.join(dir2, rel))
            if not same:
                msg = "file %s differs at byte %d" % (rel, off)
                if rel == "config.json":
                    rep.fail(msg)
                else:
                    rep.note("file", msg)


def roundtrip_diff(dir1, dir2, family="auto", dtype_changed=False, limit=200, quiet=False):
    """Returns (failures, notes by category)."""
    rep = Report(limit, quiet)
    try:
        config = ref.load_config(dir1)
        family = ref.detect_family(config, family)
        hf1 = ref.load_hf_state_dict(dir1)
        hf2 = ref.load_hf_state_dict(dir2)
    except (ValueError, st.FormatError, OSError) as e:
        rep.fail("cannot load: %s" % e)
        return rep.fails, rep.notes
    rules = Rules(family, config)
    compare_files(dir1, dir2, rep)
    explained_extra = set()
    for key in sorted(hf1):
        t1 = hf1[key]
        if key in hf2:
            compare_tensor(key, t1, hf2[key], rules, dtype_changed, rep)
            continue
        if rules.truncated(key):
            rep.note("truncated", "%s: layer >= num_hidden_layers=%d dropped" % (key, rules.num_layers))
        elif rules.scale_inv_dropped(key):
            rep.note("scale-inv", "%s: dropped by the MoE merge" % key)
        elif rules.gate_ignored(key):
            rep.note("gate-ignored", "%s: gate_proj of non-gated (relu2) experts ignored" % key)
        else:
            target = rules.gate_bias_target(key, hf2)
            if target is not None and target not in hf1:
                explained_extra.add(target)
                t2 = hf2[target]
                before = rep.fails
                compare_tensor("%s (as %s)" % (key, target), t1, t2, rules, dtype_changed, rep)
                if rep.fails == before:
                    rep.note("gate-bias", "%s: written back as %s" % (key, target))
            else:
                rep.fail("%s (%s %s) is missing from HF2" % (key, t1.dtype, list(t1.shape)))
    for key in sorted(set(hf2) - set(hf1) - explained_extra):
        t2 = hf2[key]
        rep.fail("%s (%s %s) is in HF2 but not in the original" % (key, t2.dtype, list(t2.shape)))
    summary = ", ".join("%d %s" % (n, c) for c, n in rep.notes.items() if n)
    status = "PASS" if rep.fails == 0 else "FAIL (%d differences)" % rep.fails
    print("roundtrip_diff: %s: %s: %d tensors in the original, %d in HF2; documented differences: %s"
          % (status, family, len(hf1), len(hf2), summary or "none"))
    return rep.fails, rep.notes


def main(argv):
    p = argparse.ArgumentParser(description="Compare an HF checkpoint with its HF -> native -> HF round trip.")
    p.add_argument("hfdir", help="the original HF checkpoint")
    p.add_argument("hf2dir", help="the HF checkpoint after HF -> native -> HF")
    p.add_argument("--family", choices=("auto",) + ref.FAMILIES, default="auto")
    p.add_argument("--dtype-changed", action="store_true",
                   help="allow floating tensors whose dtype/values changed by casts (checked against the casts)")
    p.add_argument("--max-report", type=int, default=200, help="lines to print (default 200)")
    p.add_argument("--quiet", action="store_true", help="no NOTE lines, only failures and the summary")
    a = p.parse_args(argv)
    fails, _ = roundtrip_diff(a.hfdir, a.hf2dir, a.family, a.dtype_changed, a.max_report, a.quiet)
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
