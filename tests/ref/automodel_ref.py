#!/usr/bin/python3
"""Independent reference for NeMo Automodel's state-dict adapters, both directions.

Given a checkpoint directory, compute the state dict Automodel would produce:
  from_hf: an HF checkpoint -> the native state dict the model holds after loading it;
  to_hf:   a native checkpoint (native keys, the HF config.json) -> the HF checkpoint a
           consolidated save writes (conversion plus the saved-dtype rules).
Result: {key: lazy Tensor (dtype, shape, array)}.  Written straight from
shared/conversion-spec.md (sections 2, 3, 4, 5, 8, 9) as plain dict/numpy code, so it
can serve as the oracle for sdafs' views; it knows nothing about sdafs.

Families (--family, or auto from config.json architectures[0] / model_type; a config
naming neither means nemotron_h):
  nemotron_h     NemotronHForCausalLM (spec 3): backbone.<->model., norm_f/embeddings,
                 Mamba A_log/dt_bias/D in mixer._fp32_params (F32), truncation at
                 num_hidden_layers, non-gated (relu2) experts merged/split through the
                 mixin with SEG mixer.experts and prefix backbone. / mtp.
  nemotron_omni  NemotronH_Nano_Omni_Reasoning_V3 (spec 5): mlp1.{0,1,3} <->
                 vision_projector.{norm,linear1,linear2}, sound_encoder.encoder.X <->
                 sound_encoder.X, language_model.* through the Nemotron-H rules built on
                 llm_config, everything else unchanged.
  step3p5        Step3p5ForCausalLM (spec 4): grouped HF moe.{gate,up}_proj [E,I,H] <->
                 moe.experts.gate_and_up_projs [E,H,2I], moe.down_proj [E,H,I] <->
                 moe.experts.down_projs [E,I,H], moe.router_bias <->
                 moe.gate.e_score_correction_bias (legacy native moe.gate.bias -> router_bias).
  qwen3_moe      Qwen3MoeForCausalLM (spec 8): gated mixin, SEG mlp.experts.
  mixtral        MixtralForCausalLM: gated mixin, SEG block_sparse_moe.experts with the
                 projections w1 (gate), w3 (up), w2 (down).
  llama          LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM
                 (spec 8, 6): HF names are the native names, both ways; from_hf of a tied
                 model (tie_word_embeddings, else under thinker_config, else text_config)
                 without lm_head.weight gets lm_head.weight = model.embed_tokens.weight.

dtype (--dtype):
  from_hf: auto = merged expert tensors are cast to the adapter dtype (config torch_dtype,
           llm_config.torch_dtype for Omni, default bf16); bf16/fp16/fp32 override that
           adapter dtype.  Nothing else is cast (Nemotron Mamba scalars are upcast to F32).
  to_hf:   auto = nothing is cast except what Automodel forces to F32 (Nemotron and the
           Omni LLM: Mamba A_log/dt_bias/D and every key containing e_score_correction_bias);
           bf16/fp16/fp32 = every floating tensor is cast to it, except the tensors kept in
           F32 (the forced ones, and Step3p5's router bias), which become F32.  FP8 and
           integer tensors are never cast.  Keys matching .*_extra_state.* are excluded (the
           checkpointer's exclude_key_regex).

Expert parallelism (--ep-rank R --ep-size N, range rule of spec 2.4):
  from_hf: the native view of rank R holds only its experts (grouped dim 0 = end-start).
  to_hf:   the HF view of rank R holds only its experts: per-expert keys with global ids
           (mixin families), or the rank's [start:end] slice of each grouped tensor under
           its usual name (step3p5).  A grouped native tensor may hold all E experts (it is
           sliced) or exactly the rank's experts (taken as the rank's local shard).

Tensors stay lazy (memory-mapped sources, merged or split tensors built on demand), so a
large checkpoint can be checked one tensor at a time.

CLI: automodel_ref.py SRCDIR [--family auto|nemotron_h|nemotron_omni|step3p5|qwen3_moe|mixtral|llama]
                             [--direction from_hf|to_hf] [--dtype auto|bf16|fp16|fp32]
                             [--out DIR] [--view DIR [--shards N]]
                             [--ep-rank R --ep-size N] [--quiet]
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
CASTABLE = ("BF16", "F16", "F32", "F64")      # the floating dtypes the reference casts
EXCLUDE_KEY_RE = re.compile(r".*_extra_state.*")

FAMILIES = ("nemotron_h", "nemotron_omni", "step3p5", "qwen3_moe", "mixtral", "llama",
            "deepseek_v3", "gpt_oss")
DIRECTIONS = ("from_hf", "to_hf")
ARCHITECTURES = {
    "NemotronHForCausalLM": "nemotron_h",
    "NemotronH_Nano_Omni_Reasoning_V3": "nemotron_omni",
    "Step3p5ForCausalLM": "step3p5",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "MixtralForCausalLM": "mixtral",
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",
    "Qwen3ForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "GptOssForCausalLM": "gpt_oss",
}
MODEL_TYPES = {
    "nemotron_h": "nemotron_h",
    "NemotronH_Nano_Omni_Reasoning_V3": "nemotron_omni",
    "step3p5": "step3p5",
    "qwen3_moe": "qwen3_moe",
    "mixtral": "mixtral",
    "llama": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "mistral": "llama",
    "deepseek_v3": "deepseek_v3",
    "kimi_k2": "deepseek_v3",
    "gpt_oss": "gpt_oss",
}

# Projection names of one expert, by role.
HF_PROJS = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}
MIXTRAL_PROJS = {"gate": "w1", "up": "w3", "down": "w2"}

# The gated mixin families: SEG, projection names, config keys for E and I.
MIXIN_FAMILIES = {
    "qwen3_moe": {"seg": "mlp.experts", "projs": HF_PROJS,
                  "experts": ("num_experts",), "inter": ("moe_intermediate_size",)},
    "mixtral": {"seg": "block_sparse_moe.experts", "projs": MIXTRAL_PROJS,
                "experts": ("num_local_experts",), "inter": ("intermediate_size",)},
    "deepseek_v3": {"seg": "mlp.experts", "projs": HF_PROJS,
                    "experts": ("n_routed_experts",), "inter": ("moe_intermediate_size",)},
}


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


def derived(t, shape, fn, dtype=None):
    """A tensor computed from t's array by fn (slicing/transposing), then cast to dtype."""
    dtype = dtype or t.dtype

    def build():
        a = np.ascontiguousarray(fn(np.asarray(t.array())))
        return st.cast(a, t.dtype, dtype) if dtype != t.dtype else a

    return Tensor(dtype, shape, build)


