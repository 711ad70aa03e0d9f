#!/usr/bin/python3
"""Check a consolidated HF view of an Automodel sharded checkpoint against the original HF checkpoint.

  check_consolidated.py VIEWDIR HFDIR [--mapping | --no-mapping] [--dtype-map fp32]
                        [--dcp DCPDIR] [--padding any|8|none] [--max-file-bytes N]
                        [--max-report N]

VIEWDIR is what Automodel's consolidation (conversion spec §7, consolidated/) would write
for a `model/` dir made from HFDIR by tests/fixtures/gen_dcp.py: an sdafs mount or a copy.
Checks, one "FAIL: ..." line per problem and a summary line; exit 0 only if all pass:

  files      VIEWDIR holds exactly: model-{i:05d}-of-{N:05d}.safetensors for i = 1..N
             (one N), model.safetensors.index.json, and a byte-identical copy of every
             .hf_metadata file except fqn_to_file_index_mapping.json and
             fqn_to_dtype_mapping.json, which must NOT be there.  Nothing else
             (no subdirectories, no hidden files).
  headers    every weight file parses as safetensors (bounded header, valid JSON, no
             duplicate keys, sizes match shapes, offsets contiguous to the file end) and
             has no __metadata__.  --padding 8: header length a multiple of 8 with space
             padding; none: no padding at all (what Automodel's consolidation writes);
             any (default): either.
  tensors    exactly the HF tensor names; each with the HF shape, the dtype of
             fqn_to_dtype_mapping.json (= the HF dtype for gen_dcp fixtures) and the HF
             bytes.  With --dtype-map fp32 the shards held F32 upcasts: the view must
             hold the mapped dtype again, i.e. the original bytes; the only difference
             tolerated is a NaN canonicalised by PyTorch's F32 -> BF16/F16 cast (what a
             round trip through F32 gives).
  placement  --mapping (the default when the mapping exists): every key in the file
             fqn_to_file_index_mapping.json names, N = the largest index.
             --no-mapping: any valid set of files, none empty, none holding more than
             --max-file-bytes (default 5 GiB) of tensor data unless it holds one tensor.
  index      model.safetensors.index.json: weight_map equals where each tensor is,
             metadata.total_size equals the summed tensor bytes.

Expected metadata files and mappings: with --dcp DCPDIR, from DCPDIR/.hf_metadata/
(the mapping files decide --mapping/--dtype-map defaults); otherwise derived from
HFDIR as gen_dcp.py derives them (file index from the HF index weight_map, dtypes
from the HF headers, metadata files = config, generation config, tokenizer files,
*.py).  Files are read with plain open/read so that a FUSE mount is exercised the
way a reader would.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import safetensors_lite as st  # noqa: E402
import gen_dcp  # noqa: E402

INDEX_NAME = "model.safetensors.index.json"
MAPPING_FILES = gen_dcp.MAPPING_FILES
WEIGHT_RE = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
ORDINARY_FLOATS = {"F16", "BF16", "F32", "F64"}
FIVE_GIB = 5 << 30
READ_CHUNK = 8 << 20


class Report:
    def __init__(self, max_report):
        self.count = 0
        self.max = max_report

    def fail(self, msg):
        self.count += 1
        if self.count <= self.max:
            print("FAIL: " + msg, flush=True)
        elif self.count == self.max + 1:
            print("FAIL: (further failures not shown)", flush=True)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def read_range(f, begin, n):
    f.seek(begin)
    return st.read_exact(f, n)


def load_expectations(a, rep):
    """-> (hf, meta_sources {name: path}, file_index or None, dtype_map)"""
    hf = gen_dcp.HFCheckpoint(a.hfdir)
    if a.dcp:
        md = os.path.join(a.dcp, ".hf_metadata")
        if not os.path.isdir(md):
            raise SystemExit("check_consolidated: %s has no .hf_metadata/" % a.dcp)
        names = sorted(n for n in os.listdir(md) if os.path.isfile(os.path.join(md, n)))
        meta = {n: os.path.join(md, n) for n in names if n not in MAPPING_FILES}
        fmap_path = os.path.join(md, MAPPING_FILES[0])
        dmap_path = os.path.join(md, MAPPING_FILES[1])
        use_mapping = a.mapping if a.mapping is not None else os.path.exists(fmap_path)
        if use_mapping:
            if not os.path.exists(fmap_path):
                raise SystemExit("check_consolidated: --mapping but %s does not exist" % fmap_path)
            with open(fmap_path) as f:
                file_index = {k: int(v) for k, v in json.load(f).items()}
        else:
            file_index = None
        if os.path.exists(dmap_path):
            with open(dmap_path) as f:
                dtype_map = json.load(f)
        else:
            dtype_map = {}
    else:
        meta = {n: os.path.join(a.hfdir, n) for n in gen_dcp.metadata_files(a.hfdir)}
        use_mapping = a.mapping if a.mapping is not None else True
        file_index = dict(hf.file_index) if use_mapping else None
        dtype_map = {k: hf.dtype(k) for k in hf.names()}
    return hf, meta, file_index, dtype_map


def expected_dtype(hf, dtype_map, key):
    """The dtype the consolidated file must hold: the mapping's when both are ordinary floats."""
    src = hf.dtype(key)
    want = dtype_map.get(key, src)
    if src in ORDINARY_FLOATS and want in ORDINARY_FLOATS:
        return want
    return src


