#!/usr/bin/python3
"""Reference PEFT adapter conversion (conversion spec §2.5 and §6), and a checker.

  peft_ref.py check VIEWDIR SRCDIR [--v4] [--family auto|none|F] [--direction auto|to_hf|from_hf]
                    [--max-report N]
  peft_ref.py same DIR1 DIR2

Written from the spec's tables, element by element with explicit loops, so it
shares no code or method with sdafs (which reshapes and transposes).  Tensors
are numpy *storage* arrays (uint16 for BF16/F16); the conversion only moves
elements, so it is the same for every dtype.

Native grouped LoRA under a prefix P = "...layers.L.SEG" (SEG ends in "experts"):
  P.lora_gate_and_up_A [E,H,r]  P.lora_gate_and_up_B [E,r,U]
  P.lora_down_A        [E,I,r]  P.lora_down_B        [E,r,H]      (U = 2I gated, I not)
HF PEFT v4: P.{e}.{gate,up,down}_proj.lora_{A,B}.weight, expert e's slice transposed.
HF PEFT v5 (ParamWrapper): P.lora_A.weight = down_B rows e*r+k; P.lora_B.weight =
down_A columns k*E+e; P.base_layer.lora_A.weight = gate_and_up_B rows e*r+k;
P.base_layer.lora_B.weight = gate_and_up_A columns k*E+e.
DoRA: native X.lora_magnitude <-> HF X.lora_magnitude_vector (legacy input form
X.lora_magnitude_vector.default.weight).  Everything else passes through.

Names in the model family's own layout (spec §6, §7 item 3, §11.2): Automodel runs its
adapter's to_hf on the keys of a save after putting base_model.model. in front, and from_hf
on the keys of a load before taking it off, so a key is renamed as that family renames it
with the prefix in place.  A LoRA key is MODULE + a LoRA suffix (lora_A.weight, lora_B.weight,
base_layer. nesting, lora_embedding_A/B, DoRA magnitudes, the native grouped suffixes); the
module is renamed as the family renames MODULE.weight, the weight it adapts, and the suffix
is kept (automodel_ref.rename_key: renames only, no merge, split, transpose or cast).  Save
order: layout conversion, then the renames (spec 3.3); load order: the renames, then the
layout conversion (spec 3.2).  The family: --family, else config.json in SRCDIR (automodel_ref's
detection), else none (names kept).

`check` reads SRCDIR/adapter_model.safetensors, converts it in the direction its
names call for (native -> HF v5, or v4 with --v4; HF -> native), and compares
VIEWDIR/adapter_model.safetensors tensor by tensor (names, dtypes, shapes, bytes);
every other file of SRCDIR must be in VIEWDIR with the same bytes, and VIEWDIR
must hold no index and nothing else.  Exit 0 only if everything matches.

`same` compares the adapter_model.safetensors of two directories tensor by tensor (names,
dtypes, shapes, bytes; the order of the tensors in the file may differ).
"""

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import automodel_ref  # noqa: E402
import safetensors_lite as st  # noqa: E402

SEG = r"(?P<p>.*layers\.\d+\.(?:[^.]+\.)*?experts)"
NATIVE = re.compile(SEG + r"\.lora_(?P<which>gate_and_up|down)_(?P<ab>[AB])$")
V4 = re.compile(SEG + r"\.(?P<e>\d+)\.(?P<proj>gate|up|down)_proj\.lora_(?P<ab>[AB])\.weight$")
V5 = re.compile(SEG + r"\.(?P<base>base_layer\.)?lora_(?P<ab>[AB])\.weight$")
DORA_NATIVE = re.compile(r"^(?P<x>.+)\.lora_magnitude$")
DORA_HF = re.compile(r"^(?P<x>.+)\.lora_magnitude_vector(?:\.default\.weight)?$")
# MODULE + the suffix PEFT (or Automodel, for grouped expert LoRA) puts after a module
LORA_KEY = re.compile(r"^(?P<module>.+?)(?P<suffix>\.(?:base_layer\.)*lora_(?:[AB]\.(?:weight|bias)"
                      r"|embedding_[AB]|magnitude|magnitude_vector|magnitude_vector\.default\.weight"
                      r"|gate_and_up_[AB]|down_[AB]))$")