def stack_transposed(parts, dtype):
    """torch.stack([p.transpose(0, 1) for p in parts], out=empty(..., dtype=dtype)).

    Stacking into an output of another dtype casts each element, so a per-expert
    cast is the same thing (and allows experts stored in different dtypes)."""
    return stack_cat_transposed([[p] for p in parts], dtype)


def stack_cat_transposed(groups, dtype):
    """Per expert e: cat([p.T for p in groups[e]], dim=-1); stacked on dim 0, cast to dtype.

    groups[e] is e.g. [gate_e [I,H], up_e [I,H]] -> [H, 2I]; all experts alike."""
    first = groups[0]
    for g in groups:
        if len(g) != len(first) or any(len(p.shape) != 2 or p.shape != q.shape for p, q in zip(g, first)):
            raise ValueError("experts of one group differ in shape: %s vs %s"
                             % ([p.shape for p in g], [q.shape for q in first]))
    rows = first[0].shape[1]
    widths = [p.shape[0] for p in first]
    if any(p.shape[1] != rows for p in first):
        raise ValueError("projections to concatenate differ in their input dim: %s" % [p.shape for p in first])
    cols = sum(widths)

    def build():
        out = np.empty((len(groups), rows, cols), dtype=st.STORAGE[dtype])
        for e, g in enumerate(groups):
            at = 0
            for p, w in zip(g, widths):
                out[e, :, at:at + w] = st.cast(np.ascontiguousarray(np.asarray(p.array()).T), p.dtype, dtype)
                at += w
        return out

    return Tensor(dtype, (len(groups), rows, cols), build)


def put(d, key, value):
    """d[key] = value, refusing a second tensor for one key (the result would depend on order)."""
    if key in d:
        raise ValueError("two tensors map to the key %s" % key)
    d[key] = value


# ---------------------------------------------------------------- loading

def load_config(srcdir):
    with open(os.path.join(srcdir, "config.json")) as f:
        return json.load(f)


def load_hf_state_dict(srcdir):
    """key -> Tensor of a checkpoint directory (HF or native keys alike).  Uses
    model.safetensors.index.json when present (each key read from the file the index
    names), else every *.safetensors file in SRCDIR."""
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


load_state_dict = load_hf_state_dict


def detect_family(config, family="auto"):
    """The adapter family: explicit, or from architectures[0] / model_type (none: nemotron_h)."""
    if family and family != "auto":
        if family not in FAMILIES:
            raise ValueError("unknown family %r (use one of %s)" % (family, ", ".join(FAMILIES)))
        return family
    archs = config.get("architectures") or []
    if archs and archs[0] in ARCHITECTURES:
        return ARCHITECTURES[archs[0]]
    mt = config.get("model_type")
    if mt in MODEL_TYPES:
        return MODEL_TYPES[mt]
    if not archs and mt is None:
        return "nemotron_h"
    raise ValueError("architecture %r (model_type %r) is not supported by the reference; families: %s"
                     % (archs[0] if archs else None, mt, ", ".join(FAMILIES)))


# Families whose from_hf dequantizes.  Automodel's save leaves quantization_config out
# of the config.json it writes for dequantized weights (spec section 7), and sdafs never
# quantizes, so every view of these families, either direction, leaves it out.
DEQUANTIZING_FAMILIES = ("deepseek_v3", "gpt_oss")


def config_members(text):
    """A config.json text as nested lists of (key, value) pairs in file order, with
    numbers kept as their text, so two configs compare equal only if every key, its
    order and every number's spelling agree."""
    return json.loads(text, object_pairs_hook=list, parse_float=str, parse_int=str)


def expected_config_members(src_text, family):
    """What a view's config.json holds for a source config.json text (see config_members)."""
    members = config_members(src_text)
    if family in DEQUANTIZING_FAMILIES:
        members = [(k, v) for k, v in members if k != "quantization_config"]
    return members


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


def family_adapter_dtype(config, family, override="auto"):
    """adapter_dtype of the config the family's (inner) adapter is built on."""
    if family == "nemotron_omni":
        return adapter_dtype(config.get("llm_config") or {}, override)
    return adapter_dtype(config, override)


def n_routed_experts(config):
    """None for dense Nemotron-H (no n_routed_experts in config.json)."""
    e = config.get("n_routed_experts")
    return None if e is None else int(e)


def config_int(config, keys, what):
    for k in keys:
        if config.get(k) is not None:
            return int(config[k])
    raise ValueError("config.json has no %s (%s)" % (what, " / ".join(keys)))


# ---------------------------------------------------------------- Nemotron key rules (spec 3.1)

def hf_key_to_native(key):
    key = re.sub(r"^((?:base_model\.model\.)?backbone)\.norm_f\.weight$", r"\1.norm.weight", key)
    key = re.sub(r"^((?:base_model\.model\.)?backbone)\.embeddings\.weight$", r"\1.embed_tokens.weight", key)
    return re.sub(r"^(?P<outer>base_model\.model\.)?backbone\.",
                  lambda m: (m.group("outer") or "") + "model.", key)


def strip_fp32_holder(key):
    return re.sub(r"(\.mixer)\._fp32_params\.", r"\1.", key)


def native_key_to_hf(key):
    """_native_key_to_hf, rules in order."""
    key = strip_fp32_holder(key)
    key = re.sub(r"^model\.", "backbone.", key)
    key = re.sub(r"^backbone\.norm\.weight$", "backbone.norm_f.weight", key)
    return re.sub(r"^backbone\.embed_tokens\.weight$", "backbone.embeddings.weight", key)


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


