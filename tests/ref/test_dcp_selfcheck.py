#!/usr/bin/python3
"""Self-test of tests/fixtures/gen_dcp.py and tests/ref/check_consolidated.py (TAP output).

An HF fixture (gen_checkpoint.py --mtp --shards 2) is turned into Automodel sharded
`model/` dirs by gen_dcp.py in several variants.  A tiny consolidator written here,
independently of gen_dcp's plan (it reads only the shard files and .hf_metadata/),
validates the chunk tiling, assembles every tensor with numpy and writes a consolidated
dir as spec §7 describes; check_consolidated.py must pass on that and fail on
deliberately damaged copies.  Every --break kind must be rejected by the consolidator,
naming the tensor gen_dcp says it broke.
"""

import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_lite as st  # noqa: E402

PY = sys.executable or "/usr/bin/python3"
GEN_CKPT = os.path.join(HERE, "..", "fixtures", "gen_checkpoint.py")
GEN_DCP = os.path.join(HERE, "..", "fixtures", "gen_dcp.py")
CHECK = os.path.join(HERE, "check_consolidated.py")
MAPPINGS = ("fqn_to_file_index_mapping.json", "fqn_to_dtype_mapping.json")
SHARD_RE = re.compile(r"^shard-(\d{5})-model-00001-of-00001\.safetensors$")
ORDINARY = {"F16", "BF16", "F32", "F64"}

TESTS = []
TMP = tempfile.mkdtemp(prefix="dcp_selfcheck.")
HF = os.path.join(TMP, "hf")
HF_SPECIAL = os.path.join(TMP, "hf_special")
HF_SINGLE = os.path.join(TMP, "hf_single")


def test(fn):
    TESTS.append(fn)
    return fn