def rename(key, family, direction):
    """key in the family's names after from_hf ("from_hf") or to_hf ("to_hf")."""
    if family is None:
        return key
    m = LORA_KEY.match(key)
    if m is None:
        return automodel_ref.rename_key(key, family, direction)
    weight = automodel_ref.rename_key(m.group("module") + ".weight", family, direction)
    if not weight.endswith(".weight"):
        raise ValueError("%s: %s renames %s.weight to %s, no module's weight"
                         % (key, family, m.group("module"), weight))
    return weight[:-len(".weight")] + m.group("suffix")


def rename_all(d, family, direction):
    out = {}
    for name, v in d.items():
        new = rename(name, family, direction)
        if new in out:
            raise ValueError("%s and another key both become %s" % (name, new))
        out[new] = v
    return out


def _rows_expert_major(a):
    """[E, r, X] -> [r*E, X] with row e*r + k = a[e, k, :]."""
    E, r, X = a.shape
    out = np.empty((r * E, X), dtype=a.dtype)
    for e in range(E):
        for k in range(r):
            out[e * r + k, :] = a[e, k, :]
    return out


def _cols_rank_major(a):
    """[E, X, r] -> [X, r*E] with column k*E + e = a[e, :, k]."""
    E, X, r = a.shape
    out = np.empty((X, r * E), dtype=a.dtype)
    for e in range(E):
        for k in range(r):
            out[:, k * E + e] = a[e, :, k]
    return out


def _unrows(a, r):
    """Inverse of _rows_expert_major."""
    E = a.shape[0] // r
    out = np.empty((E, r, a.shape[1]), dtype=a.dtype)
    for e in range(E):
        for k in range(r):
            out[e, k, :] = a[e * r + k, :]
    return out


def _uncols(a, r):
    """Inverse of _cols_rank_major."""
    E = a.shape[1] // r
    out = np.empty((E, a.shape[0], r), dtype=a.dtype)
    for e in range(E):
        for k in range(r):
            out[e, :, k] = a[:, k * E + e]
    return out


def _gated(native, p):
    """Gated when lora_gate_and_up_B's last dim is twice lora_down_A's dim 1."""
    gu = native.get(p + ".lora_gate_and_up_B")
    d = native.get(p + ".lora_down_A")
    if gu is None or d is None:
        raise ValueError("%s: need lora_gate_and_up_B and lora_down_A to tell gating" % p)
    return gu[1].shape[2] == 2 * d[1].shape[1]


def to_hf(native, v4=False, family=None):
    """native: {name: (dtype, array)} -> the HF PEFT dict (v5 unless v4), in the names the
    family's to_hf gives (family None: names kept)."""
    return rename_all(layout_to_hf(native, v4), family, "to_hf")


def layout_to_hf(native, v4=False):
    out = {}
    for name, (dt, a) in native.items():
        m = NATIVE.match(name)
        if m:
            p, which, ab = m.group("p"), m.group("which"), m.group("ab")
            if not v4:
                if ab == "B":
                    suffix = "lora_A.weight" if which == "down" else "base_layer.lora_A.weight"
                    out[p + "." + suffix] = (dt, _rows_expert_major(a))
                else:
                    suffix = "lora_B.weight" if which == "down" else "base_layer.lora_B.weight"
                    out[p + "." + suffix] = (dt, _cols_rank_major(a))
                continue
            E = a.shape[0]
            for e in range(E):
                w = a[e]
                key = "%s.%d.%%s_proj.lora_%s.weight" % (p, e, ab)
                if which == "down":
                    out[key % "down"] = (dt, np.ascontiguousarray(w.T))
                elif ab == "A":
                    if _gated(native, p):
                        out[key % "gate"] = (dt, np.ascontiguousarray(w.T))
                    out[key % "up"] = (dt, np.ascontiguousarray(w.T))
                elif _gated(native, p):
                    i = w.shape[1] // 2
                    out[key % "gate"] = (dt, np.ascontiguousarray(w[:, :i].T))
                    out[key % "up"] = (dt, np.ascontiguousarray(w[:, i:].T))
                else:
                    out[key % "up"] = (dt, np.ascontiguousarray(w.T))
            continue
        m = DORA_NATIVE.match(name)
        out[m.group("x") + ".lora_magnitude_vector" if m else name] = (dt, a)
    return out