# ---------------------------------------------------------------- expert ranges (spec 2.4)

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


def grouped_rows(shape0, n_experts, ep):
    """[(row in the native tensor, global expert id)] a split emits.

    All E rows: every expert, or the rank's range under EP.  Under EP a tensor holding
    exactly the rank's experts is the rank's local shard (a DTensor's local part)."""
    start, end = expert_range(n_experts, ep)
    if shape0 == n_experts:
        return [(e, e) for e in range(start, end)]
    if ep is not None and shape0 == end - start:
        return [(e - start, e) for e in range(start, end)]
    raise ValueError("Expected first dimension to be E, got %d" % shape0)


# ---------------------------------------------------------------- MoE mixin (spec 2.2 - 2.4)

def required_roles(gated):
    return ("gate", "up", "down") if gated else ("up", "down")


def validate_experts(sd, n_experts, ep=None, seg=SEG, gated=False, projs=HF_PROJS):
    """_validate_expert_availability for all experts or one EP rank's."""
    start, end = expert_range(n_experts, ep)
    required = list(range(start, end))
    rank_info = "" if ep is None else " (rank %d)" % ep[0]
    key_prefix = ""
    for key in sd:
        if "." + seg + "." in key and "layers." in key:
            key_prefix = key[:key.index("layers.")]
            break
    prefixes = ["model.language_model.", "model.", "language_model.", ""]
    if key_prefix and key_prefix not in prefixes:
        prefixes.insert(0, key_prefix)
    names = "|".join(re.escape(projs[r]) for r in ("gate", "up", "down"))
    pattern = ("(?P<prefix>" + "|".join(re.escape(p) for p in prefixes) + r")layers\.(\d+)\."
               + re.escape(seg) + r"\.\d+\.(" + names + r")\.weight")
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
            for role in required_roles(gated):
                total += len(required)
                for e in required:
                    k = "%slayers.%d.%s.%d.%s.weight" % (prefix, layer, seg, e, projs[role])
                    if k not in sd:
                        missing.append(k)
    if missing:
        raise RuntimeError(
            "Expert weights missing from checkpoint%s: %d/%d required weights not found. "
            "Cannot load experts - checkpoint may be incomplete or corrupted. "
            "Layers with experts: %s, Required experts: %s. First few missing keys: %s%s"
            % (rank_info, len(missing), total, sorted(layers), required, missing[:5],
               " (and %d more)" % (len(missing) - 5) if len(missing) > 5 else ""))


def merge_experts(sd, n_experts, dtype, ep=None, seg=SEG, gated=False, projs=HF_PROJS):
    """_from_hf_w_merged_experts (no LoRA keys).  gated: GU[e] = cat(gate_e^T, up_e^T, -1);
    non-gated: GU[e] = up_e^T (gate ignored); D[e] = down_e^T; stacked tensors cast to
    dtype; every other *_scale_inv dropped.  With ep=(rank, size) only that rank's
    experts are stacked (shape [end-start, ...]), as under an EP device mesh."""
    validate_experts(sd, n_experts, ep, seg, gated, projs)
    start, end = expert_range(n_experts, ep)
    role_of = {v: k for k, v in projs.items()}
    names = "|".join(re.escape(projs[r]) for r in ("gate", "up", "down"))
    expert_re = re.compile(r"(?P<prefix>(?:model\.)?(?:language_model\.)?)layers\.(\d+)\."
                           + re.escape(seg) + r"\.(\d+)\.(" + names + r")\.weight")
    out = {}
    groups = {}
    for key, value in sd.items():
        if "." + seg + "." in key and key.endswith(".weight"):
            m = expert_re.match(key)
            if m is None:
                put(out, key, value)
                continue
            prefix, layer, e, role = m.group("prefix") or "", m.group(2), int(m.group(3)), role_of[m.group(4)]
            native = "%slayers.%s.%s.%s" % (prefix, layer, seg,
                                           "down_projs" if role == "down" else "gate_and_up_projs")
            if not (start <= e < end):
                continue                    # not this rank's expert: dropped
            if role == "gate" and not gated:
                continue                    # non-gated: gate_proj is ignored
            group = groups.setdefault(native, {})
            if role == "down" or not gated:
                group[e] = value
                complete = len(group) == end - start
            else:
                group.setdefault(e, {})[role] = value
                complete = len(group) == end - start and all(len(v) == 2 for v in group.values())
            if complete:
                ids = sorted(group)
                if role == "down" or not gated:
                    put(out, native, stack_transposed([group[i] for i in ids], dtype))
                else:
                    put(out, native, stack_cat_transposed([[group[i]["gate"], group[i]["up"]] for i in ids], dtype))
                del groups[native]
        elif not key.endswith("_scale_inv"):
            put(out, key, value)
    return out


def split_experts(fqn, t, hf_prefix, n_experts, inter, ep=None, seg=SEG, gated=False, projs=HF_PROJS):
    """_convert_single_merged_expert_to_hf_split_experts: a list of (HF key, Tensor), or
    None when fqn is not a grouped expert tensor the mixin converts (the caller passes it on)."""
    if fqn.endswith("." + seg + ".gate_and_up_projs"):
        kind = "gate_and_up"
    elif fqn.endswith("." + seg + ".down_projs"):
        if not (len(t.shape) == 3 and t.shape[1] == inter):
            return None                     # shape mismatch: passes through under its native name
        kind = "down"
    else:
        return None
    m = re.search(r"layers\.(\d+)", fqn)
    if m is None:
        raise ValueError("%s: no layers.N in a grouped expert key" % fqn)
    layer = m.group(1)
    if len(t.shape) != 3:
        raise ValueError("%s: grouped expert tensor must be 3-D, got shape %s" % (fqn, list(t.shape)))
    rows = grouped_rows(t.shape[0], n_experts, ep)
    out = []
    base = "%slayers.%s.%s." % (hf_prefix, layer, seg)
    _, a, b = t.shape
    for row, e in rows:
        if kind == "down":
            out.append((base + "%d.%s.weight" % (e, projs["down"]),
                        derived(t, (b, a), lambda x, r=row: x[r].T)))
        elif gated:
            if b < inter:
                raise ValueError("%s: last dim %d is smaller than the split point %d" % (fqn, b, inter))
            out.append((base + "%d.%s.weight" % (e, projs["gate"]),
                        derived(t, (inter, a), lambda x, r=row: x[r][:, :inter].T)))
            out.append((base + "%d.%s.weight" % (e, projs["up"]),
                        derived(t, (b - inter, a), lambda x, r=row: x[r][:, inter:].T)))
        else:
            out.append((base + "%d.%s.weight" % (e, projs["up"]),
                        derived(t, (b, a), lambda x, r=row: x[r].T)))
    return out