def parse_weight_file(path, padding, rep):
    """-> {name: (dtype, shape, abs_begin, nbytes)}, or None if the file does not parse."""
    name = os.path.basename(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            hlen, meta, tensors = st.parse_header(f, size, name, strict=False)
            f.seek(8)
            hb = st.read_exact(f, hlen)
    except (OSError, st.FormatError) as e:
        rep.fail("%s: not a valid safetensors file: %s" % (name, e))
        return None
    padded = hb[-1:] != b"}"
    if padding == "none" and padded:
        rep.fail("%s: header is padded (%d bytes, %d trailing spaces); --padding none wants the JSON "
                 "to fill the header exactly" % (name, hlen, hlen - len(hb.rstrip(b" "))))
    if padding == "8" and (hlen % 8 != 0 or hb.rstrip(b" ")[-1:] != b"}"):
        rep.fail("%s: header length %d is not a multiple of 8 with space padding (--padding 8)" % (name, hlen))
    if meta is not None:
        rep.fail("%s: header has __metadata__ %s (consolidated headers must have none)"
                 % (name, json.dumps(meta)[:200]))
    return {t: (dt, tuple(shape), 8 + hlen + b, e - b) for t, dt, shape, b, e in tensors}


def compare_tensor(key, vpath, vinfo, hf, want_dt, dtype_fp32, rep):
    """Bytes of the view tensor against the HF tensor (cast to want_dt if the mapping says so)."""
    vdt, vshape, vbegin, vn = vinfo
    src_dt = hf.dtype(key)
    sf = hf.where[key]
    _, _, hb, he = sf.tensors[key]
    item = st.itemsize(want_dt)
    cast_needed = want_dt != src_dt
    # tolerated alternative: PyTorch's round trip through F32 (NaN canonicalisation only)
    roundtrip = dtype_fp32 and not cast_needed and src_dt in gen_dcp.UPCAST
    n_el = st.numel(vshape)
    per = max(1, READ_CHUNK // max(item, st.itemsize(src_dt)))
    bits = st.BITS[item]
    with open(vpath, "rb") as fv, open(sf.path, "rb") as fh:
        for lo in range(0, n_el, per):
            hi = min(n_el, lo + per)
            vb = read_range(fv, vbegin + lo * item, (hi - lo) * item)
            if len(vb) != (hi - lo) * item:
                rep.fail("%s: %s: short read at element %d" % (key, os.path.basename(vpath), lo))
                return
            sitem = st.itemsize(src_dt)
            ob = read_range(fh, sf.data_start + hb + lo * sitem, (hi - lo) * sitem)
            if cast_needed:
                arr = np.frombuffer(ob, dtype=st.STORAGE[src_dt])
                ob = np.ascontiguousarray(st.cast(arr, src_dt, want_dt)).tobytes()
            if vb == ob:
                continue
            v = np.frombuffer(vb, dtype=bits)
            o = np.frombuffer(ob, dtype=bits)
            bad = v != o
            if roundtrip:
                arr = np.frombuffer(ob, dtype=st.STORAGE[src_dt])
                rt = np.ascontiguousarray(st.cast(st.cast(arr, src_dt, "F32"), "F32", src_dt)).view(bits)
                bad &= v != rt
            if not bad.any():
                continue
            idx = lo + int(np.argmax(bad))
            pos = np.unravel_index(idx, vshape) if vshape else ()
            rep.fail("%s: %s: %d of elements %d..%d differ from the HF checkpoint; first at index %s "
                     "(flat %d): view bits 0x%x, expected 0x%x"
                     % (key, os.path.basename(vpath), int(bad.sum()), lo, hi - 1, list(int(x) for x in pos), idx,
                        int(v[idx - lo]), int(o[idx - lo])))
            return


def check(a):
    rep = Report(a.max_report)
    hf, meta, file_index, dtype_map = load_expectations(a, rep)
    view = a.viewdir
    if not os.path.isdir(view):
        raise SystemExit("check_consolidated: %s is not a directory" % view)

    # ---- files in the view
    weight_files = {}
    have_index = False
    for name in sorted(os.listdir(view)):
        path = os.path.join(view, name)
        if os.path.isdir(path):
            rep.fail("unexpected directory %s in the view" % name)
            continue
        m = WEIGHT_RE.match(name)
        if m:
            weight_files[name] = (int(m.group(1)), int(m.group(2)))
        elif name == INDEX_NAME:
            have_index = True
        elif name in MAPPING_FILES:
            rep.fail("%s is in the view (the consolidated dir must not carry the mapping JSONs)" % name)
        elif name in meta:
            pass
        else:
            rep.fail("unexpected file %s in the view" % name)
    for name in sorted(meta):
        vp = os.path.join(view, name)
        if not os.path.exists(vp):
            rep.fail(".hf_metadata file %s is missing from the view" % name)
        elif read_file(vp) != read_file(meta[name]):
            rep.fail("%s differs from the .hf_metadata copy (%d vs %d bytes)"
                     % (name, os.path.getsize(vp), os.path.getsize(meta[name])))

    # ---- weight file set
    totals = sorted({n for _, n in weight_files.values()})
    N = None
    if not weight_files:
        rep.fail("no model-XXXXX-of-XXXXX.safetensors files in the view")
    elif len(totals) != 1:
        rep.fail("weight files disagree on the file count N: %s" % sorted(weight_files))
    else:
        N = totals[0]
        got = sorted(i for i, _ in weight_files.values())
        if got != list(range(1, N + 1)):
            missing = sorted(set(range(1, N + 1)) - set(got))
            rep.fail("weight files are not model-00001..%05d-of-%05d: missing %s, out of range %s"
                     % (N, N, missing, sorted(i for i in got if i < 1 or i > N)))

    # ---- headers
    where = {}        # key -> file name
    infos = {}        # key -> (dtype, shape, abs_begin, nbytes)
    per_file = {}
    bad_files = set()
    for name in sorted(weight_files):
        parsed = parse_weight_file(os.path.join(view, name), a.padding, rep)
        if parsed is None:
            bad_files.add(name)
            continue
        per_file[name] = parsed
        for key, info in parsed.items():
            if key in where:
                rep.fail("%s is in two files: %s and %s" % (key, where[key], name))
                continue
            where[key] = name
            infos[key] = info

    # ---- index (read first: it tells which keys sat in files that did not parse)
    ip = os.path.join(view, INDEX_NAME)
    wm = None
    if not have_index:
        rep.fail("%s is missing" % INDEX_NAME)
    else:
        try:
            with open(ip, "rb") as f:
                idx = json.loads(f.read().decode("utf-8"), object_pairs_hook=st._no_duplicates)
        except (ValueError, st.FormatError, UnicodeDecodeError) as e:
            rep.fail("%s: not valid JSON: %s" % (INDEX_NAME, e))
            idx = None
        if idx is not None:
            if not isinstance(idx, dict) or not isinstance(idx.get("weight_map"), dict) \
                    or not isinstance(idx.get("metadata"), dict):
                rep.fail("%s: wants an object with 'metadata' and 'weight_map' objects" % INDEX_NAME)
            else:
                wm = idx["weight_map"]
                for key in sorted(set(wm) | set(where)):
                    if key not in where:
                        if wm[key] not in bad_files:
                            rep.fail("%s: weight_map lists %s (-> %s), which no file holds" % (INDEX_NAME, key, wm[key]))
                    elif key not in wm:
                        rep.fail("%s: weight_map does not list %s (in %s)" % (INDEX_NAME, key, where[key]))
                    elif wm[key] != where[key]:
                        rep.fail("%s: weight_map says %s is in %r, it is in %s" % (INDEX_NAME, key, wm[key], where[key]))
                if not bad_files:
                    total = sum(i[3] for i in infos.values())
                    ts = idx["metadata"].get("total_size")
                    if not isinstance(ts, int) or isinstance(ts, bool) or ts != total:
                        rep.fail("%s: metadata.total_size is %r, the tensors hold %d bytes" % (INDEX_NAME, ts, total))
    in_bad = {k for k, v in (wm or {}).items() if v in bad_files}
    if in_bad:
        print("NOTE: %d tensors the index puts in unreadable files were not checked" % len(in_bad))

    # ---- tensors
    hf_keys = set(hf.names())
    for key in sorted(hf_keys - set(where) - in_bad):
        rep.fail("%s: missing from the view" % key)
    for key in sorted(set(where) - hf_keys):
        rep.fail("%s: in %s but not in the HF checkpoint" % (key, where[key]))
    for key in sorted(hf_keys & set(where)):
        vdt, vshape, _, _ = infos[key]
        want_dt = expected_dtype(hf, dtype_map, key)
        if vdt != want_dt:
            why = ""
            if a.dtype_map == "fp32" and vdt == "F32":
                why = " (the saved F32 dtype was kept; fqn_to_dtype_mapping.json says %s)" % want_dt
            rep.fail("%s: dtype %s, expected %s%s" % (key, vdt, want_dt, why))
            continue
        if vshape != hf.shape(key):
            rep.fail("%s: shape %s, expected %s" % (key, list(vshape), list(hf.shape(key))))
            continue
        compare_tensor(key, os.path.join(view, where[key]), infos[key], hf, want_dt, a.dtype_map == "fp32", rep)

    # ---- placement
    if file_index is not None:
        idx_vals = set(file_index.values())
        nexp = max(idx_vals) if idx_vals else 0
        if N is not None and N != nexp:
            rep.fail("the view has %d weight files, the mapping's largest file index is %d" % (N, nexp))
        for key in sorted(hf_keys & set(where)):
            if key not in file_index:
                continue   # keys unknown to the mapping go to the last file (spec §7)
            want = "model-%05d-of-%05d.safetensors" % (file_index[key], nexp)
            if where[key] != want:
                rep.fail("%s: in %s, the file index mapping puts it in %s" % (key, where[key], want))
        for key in sorted((hf_keys & set(where)) - set(file_index)):
            want = "model-%05d-of-%05d.safetensors" % (nexp, nexp)
            if where[key] != want:
                rep.fail("%s: not in the mapping, so it belongs in the last file %s, found in %s"
                         % (key, want, where[key]))
    else:
        for name, parsed in sorted(per_file.items()):
            data = sum(i[3] for i in parsed.values())
            if not parsed:
                rep.fail("%s holds no tensors" % name)
            elif data > a.max_file_bytes and len(parsed) > 1:
                rep.fail("%s holds %d bytes of tensor data in %d tensors, more than the %d-byte file limit"
                         % (name, data, len(parsed), a.max_file_bytes))

    return rep, len(where), len(weight_files)


def main(argv):
    p = argparse.ArgumentParser(description="Check a consolidated HF view against the original HF checkpoint.")
    p.add_argument("viewdir")
    p.add_argument("hfdir")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mapping", dest="mapping", action="store_const", const=True, default=None,
                   help="files must follow fqn_to_file_index_mapping.json (default when it exists)")
    g.add_argument("--no-mapping", dest="mapping", action="store_const", const=False,
                   help="any valid set of files of at most --max-file-bytes each")
    p.add_argument("--dtype-map", choices=["fp32"], default=None,
                   help="fp32: the shards held F32 upcasts (tolerate PyTorch NaN canonicalisation)")
    p.add_argument("--dcp", default=None, help="the gen_dcp model/ dir: take .hf_metadata and mappings from it")
    p.add_argument("--padding", choices=["any", "8", "none"], default="any",
                   help="header padding required (default any)")
    p.add_argument("--max-file-bytes", type=int, default=FIVE_GIB, help="--no-mapping file limit (default 5 GiB)")
    p.add_argument("--max-report", type=int, default=200)
    a = p.parse_args(argv)
    rep, ntensors, nfiles = check(a)
    status = "PASS" if rep.count == 0 else "FAIL (%d problems)" % rep.count
    print("check_consolidated: %s: %s (%d tensors in %d files)" % (a.viewdir, status, ntensors, nfiles))
    return 0 if rep.count == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
