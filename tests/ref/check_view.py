#!/usr/bin/python3
"""Verify a converted view directory (an sdafs mount, or a copy of one) against the reference.

  check_view.py VIEWDIR SRCDIR [--family auto|nemotron_h|nemotron_omni|step3p5|qwen3_moe|mixtral]
                [--direction from_hf|to_hf] [--dtype auto|bf16|fp16|fp32]
                [--ep-rank R --ep-size N] [--max-report N]

The expected content is automodel_ref's conversion of SRCDIR in --direction:
from_hf (default) when SRCDIR is an HF checkpoint and VIEWDIR its native view,
to_hf when SRCDIR is a native checkpoint and VIEWDIR its HF view.  --family,
--dtype and --ep-* mean what they mean for automodel_ref.py.

Checks, printing one line per failure and a summary (exit 0 only if all pass):
  (a) every top-level *.safetensors in VIEWDIR parses: header length bounded and a
      multiple of 8, space padding, valid JSON without duplicate keys, known dtypes,
      byte sizes matching shapes, data_offsets contiguous from 0 to the file end;
  (b) model.safetensors.index.json exists; its weight_map lists every tensor exactly
      once with the file that holds it, names no missing tensor or file, and
      metadata.total_size is the sum of the tensor byte sizes;
  (c) tensor names equal the reference's exactly, and every tensor's dtype, shape
      and bytes are identical;
  (d) every other file of SRCDIR (all but top-level *.safetensors and
      model.safetensors.index.json) is in VIEWDIR with identical bytes, and VIEWDIR
      holds nothing else; config.json holds the same keys in the same order with
      every number written the same, less quantization_config for the families whose
      conversion dequantizes (DeepSeek-V3/Kimi-K2, GPT-OSS).
Files are read with plain open/read, sequentially, so the check exercises a FUSE
mount the way a reader would.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import automodel_ref as ref  # noqa: E402
import safetensors_lite as st  # noqa: E402

READ_CHUNK = 8 << 20
INDEX = "model.safetensors.index.json"


class Report:
    def __init__(self, limit):
        self.limit = limit
        self.count = 0

    def fail(self, msg):
        self.count += 1
        if self.count <= self.limit:
            print("FAIL: " + msg, flush=True)
        elif self.count == self.limit + 1:
            print("FAIL: (further failures not shown)", flush=True)


def walk(top):
    """Relative paths of all files and directories under top (symlinks reported as files)."""
    files, dirs = set(), set()
    for root, dnames, fnames in os.walk(top):
        for d in dnames:
            p = os.path.join(root, d)
            (files if os.path.islink(p) else dirs).add(os.path.relpath(p, top))
        for f in fnames:
            files.add(os.path.relpath(os.path.join(root, f), top))
    return files, dirs


def same_file_bytes(a, b):
    """(equal, first differing offset or None, size_a, size_b) reading both with plain read()."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while True:
            x = st.read_exact(fa, READ_CHUNK)
            y = st.read_exact(fb, READ_CHUNK)
            if x != y:
                n = min(len(x), len(y))
                diff = next((i for i in range(n) if x[i] != y[i]), n)
                return False, pos + diff
            if not x:
                return True, None
            pos += len(x)


def first_difference(got, want, dtype, shape):
    """Describe the first differing element of two equally long byte strings."""
    size = st.itemsize(dtype)
    bits = st.BITS[size]
    g = np.frombuffer(got, dtype=bits)
    w = np.frombuffer(want, dtype=bits)
    diff = np.nonzero(g != w)[0]
    i = int(diff[0])
    idx = tuple(int(x) for x in np.unravel_index(i, shape)) if shape else ()
    gv = st.as_float(np.frombuffer(got, dtype=st.STORAGE[dtype])[i:i + 1], dtype)[0]
    wv = st.as_float(np.frombuffer(want, dtype=st.STORAGE[dtype])[i:i + 1], dtype)[0]
    return ("first at element %d %s: view 0x%0*x (%r), expected 0x%0*x (%r); %d of %d elements differ"
            % (i, list(idx), 2 * size, int(g[i]), float(gv), 2 * size, int(w[i]), float(wv),
               len(diff), len(g)))