def model_prefix_of(sd, marker):
    """_hf_prefix for a stateless to_hf: "" when the first (sorted) native key containing
    marker starts with layers. (an adapter whose from_hf saw unprefixed keys), else "model."."""
    for key in sorted(sd):
        if marker in key:
            return "" if key.startswith("layers.") else "model."
    return "model."


# ---------------------------------------------------------------- Nemotron-H (spec 3)

def nemotron_from_hf(hf_sd, config, dtype="auto", ep=None):
    """HF state dict -> native state dict (spec 3.2)."""
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
        put(renamed, nk, upcast_fp32(nk, value))

    merged = renamed if n_exp is None else merge_experts(renamed, n_exp, target, ep)

    if mtp:
        stripped = {}
        for key, value in mtp.items():
            sk = route_fp32_holder(key[len("mtp."):])
            put(stripped, sk, upcast_fp32(sk, value))
        # Dense + MTP: Automodel itself would dereference moe_config=None here;
        # the natural meaning (no merge) is used.
        merged_mtp = stripped if n_exp is None else merge_experts(stripped, n_exp, target, ep)
        for key, value in merged_mtp.items():
            put(merged, "mtp." + key, value)
    return merged


def nemotron_to_hf(sd, config, ep=None):
    """native state dict -> HF state dict (spec 3.3), before the saved-dtype rules."""
    n_exp = n_routed_experts(config)
    inter = None if n_exp is None else config_int(config, ("moe_intermediate_size",), "moe_intermediate_size")
    out = {}
    for fqn, t in sd.items():
        if fqn.startswith("mtp."):
            key = strip_fp32_holder(fqn)
            res = split_experts(key, t, "mtp.", n_exp, inter, ep) if n_exp is not None else None
            if res is None:
                res = [(key, t)]
        else:
            res = split_experts(fqn, t, "backbone.", n_exp, inter, ep) if n_exp is not None else None
            if res is None:
                res = [(fqn, t)]
            res = [(native_key_to_hf(k), v) for k, v in res]
        for k, v in res:
            put(out, k, upcast_fp32(k, v))
    return out


def nemotron_forced_f32(hf_key):
    """forced_hf_dtype_mapping (spec 3.4): Mamba fp32 keys and *e_score_correction_bias*."""
    return is_fp32_key(hf_key) or "e_score_correction_bias" in hf_key


# ---------------------------------------------------------------- NemotronOmni (spec 5)

OMNI_TABLE = {
    "mlp1.0.weight": "vision_projector.norm.weight",
    "mlp1.1.weight": "vision_projector.linear1.weight",
    "mlp1.3.weight": "vision_projector.linear2.weight",
}
OMNI_TABLE_REV = {v: k for k, v in OMNI_TABLE.items()}
LLM = "language_model."
SOUND_HF = "sound_encoder.encoder."
SOUND_NATIVE = "sound_encoder."


def omni_from_hf(hf_sd, config, dtype="auto", ep=None):
    llm_cfg = config.get("llm_config") or {}
    out = {}
    llm = {}
    for key, value in hf_sd.items():
        if key.startswith(LLM):
            llm[key[len(LLM):]] = value
        elif key in OMNI_TABLE:
            put(out, OMNI_TABLE[key], value)
        elif key.startswith(SOUND_HF):
            put(out, SOUND_NATIVE + key[len(SOUND_HF):], value)
        else:
            put(out, key, value)           # vision_model.*, sound_projection.*, other mlp1.*, ...
    for key, value in nemotron_from_hf(llm, llm_cfg, dtype, ep).items():
        put(out, LLM + key, value)
    return out


def omni_to_hf(sd, config, ep=None):
    llm_cfg = config.get("llm_config") or {}
    out = {}
    llm = {}
    for key, value in sd.items():
        if key.startswith(LLM):
            llm[key[len(LLM):]] = value
        elif key in OMNI_TABLE_REV:
            put(out, OMNI_TABLE_REV[key], value)
        elif key.startswith(SOUND_NATIVE):
            put(out, SOUND_HF + key[len(SOUND_NATIVE):], value)
        else:
            put(out, key, value)
    for key, value in nemotron_to_hf(llm, llm_cfg, ep).items():
        put(out, LLM + key, value)
    return out


def omni_forced_f32(hf_key):
    return hf_key.startswith(LLM) and nemotron_forced_f32(hf_key[len(LLM):])


# ---------------------------------------------------------------- Step3p5 (spec 4)

STEP_P = r"(?P<prefix>(?:model\.)?(?:language_model\.)?)layers\.(?P<layer>\d+)\.moe\."
STEP_EXPERT_RE = re.compile(STEP_P + r"(?P<proj>gate_proj|up_proj|down_proj)\.weight")
STEP_BIAS_RE = re.compile(STEP_P + r"router_bias")


def step_experts(config):
    return config_int(config, ("moe_num_experts", "num_experts"), "moe_num_experts")


def step_inter(config):
    return config_int(config, ("moe_intermediate_size", "intermediate_size"), "moe_intermediate_size")


