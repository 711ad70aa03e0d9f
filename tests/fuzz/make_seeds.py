#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Seeds come from the project's own fixture generator (tests/fixtures/
gen_checkpoint.py), run for every family in both layouts at the smallest
sizes it allows, and from the adapter tables (convert/plan/adapters/*.json,
examples/adapters/*.json):

  fuzz_safetensors     the header JSON of each generated shard, plus a few
                       hand-written edge cases (empty, scalar, zero-sized)
  fuzz_adapter_table   each table as it is
  fuzz_checkpoint      opts byte | config.json | FF 00 | index | FF 00 | headers
                       (one per shard, joined by FF 01)
                       [| FF 00 | adapter table, for the example families]
                       and, for Automodel sharded saves (tests/fixtures/gen_dcp.py),
                       | FF 00 | FF 00 | headers | FF 00 | FF 00 | file index map | FF 00 | dtype map
                       (see tests/fuzz/fuzz_checkpoint.c); and, for PEFT adapter
                       directories (tests/fixtures/gen_peft.py),
                       opts | adapter_config.json | FF 00 | FF 00 | adapter_model header;
                       JSON texts are minified so that every seed stays a few KB
  fuzz_source_wire     the wire form (convert/source/source_wire.c) of small
                       generated checkpoints (plain, Automodel sharded saves
                       with their chunks put together, a PEFT adapter), their
                       tensors at their real offsets in the fixture files the
                       harness makes (tests/fuzz/fuzz_source_wire.c)

Usage: make_seeds.py [CORPUS_DIR]   (default: tests/fuzz/corpus next to this file)
"""

import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(ROOT, "tests", "fixtures", "gen_checkpoint.py")
GEN_DCP = os.path.join(ROOT, "tests", "fixtures", "gen_dcp.py")
GEN_PEFT = os.path.join(ROOT, "tests", "fixtures", "gen_peft.py")
INDEX = "model.safetensors.index.json"
SEP = b"\xff\x00"
SHARD_SEP = b"\xff\x01"

SMALL = ["--shards", "1", "--hidden", "16", "--vocab", "8", "--experts", "2", "--moe-inter", "4"]
# (family, layout, extra generator options, opts byte, keep the index);
# opts bit 7 asks the harness to fix up data_offsets after mutation.
CHECKPOINTS = [
    ("nemotron_h", "hf", ["--pattern", "ME"], 0x00, True),
    ("nemotron_h", "hf", ["--pattern", "ME", "--moe-inter", "8", "--shards", "2"], 0x80, True),
    ("nemotron_h", "native", ["--pattern", "ME"], 0x80, True),
    ("nemotron_h", "hf", ["--pattern", "ME", "--torch-dtype", "float32"], 0x94, False),  # BF16, EP 1
    ("step3p5", "hf", ["--layers", "2"], 0x80, True),
    ("step3p5", "native", ["--layers", "2", "--shards", "2"], 0x00, True),
    ("nemotron_omni", "hf", ["--pattern", "ME"], 0x80, False),
    ("qwen3_moe", "hf", ["--layers", "2"], 0xEC, True),     # F32, EP rank 1 of 2
    ("qwen3_moe", "native", ["--layers", "2"], 0x80, True),
    ("mixtral", "hf", ["--layers", "1", "--moe-inter", "8"], 0x88, False),  # F16
    ("mixtral", "native", ["--layers", "1"], 0x02, True),   # view=hf
    ("deepseek_v3", "hf", ["--layers", "2"], 0x80, True),   # FP8 blocks + scale_inv; layer 0 dense
    ("deepseek_v3", "native", ["--layers", "2"], 0x00, True),
    ("gpt_oss", "hf", ["--layers", "1", "--hidden", "32", "--moe-inter", "32"], 0x80, True),  # MXFP4
    ("gpt_oss", "native", ["--layers", "1", "--hidden", "32", "--moe-inter", "32"], 0x08, True),
    ("llama", "hf", ["--layers", "1", "--tied"], 0x80, True),     # tied: lm_head alias
    ("llama", "hf", ["--layers", "1", "--tied"], 0x02, False),    # view=hf
]

# Automodel sharded saves (tests/fixtures/gen_dcp.py) of a small Nemotron-H:
# (ranks, gen_dcp options, opts byte); 32 x 32 tensors are big enough to split.
DCP_BASE = ["--family", "nemotron_h", "--shards", "1", "--hidden", "32", "--vocab", "32",
            "--experts", "2", "--moe-inter", "4", "--pattern", "ME"]
DCP = [
    (2, [], 0x00),
    (3, ["--split-dims", "any"], 0x80),
    (3, ["--no-mapping", "--dtype-map", "fp32"], 0x00),
    (2, ["--split-dims", "0"], 0x01),               # view=native
]

# PEFT adapter directories (tests/fixtures/gen_peft.py): (layout, gen_peft
# options, opts byte).  In PEFT mode opts bit 6 is peft_v4; views that must
# fail (view=native of a native adapter, ep_size) are seeds too.
PEFT = [
    ("native", [], 0x00),                       # to v5 ParamWrapper
    ("native", [], 0xC0),                       # to v4 per expert
    ("native", ["--dora"], 0x42),               # view=hf, v4, DoRA renames
    ("native", ["--dora"], 0x88),               # F16
    ("native", [], 0x01),                       # view=native: refused
    ("native", [], 0x10),                       # ep_size: refused
    ("v4", [], 0x80),
    ("v4", ["--dora"], 0x01),                   # view=native
    ("v4", ["--incomplete"], 0x84),             # BF16
    ("v5", [], 0x80),
    ("v5", ["--legacy-dora"], 0x0D),            # view=native, F32
    ("v5", [], 0x02),                           # view=hf: refused
    ("v5", ["--break", "rank"], 0x80),
    ("v5", ["--break", "no-rank"], 0x00),
    ("native", ["--break", "mixed"], 0x80),
    ("native", ["--break", "shape"], 0xC0),
    # a family's names, told by the key names alone (no config.json in an input)
    ("v5", ["--family", "nemotron_h", "--names", "hf"], 0x00),     # backbone. -> model.
    ("v4", ["--family", "nemotron_h", "--names", "hf"], 0x80),
    ("native", ["--family", "gpt_oss"], 0x00),                      # mlp.gate -> mlp.router
]

# Headers no generator writes: empty, metadata only, a scalar, a zero-sized
# tensor between two others, every dtype once, and the limits: a shape whose
# size overflows, nine dimensions, a name one byte over 4096.
EDGE_HEADERS = {
    "shape-overflow": b'{"o":{"dtype":"F64","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}}',
    "nine-dims": b'{"n":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}',
    "long-name": b'{"' + b"n" * 4097 + b'":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
    "empty": b"{}",
    "metadata-only": b'{"__metadata__":{"format":"pt"}}',
    "scalar": b'{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}',
    "zero-sized": b'{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},'
                  b'"z":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]},'
                  b'"b":{"dtype":"U8","shape":[1,1,1],"data_offsets":[4,5]}}',
    "dtypes": b"{" + b",".join(
        b'"t%d":{"dtype":"%s","shape":[1],"data_offsets":[%d,%d]}' % (i, d.encode(), i * 8, i * 8 + n)
        + (b',"p%d":{"dtype":"U8","shape":[%d],"data_offsets":[%d,%d]}' % (i, 8 - n, i * 8 + n, i * 8 + 8)
           if n < 8 else b"")
        for i, (d, n) in enumerate([("BOOL", 1), ("U8", 1), ("I8", 1), ("U16", 2), ("I16", 2),
                                    ("U32", 4), ("I32", 4), ("U64", 8), ("I64", 8), ("F16", 2),
                                    ("BF16", 2), ("F32", 4), ("F64", 8), ("F8_E4M3", 1),
                                    ("F8_E5M2", 1), ("F8_E8M0", 1)])) + b"}",
}


# The wire form of a scanned source (convert/source/source_wire.c) naming
# the files fuzz_source_wire.c makes: (name, path, size); mtime fixed.
WIRE_MAGIC = b"SDAFSRC3"
WIRE_MTIME = (1700000000, 123456789)
WIRE_SHARDS = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
WIRE_SHARD_SIZE = 16384
WIRE_OTHERS = [("config.json", "config.json", 64), ("tokenizer.json", "tokenizer.json", 32),
               ("generation_config.json", ".hf_metadata/generation_config.json", 16)]
DTYPES = ["BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "BF16", "F32",
          "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0"]


def u64(v):
    return struct.pack("<Q", v)


def wstr(b):
    return u64(len(b)) + b


def wjson(obj):
    return wstr(b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode())


def wire(config, files, tensors, index=None, dcp=False, maps=(None, None), peft_config=None):
    """files: (name, path, size, is_weights, metadata); tensors: (name, dtype,
    shape, file, offset, nbytes, chunks), chunks: (file, offset, nbytes, start, shape)."""
    out = WIRE_MAGIC + wjson(config) + wstr(index.encode() if index else b"") + u64(dcp)
    out += wjson(maps[0]) + wjson(maps[1]) + u64(peft_config is not None) + wjson(peft_config)
    out += u64(len(files)) + u64(sum(1 for f in files if f[3]))
    for name, path, size, weights, meta in files:
        out += wstr(name.encode()) + wstr(path.encode()) + u64(size) + u64(WIRE_MTIME[0])
        out += u64(WIRE_MTIME[1]) + u64(weights) + wjson(meta)
    out += u64(len(tensors))
    for name, dtype, shape, fi, off, nbytes, chunks in tensors:
        out += wstr(name.encode()) + u64(DTYPES.index(dtype)) + u64(len(shape))
        out += b"".join(u64(d) for d in shape) + u64(fi) + u64(off) + u64(nbytes)
        out += u64(len(chunks))
        for cf, coff, cn, start, cshape in chunks:
            out += u64(cf) + u64(coff) + u64(cn) + b"".join(u64(a) + u64(b) for a, b in zip(start, cshape))
    return out


def wire_edges():
    """Hand-made wire seeds: what unpack must refuse at the edges."""
    files = [(n, n, WIRE_SHARD_SIZE, True, None) for n in WIRE_SHARDS] + \
            [(n, p, s, False, None) for n, p, s in WIRE_OTHERS]
    cfg = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1}
    return {
        "tensor-past-its-file": wire(cfg, files, [("w", "U8", [100], 0, WIRE_SHARD_SIZE - 50, 100, [])]),
        "tensor-twice": wire(cfg, files, [("w", "U8", [1], 0, 0, 1, []), ("w", "U8", [1], 1, 0, 1, [])]),
    }


def read_shard(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return 8 + n, header


def wire_of(out, weights, meta_dir=None, peft=False):
    """The wire seed of checkpoint out whose weight files are weights (at most
    two, each at most WIRE_SHARD_SIZE bytes); None when it does not fit."""
    if len(weights) > 2 or any(os.path.getsize(w) > WIRE_SHARD_SIZE for w in weights):
        return None
    names = ["adapter_model.safetensors"] if peft else WIRE_SHARDS
    files, tensors, chunks = [], [], {}
    for k, w in enumerate(weights):
        start, header = read_shard(w)
        meta = header.pop("__metadata__", None)
        files.append((names[k], names[k], WIRE_SHARD_SIZE, True, meta))
        info = json.loads(meta["DCP_SHARDING_INFO"]) if meta and "DCP_SHARDING_INFO" in meta else None
        for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
            b, e = t["data_offsets"]
            if info is None:
                tensors.append((name, t["dtype"], t["shape"], k, start + b, e - b, []))
            else:
                chunks.setdefault(name, []).append(
                    (t["dtype"], (k, start + b, e - b, info[name]["saved_offsets"], t["shape"])))
    for name in sorted(chunks):
        parts = sorted(chunks[name], key=lambda p: p[1][3])
        dtype = parts[0][0]
        shape = [max(c[3][d] + c[4][d] for _, c in parts) for d in range(len(parts[0][1][4]))]
        nbytes = sum(c[2] for _, c in parts)
        first = parts[0][1]
        tensors.append((name, dtype, shape, first[0], first[1], nbytes,
                        [c for _, c in parts] if len(parts) > 1 else []))
    def load(path):
        return json.load(open(path)) if os.path.exists(path) else None
    if peft:
        files.append(("adapter_config.json", "adapter_config.json", 64, False, None))
        return wire(None, files, tensors, peft_config=load(os.path.join(out, "adapter_config.json")))
    files += [(n, p, s, False, None) for n, p, s in WIRE_OTHERS]
    if meta_dir:
        maps = tuple(load(os.path.join(meta_dir, m))
                     for m in ("fqn_to_file_index_mapping.json", "fqn_to_dtype_mapping.json"))
        return wire(load(os.path.join(meta_dir, "config.json")), files, tensors, dcp=True, maps=maps)
    index = INDEX if os.path.exists(os.path.join(out, INDEX)) else None
    return wire(load(os.path.join(out, "config.json")), files, tensors, index=index)


def minified(path):
    with open(path) as f:
        return json.dumps(json.load(f), separators=(",", ":")).encode()


def shard_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return f.read(n)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    dirs = {t: os.path.join(corpus, t) for t in
            ("fuzz_safetensors", "fuzz_adapter_table", "fuzz_checkpoint", "fuzz_source_wire")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)

    for name, header in EDGE_HEADERS.items():
        write(os.path.join(dirs["fuzz_safetensors"], name + ".json"), header)
    for table in sorted(glob.glob(os.path.join(ROOT, "convert", "plan", "adapters", "*.json")) +
                        glob.glob(os.path.join(ROOT, "examples", "adapters", "*.json"))):
        shutil.copy(table, os.path.join(dirs["fuzz_adapter_table"], os.path.basename(table)))

    for name, blob in wire_edges().items():
        write(os.path.join(dirs["fuzz_source_wire"], name + ".bin"), blob)

    tmp = tempfile.mkdtemp(prefix="sdafs-seeds-")
    try:
        for i, (family, layout, extra, opts, keep_index) in enumerate(CHECKPOINTS):
            out = os.path.join(tmp, str(i))
            subprocess.run([sys.executable, GEN, out, "--family", family, "--layout", layout]
                           + SMALL + extra, check=True, stdout=subprocess.DEVNULL)
            name = "%s-%s-%02x%s" % (family, layout, opts, "" if keep_index else "-noindex")
            headers = [shard_header(f) for f in sorted(glob.glob(os.path.join(out, "*.safetensors")))]
            write(os.path.join(dirs["fuzz_safetensors"], name + ".json"), headers[0])
            index = minified(os.path.join(out, INDEX)) if keep_index else b""
            seed = (bytes([opts]) + minified(os.path.join(out, "config.json")) + SEP + index + SEP
                    + SHARD_SEP.join(headers))
            example = os.path.join(ROOT, "examples", "adapters", family + ".json")
            if os.path.exists(example):
                seed += SEP + minified(example)
            write(os.path.join(dirs["fuzz_checkpoint"], name + ".bin"), seed)
            blob = None if os.path.exists(example) else \
                wire_of(out, sorted(glob.glob(os.path.join(out, "*.safetensors"))))
            if blob:        # (an example family needs its table: no view)
                write(os.path.join(dirs["fuzz_source_wire"], name + ".bin"), blob)
        hf = os.path.join(tmp, "dcp-hf")
        subprocess.run([sys.executable, GEN, hf] + DCP_BASE, check=True, stdout=subprocess.DEVNULL)
        for i, (ranks, extra, opts) in enumerate(DCP):
            out = os.path.join(tmp, "dcp%d" % i)
            subprocess.run([sys.executable, GEN_DCP, hf, out, "--ranks", str(ranks)] + extra,
                           check=True, stdout=subprocess.DEVNULL)
            meta = os.path.join(out, ".hf_metadata")
            headers = [shard_header(f) for f in sorted(glob.glob(os.path.join(out, "*.safetensors")))]
            maps = [minified(os.path.join(meta, m)) if os.path.exists(os.path.join(meta, m)) else b""
                    for m in ("fqn_to_file_index_mapping.json", "fqn_to_dtype_mapping.json")]
            seed = (bytes([opts]) + minified(os.path.join(meta, "config.json")) + SEP + SEP
                    + SHARD_SEP.join(headers) + SEP + SEP + maps[0] + SEP + maps[1])
            name = "dcp-%d-ranks%s-%02x" % (ranks, "".join(extra).replace("--", "-"), opts)
            write(os.path.join(dirs["fuzz_checkpoint"], name + ".bin"), seed)
            blob = wire_of(out, sorted(glob.glob(os.path.join(out, "*.safetensors"))), meta)
            if blob:
                write(os.path.join(dirs["fuzz_source_wire"], name + ".bin"), blob)
        for i, (layout, extra, opts) in enumerate(PEFT):
            out = os.path.join(tmp, "peft%d" % i)
            subprocess.run([sys.executable, GEN_PEFT, out, "--layout", layout] + extra,
                           check=True, stdout=subprocess.DEVNULL)
            header = shard_header(os.path.join(out, "adapter_model.safetensors"))
            seed = (bytes([opts]) + minified(os.path.join(out, "adapter_config.json")) + SEP + SEP
                    + header)
            name = "peft-%s%s-%02x" % (layout, "".join("-" + a.lstrip("-") for a in extra), opts)
            write(os.path.join(dirs["fuzz_checkpoint"], name + ".bin"), seed)
            if i < 3:
                blob = wire_of(out, [os.path.join(out, "adapter_model.safetensors")], peft=True)
                if blob:
                    write(os.path.join(dirs["fuzz_source_wire"], name + ".bin"), blob)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
