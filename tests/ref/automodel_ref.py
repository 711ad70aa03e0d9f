#!/usr/bin/python3
"""Independent reference for NeMo Automodel's NemotronV3 `from_hf` (HF -> native).

Given a HuggingFace Nemotron-H checkpoint directory, compute the native state
dict Automodel would hold after loading it: {key: (dtype, shape, bytes)}.
Written straight from shared/conversion-spec.md sections 2.2, 2.4 and 3, as
plain dict/numpy code, so it can serve as the oracle for sdafs' native view.

from_hf order (spec 3.2):
  1. drop (backbone|model).layers.N.* with N >= num_hidden_layers
  2. set mtp.* aside
  3. rename (norm_f -> norm, embeddings -> embed_tokens, backbone. -> model.),
     route A_log/dt_bias/D into mixer._fp32_params., upcast them to F32
  4. MoE config (n_routed_experts present): merge routed experts
     up_proj[I,H]  -> gate_and_up_projs[E,H,I] (GU[e] = up_e^T)
     down_proj[H,I] -> down_projs[E,I,H]       (D[e]  = down_e^T)
     cast the stacked tensors to the adapter dtype, drop every *_scale_inv,
     ignore gate_proj (relu2 is non-gated); dense: no merge at all
  5. mtp.*: strip "mtp.", route/upcast, merge the same way, re-prefix "mtp."

Tensors stay lazy (memory-mapped sources, merged groups built on demand), so a
large checkpoint can be checked one tensor at a time.

CLI: automodel_ref.py SRCDIR [--dtype auto|bf16|fp16|fp32] [--out DIR]
                             [--view DIR [--shards N]] [--ep-rank R --ep-size N] [--quiet]
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite as st  # noqa: E402

SEG = "mixer.experts"
FP32_NAMES = ("A_log", "dt_bias", "D")
DTYPE_ARG = {"bf16": "BF16", "fp16": "F16", "fp32": "F32"}


# ---------------------------------------------------------------- tensors

class Tensor:
    """A lazily computed tensor: dtype (safetensors name), shape, and a way to get its array."""

    def __init__(self, dtype, shape, fn):
        self.dtype = dtype
        self.shape = tuple(shape)
        self._fn = fn

    def array(self):
        a = self._fn()
        assert tuple(a.shape) == self.shape, (a.shape, self.shape)
        return a

    def tobytes(self):
        return np.ascontiguousarray(self.array()).tobytes()


def source_tensor(f, name):
    dt, shape, _, _ = f.tensors[name]
    return Tensor(dt, shape, lambda: f.array(name))


def cast_tensor(t, dtype):
    if t.dtype == dtype:
        return t
    return Tensor(dtype, t.shape, lambda: st.cast(t.array(), t.dtype, dtype))


def stack_transposed(parts, dtype):
    """torch.stack([p.transpose(0, 1) for p in parts], out=empty(..., dtype=dtype)).

    Stacking into an output of another dtype casts each element, so a per-expert
    cast is the same thing (and allows experts stored in different dtypes)."""
    for p in parts:
        if len(p.shape) != 2 or p.shape != parts[0].shape:
            raise ValueError("experts of one group differ in shape: %s vs %s" % (p.shape, parts[0].shape))
    r, c = parts[0].shape

    def build():
        out = np.empty((len(parts), c, r), dtype=st.STORAGE[dtype])
        for e, p in enumerate(parts):
            out[e] = st.cast(np.ascontiguousarray(np.asarray(p.array()).T), p.dtype, dtype)
        return out

    return Tensor(dtype, (len(parts), c, r), build)


# ---------------------------------------------------------------- loading

def load_config(srcdir):
    with open(os.path.join(srcdir, "config.json")) as f:
        return json.load(f)


def load_hf_state_dict(srcdir):
    """HF key -> Tensor.  Uses model.safetensors.index.json when present (each key read
    from the file the index names), else every *.safetensors file in SRCDIR."""
    idx_path = os.path.join(srcdir, "model.safetensors.index.json")
    files = {}
    sd = {}
    if os.path.exists(idx_path):
        with open(idx_path) as f:
            wm = json.load(f)["weight_map"]
        for key, fname in wm.items():
            if fname not in files:
                files[fname] = st.SafetensorsFile(os.path.join(srcdir, fname))
            if key not in files[fname].tensors:
                raise ValueError("index maps %s to %s, which does not hold it" % (key, fname))
            sd[key] = source_tensor(files[fname], key)
    else:
        for fname in sorted(os.listdir(srcdir)):
            if not fname.endswith(".safetensors"):
                continue
            f = st.SafetensorsFile(os.path.join(srcdir, fname))
            for key in f.order:
                if key in sd:
                    raise ValueError("tensor %s appears in more than one file" % key)
                sd[key] = source_tensor(f, key)
    return sd


def adapter_dtype(config, override="auto"):
    """The dtype merged experts are cast to: --dtype, else config torch_dtype, else bf16."""
    if override and override != "auto":
        return DTYPE_ARG[override]
    name = config.get("torch_dtype")
    if name is None:
        name = config.get("dtype")      # transformers >= 4.56 writes "dtype"
    if name is None:
        return "BF16"
    name = str(name).replace("torch.", "")
    if name not in st.TORCH_DTYPE_NAMES:
        raise ValueError("config torch_dtype %r is not supported" % name)
    return st.TORCH_DTYPE_NAMES[name]


def n_routed_experts(config):
    """None for dense Nemotron-H (no n_routed_experts in config.json)."""
    e = config.get("n_routed_experts")
    return None if e is None else int(e)


# ---------------------------------------------------------------- key rules (spec 3.1)

def hf_key_to_native(key):
    key = re.sub(r"^((?:base_model\.model\.)?backbone)\.norm_f\.weight$", r"\1.norm.weight", key)
    key = re.sub(r"^((?:base_model\.model\.)?backbone)\.embeddings\.weight$", r"\1.embed_tokens.weight", key)
    return re.sub(r"^(?P<outer>base_model\.model\.)?backbone\.",
                  lambda m: (m.group("outer") or "") + "model.", key)


def route_fp32_holder(key):
    if "._fp32_params." in key or ".mixer." not in key:
        return key
    head, tail = key.rsplit(".mixer.", 1)
    if tail not in FP32_NAMES:
        return key
    return "%s.mixer._fp32_params.%s" % (head, tail)


def is_fp32_key(key):
    if ".mixer." not in key:
        return False
    tail = key.rsplit(".mixer.", 1)[1]
    if tail in FP32_NAMES:
        return True
    return tail.startswith("_fp32_params.") and tail[len("_fp32_params."):] in FP32_NAMES


def upcast_fp32(key, t):
    if is_fp32_key(key) and t.dtype in st.FLOATING:
        return cast_tensor(t, "F32")
    return t


# ---------------------------------------------------------------- expert merge (spec 2.2, 2.4)

def expert_range(n_experts, ep=None):
    """Half-open expert range [start, end) of EP rank ep=(rank, size) (spec 2.4); all without ep."""
    if ep is None:
        return 0, n_experts
    rank, size = ep
    q, rem = divmod(n_experts, size)
    if rank < rem:
        n, start = q + 1, rank * (q + 1)
    else:
        n, start = q, rank * q + rem
    return start, start + n


def validate_experts(sd, n_experts, ep=None):
    """_validate_expert_availability (non-gated: up, down) for all experts or one EP rank's."""
    start, end = expert_range(n_experts, ep)
    required = list(range(start, end))
    rank_info = "" if ep is None else " (rank %d)" % ep[0]
    key_prefix = ""
    for key in sd:
        if "." + SEG + "." in key and "layers." in key:
            key_prefix = key[:key.index("layers.")]
            break
    prefixes = ["model.language_model.", "model.", "language_model.", ""]
    if key_prefix and key_prefix not in prefixes:
        prefixes.insert(0, key_prefix)
    pattern = ("(?P<prefix>" + "|".join(re.escape(p) for p in prefixes) + r")layers\.(\d+)\."
               + re.escape(SEG) + r"\.\d+\.(gate_proj|up_proj|down_proj)\.weight")
    layers = {}
    for key in sd:
        m = re.match(pattern, key)
        if m:
            layers.setdefault(int(m.group(2)), set()).add(m.group("prefix") or "")
    if not layers:
        return
    missing = []
    total = 0
    for layer, pfxs in layers.items():
        for prefix in pfxs:
            for proj in ("up_proj", "down_proj"):
                total += len(required)
                for e in required:
                    k = "%slayers.%d.%s.%d.%s.weight" % (prefix, layer, SEG, e, proj)
                    if k not in sd:
                        missing.append(k)
    if missing:
        raise RuntimeError(
            "Expert weights missing from checkpoint%s: %d/%d required weights not found. "
            "Cannot load experts - checkpoint may be incomplete or corrupted. "
            "Layers with experts: %s, Required experts: %s. First few missing keys: %s%s"
            % (rank_info, len(missing), total, sorted(layers), required, missing[:5],
               " (and %d more)" % (len(missing) - 5) if len(missing) > 5 else ""))