def step_rows(t, n_experts, ep, key):
    """Rows of a grouped Step3p5 tensor for EP (a plain tensor is sliced [start:end])."""
    if ep is None:
        return slice(None), t.shape[0]
    start, end = expert_range(n_experts, ep)
    if t.shape[0] == n_experts:
        return slice(start, end), end - start
    if t.shape[0] == end - start:
        return slice(None), end - start
    raise ValueError("%s: dim 0 is %d, expected moe_num_experts=%d (or the rank's %d)"
                     % (key, t.shape[0], n_experts, end - start))


def grouped_transpose(t, key, n_experts, ep, dtype=None, lo=None, hi=None):
    """t[rows, :, lo:hi].transpose(1, 2), cast to dtype; t is [E, a, b]."""
    if len(t.shape) != 3:
        raise ValueError("%s: expected a 3-D grouped tensor, got shape %s" % (key, list(t.shape)))
    rows, n = step_rows(t, n_experts, ep, key)
    _, a, b = t.shape
    lo = 0 if lo is None else lo
    hi = b if hi is None else hi
    return derived(t, (n, hi - lo, a), lambda x: x[rows][:, :, lo:hi].transpose(0, 2, 1), dtype)


def step_from_hf(hf_sd, config, dtype="auto", ep=None):
    target = adapter_dtype(config, dtype)
    n_exp = step_experts(config) if ep is not None else None
    out = {}
    pending = {}
    for key, value in hf_sd.items():
        m = STEP_EXPERT_RE.match(key) or STEP_BIAS_RE.match(key)
        if m and m.end() != len(key):
            # spec 11.6: the adapter's regexes have no $ anchor, so it would take this key
            # for the expert weight / router bias; what it then does depends on key order.
            raise ValueError("%s: Step3p5 would read this key as %s (unanchored regex, spec 11.6); "
                             "the reference does not model that" % (key, m.group(0)))
        if m is None:
            put(out, key, value)
            continue
        prefix, layer = m.group("prefix") or "", m.group("layer")
        base = "%slayers.%s.moe." % (prefix, layer)
        if "proj" not in m.groupdict():
            put(out, base + "gate.e_score_correction_bias", value)     # rename, no cast
            continue
        proj = m.group("proj")
        if proj == "down_proj":
            put(out, base + "experts.down_projs", grouped_transpose(value, key, n_exp, ep, target))
            continue
        pair = pending.setdefault((prefix, layer), {})
        if proj in pair:
            raise ValueError("%s appears twice" % key)
        pair[proj] = (key, value)
        if len(pair) == 2:
            (gk, g), (uk, u) = pair["gate_proj"], pair["up_proj"]
            if len(g.shape) != 3 or g.shape != u.shape:
                raise ValueError("%s %s and %s %s must be equal 3-D shapes"
                                 % (gk, list(g.shape), uk, list(u.shape)))
            gt = grouped_transpose(g, gk, n_exp, ep)
            ut = grouped_transpose(u, uk, n_exp, ep)
            put(out, base + "experts.gate_and_up_projs", stack_grouped_cat(gt, ut, target))
            del pending[(prefix, layer)]
    return out                              # a lone gate or up emits nothing, silently


def stack_grouped_cat(a, b, dtype):
    """cat([a, b], dim=-1) of two [n, x, y] tensors (possibly different dtypes), cast to dtype."""
    n, x, y1 = a.shape
    y2 = b.shape[2]

    def build():
        out = np.empty((n, x, y1 + y2), dtype=st.STORAGE[dtype])
        out[:, :, :y1] = st.cast(np.ascontiguousarray(a.array()), a.dtype, dtype)
        out[:, :, y1:] = st.cast(np.ascontiguousarray(b.array()), b.dtype, dtype)
        return out

    return Tensor(dtype, (n, x, y1 + y2), build)


def step_to_hf(sd, config, ep=None):
    inter = step_inter(config)
    n_exp = step_experts(config) if ep is not None else None
    prefix = model_prefix_of(sd, ".moe.experts.gate_and_up_projs")
    out = {}
    for fqn, t in sd.items():
        m = re.search(r"layers\.(\d+)", fqn)
        if m is None:
            put(out, fqn, t)
            continue
        base = "%slayers.%s.moe." % (prefix, m.group(1))
        if ".moe.experts.gate_and_up_projs" in fqn:
            if len(t.shape) != 3 or t.shape[2] < inter:
                raise ValueError("%s: shape %s cannot be split at moe_intermediate_size %d"
                                 % (fqn, list(t.shape), inter))
            put(out, base + "gate_proj.weight", grouped_transpose(t, fqn, n_exp, ep, lo=0, hi=inter))
            put(out, base + "up_proj.weight", grouped_transpose(t, fqn, n_exp, ep, lo=inter))
        elif ".moe.experts.down_projs" in fqn:
            put(out, base + "down_proj.weight", grouped_transpose(t, fqn, n_exp, ep))
        elif ".moe.gate.e_score_correction_bias" in fqn or ".moe.gate.bias" in fqn:
            put(out, base + "router_bias", t)
        else:
            put(out, fqn, t)
    return out


def step_kept_f32(hf_key):
    """Step3p5 keeps its router bias in fp32 (spec 4, dtype); nothing is forced."""
    return hf_key.endswith(".moe.router_bias") or "e_score_correction_bias" in hf_key


# ---------------------------------------------------------------- qwen3_moe / mixtral (gated mixin)

def mixin_params(config, family):
    f = MIXIN_FAMILIES[family]
    return (f["seg"], f["projs"], config_int(config, f["experts"], f["experts"][0]),
            config_int(config, f["inter"], f["inter"][0]))


def mixin_from_hf(hf_sd, config, family, dtype="auto", ep=None):
    seg, projs, n_exp, _ = mixin_params(config, family)
    return merge_experts(hf_sd, n_exp, adapter_dtype(config, dtype), ep, seg, True, projs)


def mixin_to_hf(sd, config, family, ep=None):
    seg, projs, n_exp, inter = mixin_params(config, family)
    prefix = model_prefix_of(sd, "." + seg + ".gate_and_up_projs")
    out = {}
    for fqn, t in sd.items():
        res = split_experts(fqn, t, prefix, n_exp, inter, ep, seg, True, projs)
        for k, v in res if res is not None else [(fqn, t)]:
            put(out, k, v)
    return out