def check_headers(viewdir, names, rep):
    """(a): parse each weight file; returns {file: (header_len, [(name, dtype, shape, b, e)])}."""
    parsed = {}
    for fname in sorted(names):
        path = os.path.join(viewdir, fname)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                hlen, meta, tensors = st.parse_header(f, size, fname, strict=True)
        except (st.FormatError, OSError) as e:
            rep.fail("header: %s" % e)
            continue
        parsed[fname] = (hlen, tensors)
    return parsed


def check_index(viewdir, parsed, weight_names, rep):
    """(b): the index agrees with the files.  Returns (name -> file for tensors found once,
    names the index places in files whose header failed to parse)."""
    where = {}
    dup = set()
    for fname, (_, tensors) in parsed.items():
        for t in tensors:
            if t[0] in where:
                dup.add(t[0])
                rep.fail("tensor %s is in both %s and %s" % (t[0], where[t[0]], fname))
            else:
                where[t[0]] = fname
    unique = {k: v for k, v in where.items() if k not in dup}
    path = os.path.join(viewdir, INDEX)
    if not os.path.exists(path):
        rep.fail("%s is missing" % INDEX)
        return unique, set()
    try:
        with open(path, "rb") as f:
            idx = json.loads(f.read().decode("utf-8"))
        wm = idx["weight_map"]
        total = idx["metadata"]["total_size"]
        if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
            raise ValueError("weight_map must map tensor names to file names")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        rep.fail("%s: malformed: %s" % (INDEX, e))
        return unique, set()
    unreadable = {}
    for name, fname in sorted(wm.items()):
        if fname in weight_names and fname not in parsed:
            unreadable.setdefault(fname, set()).add(name)
        elif fname not in weight_names:
            rep.fail("%s: %s maps to %s, which is not a safetensors file in the view" % (INDEX, name, fname))
        elif name not in where:
            rep.fail("%s: %s maps to %s, but no file holds that tensor" % (INDEX, name, fname))
        elif where[name] != fname:
            rep.fail("%s: %s maps to %s, but the tensor is in %s" % (INDEX, name, fname, where[name]))
    for name in sorted(set(where) - set(wm)):
        rep.fail("%s: tensor %s (in %s) is not listed" % (INDEX, name, where[name]))
    for fname in sorted(weight_names - set(wm.values())):
        rep.fail("%s: file %s is not referenced" % (INDEX, fname))
    for fname, names in sorted(unreadable.items()):
        rep.fail("%s: %d tensors are in %s, whose header is broken (not checked)" % (INDEX, len(names), fname))
    if not unreadable:
        actual = sum(e - b for _, (_, ts) in parsed.items() for (_, _, _, b, e) in ts)
        if not isinstance(total, int) or isinstance(total, bool) or total != actual:
            rep.fail("%s: metadata.total_size is %r, tensors hold %d bytes" % (INDEX, total, actual))
    return unique, set().union(*unreadable.values()) if unreadable else set()


def check_tensors(viewdir, parsed, where, unreadable, expected, rep):
    """(c): names, dtypes, shapes and bytes against the reference."""
    for name in sorted(set(expected) - set(where) - unreadable):
        t = expected[name]
        rep.fail("tensor %s (%s %s) is missing from the view" % (name, t.dtype, list(t.shape)))
    for name in sorted(set(where) - set(expected)):
        rep.fail("tensor %s (in %s) is not in the reference" % (name, where[name]))
    checked = 0
    for fname, (hlen, tensors) in sorted(parsed.items()):
        with open(os.path.join(viewdir, fname), "rb") as f:
            f.seek(8 + hlen)
            for name, dt, shape, b, e in tensors:      # sorted by offset: one sequential pass
                got = st.read_exact(f, e - b)
                if len(got) != e - b:
                    rep.fail("%s: tensor %s: short read (%d of %d bytes)" % (fname, name, len(got), e - b))
                    break
                if name not in expected or where.get(name) != fname:
                    continue
                t = expected[name]
                if (dt, tuple(shape)) != (t.dtype, t.shape):
                    rep.fail("tensor %s: view has %s %s, expected %s %s"
                             % (name, dt, list(shape), t.dtype, list(t.shape)))
                    continue
                want = t.tobytes()
                if got != want:
                    rep.fail("tensor %s: bytes differ: %s" % (name, first_difference(got, want, dt, shape)))
                else:
                    checked += 1
            else:
                if f.read(1):
                    rep.fail("%s: read() returns data past the end of the last tensor" % fname)
    return checked