def run(*args, ok=True):
    r = subprocess.run([PY] + [str(x) for x in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if ok and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (" ".join(map(str, args)), r.returncode, r.stdout))
    return r


def hf_fixture(path, *extra):
    if not os.path.isdir(path):
        run(GEN_CKPT, path, "--mtp", "--shards", "2", *extra)
    return path


def gen(name, *opts, hf=None):
    out = os.path.join(TMP, "dcp_" + name)
    r = run(GEN_DCP, hf or hf_fixture(HF), out, *opts)
    return out, r.stdout


# ------------------------------------------------------------------ independent consolidator

class DCPError(Exception):
    def __init__(self, fqn, what):
        Exception.__init__(self, "%s: %s" % (fqn, what))
        self.fqn = fqn
        self.what = what


def read_shards(dcpdir):
    """fqn -> list of (offsets, shape, dtype, SafetensorsFile); strict about the metadata."""
    files = sorted(n for n in os.listdir(dcpdir) if n.endswith(".safetensors"))
    chunks = {}
    for n in files:
        if not SHARD_RE.match(n):
            raise DCPError(n, "not a shard-XXXXX-model-00001-of-00001 name")
        sf = st.SafetensorsFile(os.path.join(dcpdir, n), strict=True)
        meta = sf.metadata or {}
        if set(meta) != {"DCP_SHARDING_INFO", "DCP_VERSION", "format"} or meta["DCP_VERSION"] != "1.0" \
                or meta["format"] != "pt":
            raise DCPError(n, "bad __metadata__ %r" % sorted(meta))
        info = json.loads(meta["DCP_SHARDING_INFO"])
        for fqn in sf.order:
            if fqn not in info:
                raise DCPError(fqn, "no DCP_SHARDING_INFO entry in %s" % n)
        for fqn in info:
            if fqn not in sf.tensors:
                raise DCPError(fqn, "DCP_SHARDING_INFO entry without a tensor in %s" % n)
        for fqn in sf.order:
            dt, shape, _, _ = sf.tensors[fqn]
            offs = info[fqn]["saved_offsets"]
            if len(offs) != len(shape):
                raise DCPError(fqn, "%d offsets for a %d-dim chunk" % (len(offs), len(shape)))
            chunks.setdefault(fqn, []).append((list(offs), list(shape), dt, sf))
    return chunks


def global_shape(fqn, cl):
    dts = {c[2] for c in cl}
    if len(dts) != 1:
        raise DCPError(fqn, "chunks in different dtypes %s" % sorted(dts))
    nds = {len(c[1]) for c in cl}
    if len(nds) != 1:
        raise DCPError(fqn, "chunks with different numbers of dims %s" % sorted(nds))
    nd = nds.pop()
    g = [max(c[0][d] + c[1][d] for c in cl) for d in range(nd)]
    for i, a in enumerate(cl):
        if any(o < 0 for o in a[0]):
            raise DCPError(fqn, "negative offset %s" % a[0])
        for b in cl[i + 1:]:
            if all(max(a[0][d], b[0][d]) < min(a[0][d] + a[1][d], b[0][d] + b[1][d]) for d in range(nd)):
                raise DCPError(fqn, "chunks at %s and %s overlap" % (a[0], b[0]))
    vol = sum(int(np.prod(c[1])) for c in cl)
    if vol != int(np.prod(g)):
        raise DCPError(fqn, "chunks cover %d of %d elements of the implied shape %s" % (vol, int(np.prod(g)), g))
    return g, dts.pop()


def assemble(fqn, cl):
    g, dt = global_shape(fqn, cl)
    out = np.empty(g, dtype=st.STORAGE[dt])
    for offs, shape, _, sf in cl:
        out[tuple(slice(o, o + s) for o, s in zip(offs, shape))] = sf.array(fqn, mmap=False)
    return out, dt


def write_st(path, tensors, padded):
    """tensors: list of (name, dtype, array); no __metadata__."""
    hdr, pos = {}, 0
    for name, dt, arr in tensors:
        n = arr.nbytes
        hdr[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [pos, pos + n]}
        pos += n
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    if padded:
        hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for _, _, arr in tensors:
            f.write(np.ascontiguousarray(arr).tobytes())
    return pos


def consolidate(dcpdir, outdir, padded=False, max_file_bytes=5 << 30, use_mapping=True, apply_dtypes=True):
    chunks = read_shards(dcpdir)
    md = os.path.join(dcpdir, ".hf_metadata")
    fmap_p, dmap_p = (os.path.join(md, m) for m in MAPPINGS)
    dmap = json.load(open(dmap_p)) if os.path.exists(dmap_p) else {}
    full = {}
    for fqn in sorted(chunks):
        arr, dt = assemble(fqn, chunks[fqn])
        want = dmap.get(fqn, dt)
        if apply_dtypes and dt != want and dt in ORDINARY and want in ORDINARY:
            arr, dt = np.ascontiguousarray(st.cast(arr, dt, want)), want
        full[fqn] = (dt, arr)
    if use_mapping and os.path.exists(fmap_p):
        fmap = json.load(open(fmap_p))
        n = max(fmap.values())
        group = {k: fmap.get(k, n) for k in full}
    else:
        group, g, size = {}, 1, 0
        for k in sorted(full):
            b = full[k][1].nbytes
            if size and size + b > max_file_bytes:
                g, size = g + 1, 0
            group[k] = g
            size += b
        n = g
    os.makedirs(outdir)
    wm, total = {}, 0
    for i in range(1, n + 1):
        fname = "model-%05d-of-%05d.safetensors" % (i, n)
        keys = sorted(k for k in full if group[k] == i)
        total += write_st(os.path.join(outdir, fname), [(k, full[k][0], full[k][1]) for k in keys], padded)
        wm.update({k: fname for k in keys})
    with open(os.path.join(outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=2)
    for name in os.listdir(md):
        if name not in MAPPINGS:
            shutil.copyfile(os.path.join(md, name), os.path.join(outdir, name))
    return outdir


def check(view, *opts, ok=True, hf=None):
    r = run(CHECK, view, hf or HF, *opts, ok=False)
    if ok and r.returncode != 0:
        raise AssertionError("check_consolidated should pass:\n" + r.stdout)
    if not ok:
        fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL: ")]
        if r.returncode == 0 or not fails:
            raise AssertionError("check_consolidated should fail (rc %d):\n%s" % (r.returncode, r.stdout))
    return r.stdout


def copy_view(src, name):
    dst = os.path.join(TMP, name)
    shutil.copytree(src, dst)
    return dst


def find_tensor(view, key):
    """(path, absolute data begin) of a tensor in a view."""
    wm = json.load(open(os.path.join(view, "model.safetensors.index.json")))["weight_map"]
    sf = st.SafetensorsFile(os.path.join(view, wm[key]))
    return sf.path, sf.data_start + sf.tensors[key][2]


def flip_byte(path, pos, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)[0]
        f.seek(pos)
        f.write(bytes([b ^ mask]))


def plan_of(dcpdir):
    return read_shards(dcpdir)


# ------------------------------------------------------------------ gen_dcp output shape

VIEWS = {}


def base_view():
    if "default" not in VIEWS:
        d, _ = gen("default")
        VIEWS["default"] = (d, consolidate(d, os.path.join(TMP, "view_default")))
    return VIEWS["default"]


@test
def default_shard_files_and_headers():
    d, out = gen("default")
    names = sorted(os.listdir(d))
    assert names == [".hf_metadata"] + ["shard-%05d-model-00001-of-00001.safetensors" % k for k in range(1, 5)], names
    sorted_somewhere = False
    for n in names[1:]:
        p = os.path.join(d, n)
        with open(p, "rb") as f:
            hlen = struct.unpack("<Q", f.read(8))[0]
            raw = f.read(hlen).decode()
        assert hlen % 8 == 0
        hdr = json.loads(raw)
        meta = hdr["__metadata__"]
        assert list(meta) == ["DCP_SHARDING_INFO", "DCP_VERSION", "format"], list(meta)
        assert meta["DCP_VERSION"] == "1.0" and meta["format"] == "pt"
        s = meta["DCP_SHARDING_INFO"]
        assert ", " not in s and ": " not in s, "DCP_SHARDING_INFO is not compact"
        info = json.loads(s)
        sf = st.SafetensorsFile(p, strict=True)
        assert set(info) == set(sf.order)
        assert all(set(v) == {"saved_offsets"} for v in info.values())
        if sf.order == sorted(sf.order) or sf.order == [e[0] for e in st.file_order(
                [(k, sf.tensors[k][0], sf.tensors[k][1]) for k in sf.order])]:
            sorted_somewhere = True
    assert not sorted_somewhere, "some shard is in name / safetensors order"


@test
def default_hf_metadata():
    d, _ = gen("default")
    md = os.path.join(d, ".hf_metadata")
    names = sorted(os.listdir(md))
    assert names == ["config.json", "fqn_to_dtype_mapping.json", "fqn_to_file_index_mapping.json",
                     "generation_config.json", "tokenizer.json", "tokenizer_config.json"], names
    for n in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]:
        assert open(os.path.join(md, n), "rb").read() == open(os.path.join(HF, n), "rb").read(), n
    idx = json.load(open(os.path.join(HF, "model.safetensors.index.json")))["weight_map"]
    fmap = json.load(open(os.path.join(md, MAPPINGS[0])))
    assert fmap == {k: int(v[6:11]) for k, v in idx.items()}
    assert set(fmap.values()) == {1, 2}
    dmap = json.load(open(os.path.join(md, MAPPINGS[1])))
    assert set(dmap) == set(idx) and set(dmap.values()) == {"BF16", "F32"}


@test
def default_plan_covers_every_split_kind():
    d, _ = gen("default")
    chunks = plan_of(d)
    kinds = {}
    uneven = threed = oned = subset = False
    for fqn, cl in chunks.items():
        g, _ = global_shape(fqn, cl)
        nz = sorted({dim for c in cl for dim, o in enumerate(c[0]) if o})
        kind = "replicated" if len(cl) == 1 else {(0,): "dim0", (1,): "dim1", (0, 1): "grid"}[tuple(nz)]
        kinds.setdefault(kind, []).append(fqn)
        if len(cl) > 1:
            assert len(cl) <= 4
            if len({tuple(c[1]) for c in cl}) > 1:
                uneven = True
            threed |= len(g) == 3
            oned |= len(g) == 1
            subset |= len(cl) in (2, 3) and kind == "dim0"
        else:
            assert cl[0][0] == [0] * len(g)
    assert set(kinds) == {"replicated", "dim0", "dim1", "grid"}, sorted(kinds)
    assert uneven and threed and oned and subset, (uneven, threed, oned, subset)
    # every tensor of the HF fixture is there, nothing else
    idx = json.load(open(os.path.join(HF, "model.safetensors.index.json")))["weight_map"]
    assert set(chunks) == set(idx)


@test
def chunk_bytes_are_exact_slices():
    d, _ = gen("default")
    hf = {}
    for p in glob.glob(os.path.join(HF, "model-*.safetensors")):
        sf = st.SafetensorsFile(p)
        for k in sf.order:
            hf[k] = sf
    for fqn, cl in plan_of(d).items():
        ref = hf[fqn].array(fqn, mmap=False)
        for offs, shape, dt, sf in cl:
            assert dt == hf[fqn].tensors[fqn][0]
            sl = tuple(slice(o, o + s) for o, s in zip(offs, shape))
            assert sf.array(fqn, mmap=False).tobytes() == np.ascontiguousarray(ref[sl]).tobytes(), fqn


@test
def deterministic_in_seed():
    a, _ = gen("det_a", "--seed", "5")
    b, _ = gen("det_b", "--seed", "5")
    c, _ = gen("det_c", "--seed", "6")
    fa = sorted(os.listdir(a))
    assert fa == sorted(os.listdir(b))
    for n in fa[1:]:
        assert open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read(), n
    assert any(open(os.path.join(a, n), "rb").read() != open(os.path.join(c, n), "rb").read() for n in fa[1:])


@test
def split_dims_0_only_splits_dim0():
    d, _ = gen("split0", "--split-dims", "0")
    for fqn, cl in plan_of(d).items():
        for offs, shape, _, _ in cl:
            assert all(o == 0 for o in offs[1:]), (fqn, offs)
        if len(cl) > 1:
            assert len(cl[0][1]) >= 2, "1-D tensors stay replicated with --split-dims 0: " + fqn


@test
def dtype_map_fp32_saves_f32_chunks():
    d, _ = gen("fp32", "--dtype-map", "fp32")
    dmap = json.load(open(os.path.join(d, ".hf_metadata", MAPPINGS[1])))
    for fqn, cl in plan_of(d).items():
        assert all(c[2] == "F32" for c in cl), fqn
    assert set(dmap.values()) == {"BF16", "F32"}


@test
def no_mapping_leaves_out_file_index():
    d, _ = gen("nomap", "--no-mapping")
    assert sorted(os.listdir(os.path.join(d, ".hf_metadata"))) == [
        "config.json", "fqn_to_dtype_mapping.json", "generation_config.json", "tokenizer.json",
        "tokenizer_config.json"]


# ------------------------------------------------------------------ round trips through the consolidator

VARIANTS = [
    ("default", [], []),
    ("ranks1", ["--ranks", "1"], []),
    ("ranks2", ["--ranks", "2"], []),
    ("ranks3", ["--ranks", "3"], []),
    ("ranks4_seed2", ["--ranks", "4", "--seed", "2"], []),
    ("ranks8", ["--ranks", "8", "--seed", "3"], []),
    ("split0", ["--split-dims", "0"], []),
    ("split0_ranks3", ["--split-dims", "0", "--ranks", "3"], []),
    ("split_any_r5", ["--split-dims", "any", "--ranks", "5"], []),
    ("ranks16_any", ["--split-dims", "any", "--ranks", "16", "--seed", "9"], []),
    ("nomap", ["--no-mapping"], []),
    ("fp32", ["--dtype-map", "fp32"], ["--dtype-map", "fp32"]),
    ("fp32_nomap_r3", ["--dtype-map", "fp32", "--no-mapping", "--ranks", "3"], ["--dtype-map", "fp32"]),
]


def variant_test(name, gen_opts, check_opts):
    def fn():
        d, _ = gen("rt_" + name, *gen_opts)
        for padded in (False, True):
            v = consolidate(d, os.path.join(TMP, "view_%s_%d" % (name, padded)), padded=padded)
            check(v, "--dcp", d, *check_opts)
            check(v, *check_opts, *([] if "--no-mapping" not in gen_opts else ["--no-mapping"]))
            check(v, "--dcp", d, "--padding", "8" if padded else "none", *check_opts)
        # the flipped byte the brief asks for: the first data byte of some tensor
        key = sorted(json.load(open(os.path.join(v, "model.safetensors.index.json")))["weight_map"])[-1]
        path, pos = find_tensor(v, key)
        flip_byte(path, pos)
        out = check(v, "--dcp", d, *check_opts, ok=False)
        assert sum(1 for l in out.splitlines() if l.startswith("FAIL")) == 1 and key in out, out
    fn.__name__ = "round_trip_" + name
    return fn


for _n, _g, _c in VARIANTS:
    test(variant_test(_n, _g, _c))


@test
def split_any_has_a_non_grid_tiling():
    d, _ = gen("rt_split_any_r5", "--split-dims", "any", "--ranks", "5")
    found = False
    for fqn, cl in plan_of(d).items():
        rows = {c[0][0] for c in cl}
        cols = {c[0][1] for c in cl} if len(cl[0][0]) > 1 else set()
        if len(cl) > 1 and len(rows) > 1 and len(cols) > 1 and len(cl) != len(rows) * len(cols):
            found = True
    assert found


@test
def no_mapping_small_files():
    d, _ = gen("rt_nomap", "--no-mapping")
    v = consolidate(d, os.path.join(TMP, "view_nomap_small"), max_file_bytes=1 << 20)
    n = len([f for f in os.listdir(v) if f.endswith(".safetensors")])
    assert n >= 5, n
    check(v, "--dcp", d)                                     # no mapping in the dcp dir -> --no-mapping
    check(v, "--no-mapping", "--max-file-bytes", str(1 << 20))
    out = check(v, "--no-mapping", "--max-file-bytes", str(1 << 19), ok=False)
    assert "file limit" in out, out
    out = check(v, "--mapping", ok=False)                   # against the HF index placement
    assert "file index mapping puts it" in out, out


@test
def special_values_fp32_nan_canonicalisation():
    hf = hf_fixture(HF_SPECIAL, "--special-values")
    d, _ = gen("special_fp32", "--dtype-map", "fp32", hf=hf)
    v = consolidate(d, os.path.join(TMP, "view_special_fp32"))
    check(v, "--dcp", d, "--dtype-map", "fp32", hf=hf)
    out = check(v, "--dcp", d, hf=hf, ok=False)             # without the flag NaN payload loss is an error
    assert "differ from the HF checkpoint" in out, out
    d2, _ = gen("special", hf=hf)
    check(consolidate(d2, os.path.join(TMP, "view_special")), "--dcp", d2, hf=hf)


@test
def single_file_hf_snapshot():
    if not os.path.isdir(HF_SINGLE):
        run(GEN_CKPT, HF_SINGLE, "--shards", "1", "--no-index", "--family", "qwen3_moe")
    assert os.path.exists(os.path.join(HF_SINGLE, "model.safetensors"))
    d, _ = gen("single", hf=HF_SINGLE)
    fmap = json.load(open(os.path.join(d, ".hf_metadata", MAPPINGS[0])))
    assert set(fmap.values()) == {1}
    v = consolidate(d, os.path.join(TMP, "view_single"))
    assert sorted(os.listdir(v))[0] == "config.json"
    assert "model-00001-of-00001.safetensors" in os.listdir(v)
    check(v, hf=HF_SINGLE)
    check(v, "--dcp", d, hf=HF_SINGLE)


# ------------------------------------------------------------------ check_consolidated must catch these

def damaged(tag):
    d, v = base_view()
    return d, copy_view(v, "dmg_" + tag)


@test
def checker_flags_metadata_file_changes():
    d, v = damaged("tok")
    flip_byte(os.path.join(v, "tokenizer.json"), 10)
    assert "tokenizer.json differs" in check(v, "--dcp", d, ok=False)
    d, v = damaged("gencfg")
    os.remove(os.path.join(v, "generation_config.json"))
    assert "generation_config.json is missing" in check(v, "--dcp", d, ok=False)
    assert "generation_config.json is missing" in check(v, ok=False)


@test
def checker_flags_mapping_jsons_and_strays():
    for i, m in enumerate(MAPPINGS):
        d, v = damaged("map%d" % i)
        shutil.copyfile(os.path.join(d, ".hf_metadata", m), os.path.join(v, m))
        assert "must not carry the mapping" in check(v, "--dcp", d, ok=False)
    d, v = damaged("stray")
    open(os.path.join(v, "README.md"), "w").write("x")
    assert "unexpected file README.md" in check(v, "--dcp", d, ok=False)
    d, v = damaged("hidden")
    open(os.path.join(v, ".hidden"), "w").write("x")
    assert "unexpected file .hidden" in check(v, ok=False)
    d, v = damaged("subdir")
    os.mkdir(os.path.join(v, "consolidated"))
    assert "unexpected directory" in check(v, ok=False)


@test
def checker_flags_index_problems():
    d, v = damaged("total")
    ip = os.path.join(v, "model.safetensors.index.json")
    idx = json.load(open(ip))
    idx["metadata"]["total_size"] += 1
    json.dump(idx, open(ip, "w"))
    assert "total_size" in check(v, ok=False)
    d, v = damaged("wm")
    ip = os.path.join(v, "model.safetensors.index.json")
    idx = json.load(open(ip))
    k = sorted(idx["weight_map"])[0]
    idx["weight_map"][k] = "model-00002-of-00002.safetensors"
    json.dump(idx, open(ip, "w"))
    out = check(v, ok=False)
    assert "weight_map says %s" % k in out, out
    d, v = damaged("noindex")
    os.remove(os.path.join(v, "model.safetensors.index.json"))
    assert "model.safetensors.index.json is missing" in check(v, ok=False)


def rewrite_view(v, d, edit, padded=False):
    """Rebuild a view's weight files after edit(full: {key: (dtype, arr, file_no)}) -> (full, n)."""
    full = {}
    for p in sorted(glob.glob(os.path.join(v, "model-*.safetensors"))):
        sf = st.SafetensorsFile(p)
        i = int(os.path.basename(p)[6:11])
        for k in sf.order:
            full[k] = (sf.tensors[k][0], np.array(sf.array(k, mmap=False)), i)
        os.remove(p)
    full, n, meta = edit(full)
    wm, total = {}, 0
    for i in range(1, n + 1):
        fname = "model-%05d-of-%05d.safetensors" % (i, n)
        ents = [(k, full[k][0], full[k][1]) for k in sorted(full) if full[k][2] == i]
        if meta is not None and i == 1:
            st.write_file(os.path.join(v, fname), [(k, dt, a.shape) for k, dt, a in ents],
                          lambda name: [full[name][1]], metadata=meta)
            total += sum(a.nbytes for _, _, a in ents)
        else:
            total += write_st(os.path.join(v, fname), ents, padded)
        wm.update({k: fname for k, _, _ in ents})
    with open(os.path.join(v, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f)


@test
def checker_flags_metadata_in_header():
    d, v = damaged("meta")
    rewrite_view(v, d, lambda full: (full, 2, {"format": "pt"}))
    assert "has __metadata__" in check(v, "--dcp", d, ok=False)


@test
def checker_flags_moved_key_under_mapping_only():
    d, v = damaged("moved")
    k = "lm_head.weight"

    def edit(full):
        dt, a, i = full[k]
        full[k] = (dt, a, 3 - i)
        return full, 2, None
    rewrite_view(v, d, edit)
    out = check(v, "--dcp", d, ok=False)
    assert "%s: in model-" % k in out and out.count("FAIL:") == 1, out
    check(v, "--dcp", d, "--no-mapping")


@test
def checker_flags_missing_extra_and_reshaped_tensors():
    d, v = damaged("missing")
    k = "backbone.layers.0.mixer.in_proj.weight"
    rewrite_view(v, d, lambda full: ({x: y for x, y in full.items() if x != k}, 2, None))
    assert "%s: missing from the view" % k in check(v, ok=False)
    d, v = damaged("extra")

    def add(full):
        full["bogus.weight"] = ("BF16", np.zeros(4, dtype=np.uint16), 2)
        return full, 2, None
    rewrite_view(v, d, add)
    assert "bogus.weight: in model-00002" in check(v, ok=False)
    d, v = damaged("reshape")

    def reshape(full):
        dt, a, i = full[k]
        full[k] = (dt, a.reshape(a.shape[1], a.shape[0]), i)
        return full, 2, None
    rewrite_view(v, d, reshape)
    assert "%s: shape" % k in check(v, ok=False)


@test
def checker_flags_kept_f32_dtype():
    d, _ = gen("rt_fp32", "--dtype-map", "fp32")
    v = consolidate(d, os.path.join(TMP, "view_fp32_kept"), apply_dtypes=False)
    out = check(v, "--dcp", d, "--dtype-map", "fp32", ok=False)
    assert "the saved F32 dtype was kept" in out, out


@test
def checker_flags_wrong_file_count_and_padding():
    d, v = damaged("n3")
    rewrite_view(v, d, lambda full: (full, 3, None))       # a third, empty file
    out = check(v, "--dcp", d, ok=False)
    assert "largest file index is 2" in out, out
    d, v = damaged("pad")
    rewrite_view(v, d, lambda full: (full, 2, None), padded=True)
    check(v, "--dcp", d)
    assert "padded" in check(v, "--dcp", d, "--padding", "none", ok=False)
    d, v = damaged("nopad")
    rewrite_view(v, d, lambda full: (full, 2, None), padded=False)
    with open(os.path.join(v, "model-00001-of-00002.safetensors"), "rb") as f:
        hl = struct.unpack("<Q", f.read(8))[0]
    if hl % 8:
        assert "multiple of 8" in check(v, "--dcp", d, "--padding", "8", ok=False)


@test
def checker_flags_byte_flip_in_every_file():
    d, v = base_view()
    for fname in sorted(f for f in os.listdir(v) if f.endswith(".safetensors")):
        vv = copy_view(v, "flip_" + fname)
        sf = st.SafetensorsFile(os.path.join(vv, fname))
        key = sf.order[len(sf.order) // 2]
        _, _, b, e = sf.tensors[key]
        flip_byte(sf.path, sf.data_start + (b + e) // 2, 0x80)
        out = check(vv, "--dcp", d, ok=False)
        assert key in out and out.count("FAIL:") == 1, out


# ------------------------------------------------------------------ malformed shards

BREAKS = {
    "gap": "cover",
    "overlap": "overlap",
    "dtype": "different dtypes",
    "rank": "different numbers of dims",
    "offsets-missing": "no DCP_SHARDING_INFO entry",
    "outside": "cover",
}


def break_test(kind, opts):
    def fn():
        d, out = gen("break_%s_%s" % (kind, "_".join(o.strip("-") for o in opts)), "--break", kind, *opts)
        m = re.search(r"^BROKEN (\S+) (\S+)$", out, re.M)
        assert m and m.group(1) == kind, out
        try:
            consolidate(d, os.path.join(TMP, "view_break_%s_%s" % (kind, len(opts))))
        except DCPError as e:
            assert e.fqn == m.group(2), (str(e), m.group(2))
            assert BREAKS[kind] in e.what, (kind, str(e))
        else:
            raise AssertionError("consolidator accepted --break %s (%s)" % (kind, m.group(2)))
    fn.__name__ = "break_%s%s" % (kind, " " + " ".join(opts) if opts else "")
    return fn


for _k in BREAKS:
    test(break_test(_k, []))
    test(break_test(_k, ["--ranks", "3", "--split-dims", "0", "--seed", "4"]))
    test(break_test(_k, ["--ranks", "2", "--dtype-map", "fp32"]))


def main():
    print("1..%d" % len(TESTS))
    bad = 0
    try:
        for i, fn in enumerate(TESTS, 1):
            name = fn.__name__.replace("_", " ")
            try:
                fn()
                print("ok %d - %s" % (i, name), flush=True)
            except Exception:
                bad += 1
                print("not ok %d - %s" % (i, name), flush=True)
                for line in traceback.format_exc().rstrip().splitlines():
                    print("# " + line)
    finally:
        if os.environ.get("KEEP_TMP"):
            print("# kept %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