# ---------------------------------------------------------------- Llama / Qwen2 / Qwen3 dense (spec 8, 6)

LM_HEAD = "lm_head.weight"
EMBEDDING = "model.embed_tokens.weight"


def tie_word_embeddings(config):
    """is_tied_word_embeddings (spec 6): config tie_word_embeddings, falling back to
    thinker_config and then text_config.  Absent everywhere: False, the default of the
    Llama, Qwen2, Qwen3 and Mistral configs."""
    for cfg in (config, config.get("thinker_config") or {}, config.get("text_config") or {}):
        v = cfg.get("tie_word_embeddings")
        if v is None:
            continue
        if not isinstance(v, bool):
            raise ValueError("config tie_word_embeddings must be true or false, not %r" % (v,))
        return v
    return False


def llama_from_hf(hf_sd, config):
    """Pass-through (HF names equal native names).  A tied model's checkpoint has no
    lm_head (the save drops it); loading fills it from the embedding, so the native state
    dict holds lm_head.weight = model.embed_tokens.weight.  A stored lm_head is kept."""
    out = dict(hf_sd)
    if tie_word_embeddings(config) and LM_HEAD not in out and EMBEDDING in out:
        out[LM_HEAD] = out[EMBEDDING]
    return out


# ---------------------------------------------------------------- quantized: DeepSeek-V3, GPT-OSS (spec 8)