def merge_experts(sd, n_experts, dtype, ep=None):
    """_from_hf_w_merged_experts for non-gated (relu2) experts, no LoRA keys.  With ep=(rank, size)
    only that rank's experts are stacked (shape [end-start, ...]), as under an EP device mesh."""
    validate_experts(sd, n_experts, ep)
    start, end = expert_range(n_experts, ep)
    expert_re = re.compile(r"(?P<prefix>(?:model\.)?(?:language_model\.)?)layers\.(\d+)\."
                           + re.escape(SEG) + r"\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight")
    out = {}
    groups = {}
    for key, value in sd.items():
        if "." + SEG + "." in key and key.endswith(".weight"):
            m = expert_re.match(key)
            if m is None:
                out[key] = value
                continue
            prefix, layer, e, which = m.group("prefix") or "", m.group(2), int(m.group(3)), m.group(4)
            native = "%slayers.%s.%s.%s" % (prefix, layer, SEG,
                                           "down_projs" if which == "down_proj" else "gate_and_up_projs")
            if not (start <= e < end):
                continue                    # not this rank's expert: dropped
            if which == "gate_proj":
                continue                    # non-gated: gate_proj is ignored
            group = groups.setdefault(native, {})
            group[e] = value
            if len(group) == end - start:
                out[native] = stack_transposed([group[i] for i in sorted(group)], dtype)
                del groups[native]
        elif not key.endswith("_scale_inv"):
            out[key] = value
    return out