def from_hf(hf, r, family=None):
    """HF PEFT dict (v4 and/or v5 keys) -> native dict in the names the family's from_hf
    gives (family None: names kept).  r: the LoRA rank."""
    return layout_from_hf(rename_all(hf, family, "from_hf"), r)


def layout_from_hf(hf, r):
    out = {}
    v4 = {}
    experts = 0
    for name, (dt, a) in hf.items():
        m = V4.match(name)
        if m:
            e = int(m.group("e"))
            experts = max(experts, e + 1)
            v4.setdefault((m.group("p"), m.group("proj"), m.group("ab")), {})[e] = name
    used = set()

    def complete(p, proj, ab):
        got = v4.get((p, proj, ab), {})
        return all(e in got for e in range(experts)) and experts > 0

    def stacked(p, proj, ab):
        names = [v4[(p, proj, ab)][e] for e in range(experts)]
        used.update(names)
        dt = hf[names[0]][0]
        return dt, np.stack([np.ascontiguousarray(hf[n][1].T) for n in names])

    for p in sorted({k[0] for k in v4}):
        gated = any(k[0] == p and k[1] == "gate" for k in v4)
        if gated:
            if complete(p, "gate", "A"):
                out[p + ".lora_gate_and_up_A"] = stacked(p, "gate", "A")
                used.update(v4.get((p, "up", "A"), {}).values())     # the duplicate
            if complete(p, "gate", "B") and complete(p, "up", "B"):
                dt, g = stacked(p, "gate", "B")
                _, u = stacked(p, "up", "B")
                out[p + ".lora_gate_and_up_B"] = (dt, np.concatenate([g, u], axis=-1))
        else:
            for ab in "AB":
                if complete(p, "up", ab):
                    out[p + ".lora_gate_and_up_" + ab] = stacked(p, "up", ab)
        for ab in "AB":
            if complete(p, "down", ab):
                out[p + ".lora_down_" + ab] = stacked(p, "down", ab)

    for name, (dt, a) in hf.items():
        if name in used:
            continue
        m = V5.match(name)
        if m:
            p, base, ab = m.group("p"), m.group("base"), m.group("ab")
            if ab == "A":
                out[p + (".lora_gate_and_up_B" if base else ".lora_down_B")] = (dt, _unrows(a, r))
            else:
                out[p + (".lora_gate_and_up_A" if base else ".lora_down_A")] = (dt, _uncols(a, r))
            continue
        m = DORA_HF.match(name)
        out[m.group("x") + ".lora_magnitude" if m else name] = (dt, a)
    return out


def is_native(names):
    return any(NATIVE.match(n) or DORA_NATIVE.match(n) for n in names)


def read_adapter(path):
    f = st.SafetensorsFile(path, strict=True)
    return {n: (f.tensors[n][0], np.array(f.array(n, mmap=False))) for n in f.order}


def is_hf(names):
    return any(V4.match(n) or V5.match(n) or DORA_HF.match(n) for n in names)