FP8_BLOCK = 128
# MXFP4 (E2M1) values by 4-bit code, as the spec lists them
FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def fp8_e4m3_to_f32(codes):
    """F8_E4M3 ("fn") codes -> float32, from the fields: bias 7, exponent 0 is subnormal
    (m * 2^-9), S.1111.111 is NaN (c10 widens it to sign|0x7FF00000), no infinities."""
    c = np.asarray(codes, dtype=np.uint8).astype(np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    e, m = (c >> 3) & 0xF, c & 7
    mag = np.where(e == 0, np.ldexp(m.astype(np.float64), -9),
                   np.ldexp(1.0 + m / 8.0, (e - 7).astype(np.int64)))
    out = (sign * mag).astype(np.float32)
    nan = (e == 15) & (m == 7)
    bits = out.view(np.uint32)
    bits[nan] = np.where(c[nan] & 0x80, 0xFFF00000, 0x7FF00000).astype(np.uint32)
    return out


def dequant_fp8_block(q, scale, dtype):
    """W[i,j] = float(Q[i,j]) * S[i//128, j//128] in float32, then cast to dtype."""
    if len(q.shape) != 2 or len(scale.shape) != 2:
        raise ValueError("FP8 dequantization needs 2-D weight and scales, got %s and %s"
                         % (list(q.shape), list(scale.shape)))
    rows, cols = q.shape
    want = (-(-rows // FP8_BLOCK), -(-cols // FP8_BLOCK))
    if tuple(scale.shape) != want:
        raise ValueError("scales %s do not tile a %s weight in 128x128 blocks (need %s)"
                         % (list(scale.shape), list(q.shape), list(want)))

    def build():
        w = fp8_e4m3_to_f32(q.array()) if q.dtype == "F8_E4M3" else \
            st.to_f32_bits(q.array(), q.dtype).view(np.float32)
        s = st.to_f32_bits(scale.array(), scale.dtype).view(np.float32)
        full = np.repeat(np.repeat(s, FP8_BLOCK, axis=0)[:rows], FP8_BLOCK, axis=1)[:, :cols]
        with np.errstate(invalid="ignore", over="ignore"):
            prod = np.multiply(w, full, dtype=np.float32)
        return st.cast(prod, "F32", dtype)

    return Tensor(dtype, q.shape, build)


def deepseek_from_hf(hf_sd, config, dtype="auto", ep=None):
    """Dequantize every X.weight that has X.weight_scale_inv, then the gated mixin merge
    (which drops every *_scale_inv)."""
    adt = adapter_dtype(config, dtype)
    sd = {}
    for k, t in hf_sd.items():
        if k.endswith(".weight") and k + "_scale_inv" in hf_sd:
            sd[k] = dequant_fp8_block(t, hf_sd[k + "_scale_inv"], adt)
        else:
            sd[k] = t
    return mixin_from_hf(sd, config, "deepseek_v3", dtype, ep)


def dequant_mxfp4(blocks, scales, dtype):
    """transformers' convert_moe_packed_tensors: [E,out,G,B] u8 blocks -> [E, G*2B, out]."""
    *lead, G, B = blocks.shape
    if tuple(scales.shape) != tuple(blocks.shape[:-1]):
        raise ValueError("MXFP4 scales %s do not match blocks %s" % (list(scales.shape), list(blocks.shape)))
    E, out_dim = lead

    def build():
        b = np.asarray(blocks.array(), dtype=np.uint8)
        lut = np.array(FP4_VALUES, dtype=np.float32)
        vals = np.empty(b.shape[:-1] + (2 * B,), dtype=np.float32)
        vals[..., 0::2] = lut[b & 0x0F]
        vals[..., 1::2] = lut[b >> 4]
        exp = np.asarray(scales.array(), dtype=np.uint8).astype(np.int32) - 127
        with np.errstate(over="ignore", invalid="ignore"):
            pow2 = np.power(np.float32(2.0), exp.astype(np.float32)).astype(np.float32)
            prod = np.multiply(vals, pow2[..., None], dtype=np.float32)
        prod = prod.reshape(E, out_dim, G * 2 * B).transpose(0, 2, 1)
        return st.cast(np.ascontiguousarray(prod), "F32", dtype)

    return Tensor(dtype, (E, G * 2 * B, out_dim), build)


GPT_OSS_FROM_HF = [
    (re.compile(r"^(.+\.mlp)\.router\.(weight|bias)$"), r"\1.gate.\2"),
    (re.compile(r"^(.+\.mlp\.experts)\.gate_up_proj$"), r"\1.gate_and_up_projs"),
    (re.compile(r"^(.+\.mlp\.experts)\.down_proj$"), r"\1.down_projs"),
]
GPT_OSS_TO_HF = [
    (re.compile(r"^(.+\.mlp)\.gate\.(weight|bias)$"), r"\1.router.\2"),
    (re.compile(r"^(.+\.mlp\.experts)\.gate_and_up_projs$"), r"\1.gate_up_proj"),
    (re.compile(r"^(.+\.mlp\.experts)\.down_projs$"), r"\1.down_proj"),
]


def rename_first(key, table):
    for rx, to in table:
        if rx.match(key):
            return rx.sub(to, key)
    return key


def gpt_oss_from_hf(hf_sd, config, dtype="auto"):
    adt = adapter_dtype(config, dtype)
    out = {}
    for k, t in hf_sd.items():
        m = re.match(r"^(.+\.mlp\.experts\.(?:gate_up_proj|down_proj))_(blocks|scales)$", k)
        if m and m.group(2) == "scales":
            continue
        if m:
            if m.group(1) + "_scales" not in hf_sd:
                raise ValueError("%s has no %s_scales" % (k, m.group(1)))
            k, t = m.group(1), dequant_mxfp4(t, hf_sd[m.group(1) + "_scales"], adt)
        put(out, rename_first(k, GPT_OSS_FROM_HF), t)
    return out


def gpt_oss_to_hf(sd):
    out = {}
    for k, t in sd.items():
        put(out, rename_first(k, GPT_OSS_TO_HF), t)
    return out


# ---------------------------------------------------------------- renames alone

def step_rename(key, direction):
    """Step3p5's renames that change nothing but the name (spec 4): the router bias.  Its
    expert tensors are renamed only together with a transpose, which is no rename."""
    if direction == "from_hf":
        m = STEP_BIAS_RE.match(key)
        if m and m.end() == len(key):
            return "%slayers.%s.moe.gate.e_score_correction_bias" % (m.group("prefix") or "",
                                                                   m.group("layer"))
        return key
    m = re.search(r"layers\.(\d+)", key)
    if m and (".moe.gate.e_score_correction_bias" in key or ".moe.gate.bias" in key):
        # the per-key reading of _hf_prefix (docs/adapters.md, "Deviations")
        return "%slayers.%s.moe.router_bias" % ("" if key.startswith("layers.") else "model.",
                                                m.group(1))
    return key


def nemotron_rename(key, direction):
    """Spec 3.1 and 3.2/3.3: the key renames and the fp32 holder; mtp.* keys only route
    the holder (they are set aside before the backbone. rename)."""
    if direction == "from_hf":
        if key.startswith("mtp."):
            return "mtp." + route_fp32_holder(key[len("mtp."):])
        return route_fp32_holder(hf_key_to_native(key))
    if key.startswith("mtp."):
        return strip_fp32_holder(key)
    return native_key_to_hf(key)


def omni_rename(key, direction):
    """Spec 5: the projector table, the sound encoder's inner encoder., and language_model.*
    through the Nemotron-H renames; any other key is unchanged."""
    table, sound_from, sound_to = ((OMNI_TABLE, SOUND_HF, SOUND_NATIVE) if direction == "from_hf"
                                   else (OMNI_TABLE_REV, SOUND_NATIVE, SOUND_HF))
    if key.startswith(LLM):
        return LLM + nemotron_rename(key[len(LLM):], direction)
    if key in table:
        return table[key]
    if key.startswith(sound_from):
        return sound_to + key[len(sound_from):]
    return key


def rename_key(key, family, direction):
    """The name from_hf (direction "from_hf") or to_hf ("to_hf") gives key by renaming
    alone: no truncation, merge, split, transpose, dequantization, cast or drop.  The
    names of a PEFT adapter's tensors (peft_ref.py) come from here."""
    if direction not in DIRECTIONS:
        raise ValueError("direction must be from_hf or to_hf, not %r" % direction)
    if family == "nemotron_h":
        return nemotron_rename(key, direction)
    if family == "nemotron_omni":
        return omni_rename(key, direction)
    if family == "step3p5":
        return step_rename(key, direction)
    if family == "gpt_oss":
        return rename_first(key, GPT_OSS_FROM_HF if direction == "from_hf" else GPT_OSS_TO_HF)
    if family in FAMILIES:
        return key          # llama, deepseek_v3, qwen3_moe, mixtral: no renames (spec 8)
    raise ValueError("unknown family %r" % family)


# ---------------------------------------------------------------- dispatch

def from_hf(hf_sd, config, dtype="auto", ep=None, family="auto"):
    """HF state dict (key -> Tensor) -> native state dict (key -> Tensor).
    ep: optional (rank, size) expert-parallel slice."""
    family = detect_family(config, family)
    if family == "nemotron_h":
        return nemotron_from_hf(hf_sd, config, dtype, ep)
    if family == "nemotron_omni":
        return omni_from_hf(hf_sd, config, dtype, ep)
    if family == "step3p5":
        return step_from_hf(hf_sd, config, dtype, ep)
    if family == "llama":
        return llama_from_hf(hf_sd, config)
    if family == "deepseek_v3":
        return deepseek_from_hf(hf_sd, config, dtype, ep)
    if family == "gpt_oss":
        return gpt_oss_from_hf(hf_sd, config, dtype)
    return mixin_from_hf(hf_sd, config, family, dtype, ep)


def forced_f32(family, hf_key):
    if family == "nemotron_h":
        return nemotron_forced_f32(hf_key)
    if family == "nemotron_omni":
        return omni_forced_f32(hf_key)
    return False


def kept_f32(family, hf_key):
    return forced_f32(family, hf_key) or (family == "step3p5" and step_kept_f32(hf_key))


def hf_dtype(family, hf_key, dtype, cur):
    """The dtype an HF view stores a converted tensor in (see the module docstring)."""
    if cur not in CASTABLE:
        return cur
    if forced_f32(family, hf_key):
        return "F32"
    if dtype and dtype != "auto":
        return "F32" if kept_f32(family, hf_key) else DTYPE_ARG[dtype]
    return cur


def to_hf(native_sd, config, dtype="auto", ep=None, family="auto"):
    """native state dict (key -> Tensor) -> HF state dict as saved (conversion, then the
    forced-F32 / --dtype rules, then exclude .*_extra_state.*)."""
    family = detect_family(config, family)
    if family == "nemotron_h":
        hf = nemotron_to_hf(native_sd, config, ep)
    elif family == "nemotron_omni":
        hf = omni_to_hf(native_sd, config, ep)
    elif family == "step3p5":
        hf = step_to_hf(native_sd, config, ep)
    elif family == "llama":
        hf = dict(native_sd)        # to_hf only filters (the exclude regex, below)
        # spec 6: the save pops a tied lm_head (it shares the embedding's storage)
        if tie_word_embeddings(config) and EMBEDDING in hf:
            hf.pop(LM_HEAD, None)
    elif family == "gpt_oss":
        hf = gpt_oss_to_hf(native_sd)
    else:
        hf = mixin_to_hf(native_sd, config, family, ep)
    out = {}
    for k, t in hf.items():
        if EXCLUDE_KEY_RE.match(k):
            continue
        out[k] = cast_tensor(t, hf_dtype(family, k, dtype, t.dtype))
    return out


def convert(sd, config, direction="from_hf", dtype="auto", ep=None, family="auto"):
    if direction == "from_hf":
        return from_hf(sd, config, dtype, ep, family)
    if direction == "to_hf":
        return to_hf(sd, config, dtype, ep, family)
    raise ValueError("direction must be from_hf or to_hf, not %r" % direction)


def expected_tensors(srcdir, dtype="auto", ep=None, family="auto", direction="from_hf"):
    """Converted key -> lazy Tensor for the checkpoint in srcdir."""
    return convert(load_hf_state_dict(srcdir), load_config(srcdir), direction, dtype, ep, family)


def expected_state_dict(srcdir, dtype="auto", ep=None, family="auto", direction="from_hf"):
    """Converted key -> (dtype, shape, raw bytes)."""
    return {k: (t.dtype, t.shape, t.tobytes())
            for k, t in expected_tensors(srcdir, dtype, ep, family, direction).items()}


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


def add_conversion_args(p):
    """--family, --direction, --dtype, --ep-*: shared by automodel_ref and check_view."""
    p.add_argument("--family", choices=("auto",) + FAMILIES, default="auto",
                   help="adapter family (auto: from config.json architectures / model_type)")
    p.add_argument("--direction", choices=DIRECTIONS, default="from_hf",
                   help="from_hf: SRCDIR is an HF checkpoint, the result native (default); "
                        "to_hf: SRCDIR is a native checkpoint, the result HF")
    p.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                   help="from_hf: adapter dtype of merged experts (auto: config torch_dtype, default bf16); "
                        "to_hf: cast every floating tensor to it except those kept in F32 "
                        "(auto: only Automodel's forced F32)")
    add_ep_args(p)


# ---------------------------------------------------------------- output

def is_weight_file(rel):
    """Top-level names a view replaces: *.safetensors and model.safetensors.index.json."""
    return "/" not in rel and (rel.endswith(".safetensors") or rel == "model.safetensors.index.json")


def write_single(path, tensors):
    entries = [(k, t.dtype, t.shape) for k, t in sorted(tensors.items())]
    st.write_file(path, entries, lambda n: [tensors[n].array()])


def write_view(viewdir, srcdir, tensors, shards, family=None):
    """A complete view built by this reference: sharded files, index, pass-through files
    (config.json less quantization_config for a family whose conversion dequantizes)."""
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
                if rel == "config.json" and family in DEQUANTIZING_FAMILIES:
                    with open(os.path.join(srcdir, rel)) as f:
                        config = json.load(f)
                    config.pop("quantization_config", None)
                    with open(dst, "w") as f:
                        json.dump(config, f, indent=2)
                    continue
                shutil.copyfile(os.path.join(srcdir, rel), dst)


def main(argv):
    p = argparse.ArgumentParser(description="Expected NeMo Automodel conversion (from_hf: HF -> native, "
                                            "to_hf: native -> HF) of a checkpoint directory.")
    p.add_argument("srcdir")
    p.add_argument("--out", metavar="DIR", help="write the expected state dict as DIR/model.safetensors")
    p.add_argument("--view", metavar="DIR", help="write a complete converted view (shards + index + other files)")
    p.add_argument("--shards", type=int, default=2, help="number of files for --view (default 2)")
    p.add_argument("--quiet", action="store_true", help="no per-tensor listing")
    add_conversion_args(p)
    a = p.parse_args(argv)
    ep = ep_from_args(p, a)
    try:
        config = load_config(a.srcdir)
        family = detect_family(config, a.family)
        tensors = expected_tensors(a.srcdir, a.dtype, ep, family, a.direction)
        total = 0
        for k in sorted(tensors):
            t = tensors[k]
            n = st.nbytes(t.dtype, t.shape)
            total += n
            if not a.quiet:
                digest = hashlib.blake2b(t.tobytes(), digest_size=8).hexdigest()
                print("%s\t%s\t%s\t%s" % (k, t.dtype, list(t.shape), digest))
        if a.direction == "from_hf":
            print("automodel_ref: %d tensors, %d bytes (adapter dtype %s)"
                  % (len(tensors), total, family_adapter_dtype(config, family, a.dtype)), file=sys.stderr)
        else:
            print("automodel_ref: %d tensors, %d bytes (%s to_hf, dtype %s)"
                  % (len(tensors), total, family, a.dtype), file=sys.stderr)
        if a.out:
            os.makedirs(a.out, exist_ok=True)
            write_single(os.path.join(a.out, "model.safetensors"), tensors)
        if a.view:
            write_view(a.view, a.srcdir, tensors, a.shards, family)
    except (RuntimeError, ValueError, st.FormatError, OSError) as e:
        print("automodel_ref: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