# ---------------------------------------------------------------- from_hf (spec 3.2)

def from_hf(hf_sd, config, dtype="auto", ep=None):
    """HF state dict (key -> Tensor) -> native state dict (key -> Tensor).
    ep: optional (rank, size) expert-parallel slice."""
    target = adapter_dtype(config, dtype)
    n_exp = n_routed_experts(config)
    hf_sd = dict(hf_sd)

    num_layers = int(config.get("num_hidden_layers") or 0)
    if num_layers > 0:
        layer_re = re.compile(r"^(?:backbone|model)\.layers\.(\d+)\.")
        for key in list(hf_sd):
            m = layer_re.match(key)
            if m and int(m.group(1)) >= num_layers:
                del hf_sd[key]

    mtp = {k: v for k, v in hf_sd.items() if k.startswith("mtp.")}
    backbone = {k: v for k, v in hf_sd.items() if not k.startswith("mtp.")}

    renamed = {}
    for key, value in backbone.items():
        nk = route_fp32_holder(hf_key_to_native(key))
        renamed[nk] = upcast_fp32(nk, value)

    merged = renamed if n_exp is None else merge_experts(renamed, n_exp, target, ep)

    if mtp:
        stripped = {}
        for key, value in mtp.items():
            sk = route_fp32_holder(key[len("mtp."):])
            stripped[sk] = upcast_fp32(sk, value)
        # Dense + MTP: Automodel itself would dereference moe_config=None here;
        # the natural meaning (no merge) is used.
        merged_mtp = stripped if n_exp is None else merge_experts(stripped, n_exp, target, ep)
        for key, value in merged_mtp.items():
            merged["mtp." + key] = value
    return merged


def expected_tensors(srcdir, dtype="auto", ep=None):
    """Native key -> lazy Tensor for the checkpoint in srcdir."""
    return from_hf(load_hf_state_dict(srcdir), load_config(srcdir), dtype, ep)