def family_of(srcdir, family):
    """--family: a name, "none", or "auto" (config.json's family; none without one)."""
    if family == "none":
        return None
    if family != "auto":
        return automodel_ref.detect_family({}, family)
    path = os.path.join(srcdir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        return automodel_ref.detect_family(json.load(open(path)))
    except ValueError:
        return None         # a family the reference does not know: names kept


def expected(src, cfg, v4=False, family=None, direction="auto"):
    """The view of the adapter src: to_hf for native LoRA, from_hf for HF PEFT keys; an
    adapter with neither (only dense LoRA) goes the way direction says (default from_hf)."""
    if direction == "auto":
        direction = "to_hf" if is_native(src) else "from_hf"
    if direction == "to_hf":
        return to_hf(src, v4, family)
    return from_hf(src, cfg.get("r"), family)


def check(viewdir, srcdir, v4=False, limit=50, family="auto", direction="auto"):
    problems = []

    def bad(msg):
        if len(problems) < limit:
            print("FAIL " + msg)
        problems.append(msg)

    src = read_adapter(os.path.join(srcdir, "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(srcdir, "adapter_config.json")))
    want = expected(src, cfg, v4, family_of(srcdir, family), direction)
    try:
        got = read_adapter(os.path.join(viewdir, "adapter_model.safetensors"))
    except (OSError, st.FormatError) as e:
        bad("view adapter_model.safetensors: %s" % e)
        got = {}
    for n in sorted(set(want) | set(got)):
        if n not in got:
            bad("missing tensor %s" % n)
        elif n not in want:
            bad("unexpected tensor %s" % n)
        elif got[n][0] != want[n][0] or got[n][1].shape != want[n][1].shape:
            bad("%s: %s%s, want %s%s" % (n, got[n][0], list(got[n][1].shape), want[n][0],
                                         list(want[n][1].shape)))
        elif got[n][1].tobytes() != want[n][1].tobytes():
            bad("%s: bytes differ" % n)
    others = sorted(f for f in os.listdir(srcdir) if f != "adapter_model.safetensors")
    view_files = sorted(f for f in os.listdir(viewdir) if f != "adapter_model.safetensors")
    if view_files != others:
        bad("view files %s, want %s" % (view_files, others))
    for f in others:
        p = os.path.join(viewdir, f)
        if os.path.isfile(p) and open(p, "rb").read() != open(os.path.join(srcdir, f), "rb").read():
            bad("%s differs from the source" % f)
    print("%s: %d tensors compared, %d problems" % (viewdir, len(want), len(problems)))
    return not problems


def same(dir1, dir2):
    a, b = (read_adapter(os.path.join(d, "adapter_model.safetensors")) for d in (dir1, dir2))
    bad = 0
    for n in sorted(set(a) | set(b)):
        if n not in a or n not in b:
            print("FAIL %s only in %s" % (n, dir1 if n in a else dir2))
        elif a[n][0] != b[n][0] or a[n][1].shape != b[n][1].shape or \
                a[n][1].tobytes() != b[n][1].tobytes():
            print("FAIL %s differs" % n)
        else:
            continue
        bad += 1
    print("%s vs %s: %d tensors, %d differ" % (dir1, dir2, len(set(a) | set(b)), bad))
    return bad == 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("viewdir")
    c.add_argument("srcdir")
    c.add_argument("--v4", action="store_true")
    c.add_argument("--max-report", type=int, default=50)
    c.add_argument("--family", default="auto",
                   help="the model family whose names the view uses: auto (config.json), none, "
                        "or one of " + ", ".join(automodel_ref.FAMILIES))
    c.add_argument("--direction", choices=("auto", "to_hf", "from_hf"), default="auto",
                   help="for an adapter with only dense LoRA: whose renames apply")
    c = sub.add_parser("same")
    c.add_argument("dir1")
    c.add_argument("dir2")
    a = ap.parse_args(argv)
    if a.cmd == "same":
        return 0 if same(a.dir1, a.dir2) else 1
    return 0 if check(a.viewdir, a.srcdir, a.v4, a.max_report, a.family, a.direction) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