def view_family(srcdir, family):
    """The family the reference converts srcdir as (None when it has none)."""
    try:
        return ref.detect_family(ref.load_config(srcdir), family)
    except (ValueError, OSError):
        return None


def check_config(viewdir, srcdir, family, rep):
    """(d) for config.json: the source's keys in the source's order, every number as
    written, less quantization_config for a family the view dequantizes."""
    with open(os.path.join(srcdir, "config.json")) as f:
        src_text = f.read()
    with open(os.path.join(viewdir, "config.json")) as f:
        view_text = f.read()
    want = ref.expected_config_members(src_text, family)
    got = ref.config_members(view_text)
    if got != want:
        rep.fail("config.json: keys %s, expected %s (or a value differs)"
                 % ([k for k, _ in got], [k for k, _ in want]))


def check_other_files(viewdir, srcdir, view_files, view_dirs, rep, family="auto"):
    """(d): pass-through files identical, nothing extra; config.json as the family's
    view has it (check_config)."""
    src_files, src_dirs = walk(srcdir)
    passthrough = {p for p in src_files if not ref.is_weight_file(p)}
    for rel in sorted(passthrough):
        if rel not in view_files:
            rep.fail("file %s of the source is missing from the view" % rel)
            continue
        if rel == "config.json" and view_family(srcdir, family) in ref.DEQUANTIZING_FAMILIES:
            check_config(viewdir, srcdir, view_family(srcdir, family), rep)
            continue
        same, off = same_file_bytes(os.path.join(srcdir, rel), os.path.join(viewdir, rel))
        if not same:
            rep.fail("file %s differs from the source at byte %d" % (rel, off))
    allowed = passthrough | {p for p in view_files if ref.is_weight_file(p)}
    for rel in sorted(view_files - allowed):
        rep.fail("view has an extra file %s" % rel)
    for rel in sorted(view_dirs ^ src_dirs):
        rep.fail("directory %s is only in the %s" % (rel, "view" if rel in view_dirs else "source"))
    return len(passthrough)


def check(viewdir, srcdir, dtype="auto", limit=200, ep=None, family="auto", direction="from_hf"):
    """Run every check; returns the number of failures."""
    rep = Report(limit)
    try:
        expected = ref.expected_tensors(srcdir, dtype, ep, family, direction)
    except (RuntimeError, ValueError, st.FormatError, OSError) as e:
        rep.fail("reference: cannot convert %s: %s" % (srcdir, e))
        return rep.count
    view_files, view_dirs = walk(viewdir)
    weight_names = {p for p in view_files if "/" not in p and p.endswith(".safetensors")}
    parsed = check_headers(viewdir, weight_names, rep)
    where, unreadable = check_index(viewdir, parsed, weight_names, rep)
    checked = check_tensors(viewdir, parsed, where, unreadable, expected, rep)
    others = check_other_files(viewdir, srcdir, view_files, view_dirs, rep, family)
    status = "PASS" if rep.count == 0 else "FAIL (%d failures)" % rep.count
    print("check_view: %s: %d/%d tensors identical in %d safetensors file(s), %d pass-through file(s) checked"
          % (status, checked, len(expected), len(weight_names), others))
    return rep.count


def main(argv):
    p = argparse.ArgumentParser(description="Verify a converted view directory against the reference converter.")
    p.add_argument("viewdir")
    p.add_argument("srcdir")
    p.add_argument("--max-report", type=int, default=200, help="failure lines to print (default 200)")
    ref.add_conversion_args(p)
    a = p.parse_args(argv)
    ep = ref.ep_from_args(p, a)
    fails = check(a.viewdir, a.srcdir, a.dtype, a.max_report, ep, a.family, a.direction)
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