def expected_state_dict(srcdir, dtype="auto", ep=None):
    """Native key -> (dtype, shape, raw bytes)."""
    return {k: (t.dtype, t.shape, t.tobytes()) for k, t in expected_tensors(srcdir, dtype, ep).items()}


def add_ep_args(p):
    p.add_argument("--ep-rank", type=int, default=None, help="expert-parallel rank (with --ep-size)")
    p.add_argument("--ep-size", type=int, default=None, help="expert-parallel size: keep only the rank's experts")


def ep_from_args(p, a):
    if (a.ep_rank is None) != (a.ep_size is None):
        p.error("--ep-rank and --ep-size go together")
    if a.ep_size is None:
        return None
    if a.ep_size < 1 or not 0 <= a.ep_rank < a.ep_size:
        p.error("need 0 <= --ep-rank < --ep-size")
    return (a.ep_rank, a.ep_size)


# ---------------------------------------------------------------- output

def is_weight_file(rel):
    """Top-level names a view replaces: *.safetensors and model.safetensors.index.json."""
    return "/" not in rel and (rel.endswith(".safetensors") or rel == "model.safetensors.index.json")


def write_single(path, tensors):
    entries = [(k, t.dtype, t.shape) for k, t in sorted(tensors.items())]
    st.write_file(path, entries, lambda n: [tensors[n].array()])


def write_view(viewdir, srcdir, tensors, shards):
    """A complete native view built by this reference: sharded files, index, pass-through files."""
    os.makedirs(viewdir, exist_ok=True)
    names = sorted(tensors)
    groups = st.split_shards([st.nbytes(tensors[n].dtype, tensors[n].shape) for n in names], shards)
    fnames = st.shard_names(shards)
    wm = {}
    total = 0
    for g, fname in enumerate(fnames):
        entries = [(n, tensors[n].dtype, tensors[n].shape) for n, gi in zip(names, groups) if gi == g]
        total += st.write_file(os.path.join(viewdir, fname), entries, lambda n: [tensors[n].array()])
        wm.update({e[0]: fname for e in entries})
    st.write_index(os.path.join(viewdir, "model.safetensors.index.json"), wm, total)
    for root, dirs, files in os.walk(srcdir):
        for fn in files:
            rel = os.path.relpath(os.path.join(root, fn), srcdir)
            if not is_weight_file(rel):
                dst = os.path.join(viewdir, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(srcdir, rel), dst)


def main(argv):
    p = argparse.ArgumentParser(description="Expected NeMo Automodel native state dict of an HF Nemotron-H checkpoint.")
    p.add_argument("srcdir")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                   help="adapter dtype for merged experts (auto: config torch_dtype, default bf16)")
    p.add_argument("--out", metavar="DIR", help="write the expected state dict as DIR/model.safetensors")
    p.add_argument("--view", metavar="DIR", help="write a complete native view (shards + index + other files)")
    p.add_argument("--shards", type=int, default=2, help="number of files for --view (default 2)")
    p.add_argument("--quiet", action="store_true", help="no per-tensor listing")
    add_ep_args(p)
    a = p.parse_args(argv)
    ep = ep_from_args(p, a)
    try:
        tensors = expected_tensors(a.srcdir, a.dtype, ep)
    except (RuntimeError, ValueError, st.FormatError, OSError) as e:
        print("automodel_ref: %s" % e, file=sys.stderr)
        return 1
    total = 0
    for k in sorted(tensors):
        t = tensors[k]
        n = st.nbytes(t.dtype, t.shape)
        total += n
        if not a.quiet:
            digest = hashlib.blake2b(t.tobytes(), digest_size=8).hexdigest()
            print("%s\t%s\t%s\t%s" % (k, t.dtype, list(t.shape), digest))
    print("automodel_ref: %d tensors, %d bytes (adapter dtype %s)"
          % (len(tensors), total, adapter_dtype(load_config(a.srcdir), a.dtype)), file=sys.stderr)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        write_single(os.path.join(a.out, "model.safetensors"), tensors)
    if a.view:
        write_view(a.view, a.srcdir, tensors, a.shards)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
