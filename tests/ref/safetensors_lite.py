#!/usr/bin/python3
"""Minimal safetensors reader/writer and PyTorch-exact float casts (numpy only).

Shared by the fixture generator, the reference converter and the view checker.
It deliberately knows nothing about sdafs: it is the independent Python side of
the test suite.

Format: u64 little-endian header length N, then N bytes of JSON
({"__metadata__": {...}, name: {"dtype", "shape", "data_offsets": [b, e]}}),
space-padded to a multiple of 8, then the data section; offsets are relative to
the start of the data section.

bf16 has no numpy dtype: it is carried as uint16 bit patterns.  The casts follow
PyTorch's c10 scalar rules (c10/util/BFloat16.h, c10/util/Half.h):
  f32 -> bf16: NaN -> 0x7FC0, else (u + 0x7FFF + ((u >> 16) & 1)) >> 16
  f32 -> f16 : round to nearest even (numpy), any NaN -> sign | 0x7E00
  bf16 -> f32: 16-bit shift (exact, payload kept)
  f16 -> f32 : exact, NaN payload kept (bit manipulation, not a hardware cast)
  same dtype : identity (torch's .to() is a no-op; NaN payloads survive)
"""

import json
import os
import struct

import numpy as np

MAX_HEADER = 100 * 1000 * 1000

# safetensors dtype name -> numpy storage dtype (bit container for BF16/F8)
STORAGE = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "F8_E4M3": np.dtype("<u1"),
    "F8_E5M2": np.dtype("<u1"),
    "F8_E8M0": np.dtype("<u1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
FLOATING = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0"}
# unsigned integer view of each dtype's bits, used to compare bit-exactly
BITS = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}

# safetensors' own on-disk order inside a file: dtype descending, then name.
DTYPE_RANK = {d: i for i, d in enumerate(
    ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
     "BF16", "I32", "U32", "F32", "F64", "I64", "U64"])}

TORCH_DTYPE_NAMES = {
    "bfloat16": "BF16", "bf16": "BF16",
    "float16": "F16", "half": "F16", "fp16": "F16",
    "float32": "F32", "float": "F32", "fp32": "F32",
}


class FormatError(Exception):
    """A safetensors file or index that does not follow the format."""


def itemsize(dtype):
    return STORAGE[dtype].itemsize


def numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def nbytes(dtype, shape):
    return numel(shape) * itemsize(dtype)


# ---------------------------------------------------------------- casts

def f32_bits_to_bf16(u):
    """uint32 bit patterns of f32 -> uint16 bf16 bits (c10 round-to-nearest-even)."""
    u = np.asarray(u, dtype=np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    with np.errstate(over="ignore"):
        r = ((u + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    r[nan] = 0x7FC0
    return r


def bf16_to_f32_bits(b):
    return np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)


def f32_bits_to_f16_bits(u):
    u = np.asarray(u, dtype=np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        h = u.view(np.float32).astype(np.float16).view(np.uint16).copy()
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    h[nan] = ((u[nan] >> np.uint32(16)) & np.uint32(0x8000)).astype(np.uint16) | np.uint16(0x7E00)
    return h


def f16_bits_to_f32_bits(h):
    h = np.asarray(h, dtype=np.uint16)
    with np.errstate(invalid="ignore"):
        u = h.view(np.float16).astype(np.float32).view(np.uint32).copy()
    nan = (h & np.uint16(0x7FFF)) > np.uint16(0x7C00)
    hn = h[nan].astype(np.uint32)
    u[nan] = ((hn & np.uint32(0x8000)) << np.uint32(16)) | np.uint32(0x7F800000) | \
        ((hn & np.uint32(0x03FF)) << np.uint32(13))
    return u


def to_f32_bits(arr, dtype):
    """Storage array of a floating dtype -> uint32 f32 bit patterns (exact where torch is)."""
    if dtype == "F32":
        return np.ascontiguousarray(arr).view(np.uint32)
    if dtype == "BF16":
        return bf16_to_f32_bits(arr)
    if dtype == "F16":
        return f16_bits_to_f32_bits(np.ascontiguousarray(arr).view(np.uint16))
    if dtype == "F64":
        # torch: double -> float rounds to nearest even; numpy does the same.
        with np.errstate(over="ignore", invalid="ignore"):
            return np.ascontiguousarray(arr).astype(np.float32).view(np.uint32)
    raise NotImplementedError("cast from %s is not supported by the reference" % dtype)


def cast(arr, src, dst):
    """Cast a storage array from dtype src to dtype dst with PyTorch's scalar semantics."""
    if src == dst:
        return arr
    u = to_f32_bits(arr, src)
    if dst == "F32":
        out = u.view(np.float32)
    elif dst == "BF16":
        out = f32_bits_to_bf16(u)
    elif dst == "F16":
        out = f32_bits_to_f16_bits(u).view(np.float16)
    elif dst == "F64":
        out = u.view(np.float32).astype(np.float64)
    else:
        raise NotImplementedError("cast to %s is not supported by the reference" % dst)
    return out.reshape(np.shape(arr))


def as_float(arr, dtype):
    """Readable float64 values of a storage array (for messages)."""
    if dtype in ("BF16", "F16", "F32", "F64"):
        return to_f32_bits(arr, dtype).view(np.float32).astype(np.float64) if dtype != "F64" \
            else np.asarray(arr, dtype=np.float64)
    return np.asarray(arr).astype(np.float64)


# ---------------------------------------------------------------- reading

def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise FormatError("duplicate JSON key %r" % k)
        d[k] = v
    return d


def read_exact(f, n):
    """Read exactly n bytes with plain read() calls (works on FUSE, pipes, short reads)."""
    chunks = []
    left = n
    while left > 0:
        b = f.read(left)
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def parse_header(f, file_size, name="<file>", strict=True):
    """Parse and validate a safetensors header from an open binary file.

    Returns (header_len, metadata, tensors) where tensors is a list of
    (name, dtype, shape, begin, end) sorted by begin (absolute offsets = 8 +
    header_len + begin).  strict additionally requires header_len % 8 == 0 and
    space padding.  Raises FormatError with a message naming the problem.
    """
    raw = read_exact(f, 8)
    if len(raw) != 8:
        raise FormatError("%s: shorter than 8 bytes" % name)
    (hlen,) = struct.unpack("<Q", raw)
    if hlen > MAX_HEADER:
        raise FormatError("%s: header length %d exceeds %d" % (name, hlen, MAX_HEADER))
    if 8 + hlen > file_size:
        raise FormatError("%s: header length %d runs past the file end (%d bytes)" % (name, hlen, file_size))
    hb = read_exact(f, hlen)
    if len(hb) != hlen:
        raise FormatError("%s: short read in header (%d of %d bytes)" % (name, len(hb), hlen))
    if strict and hlen % 8 != 0:
        raise FormatError("%s: header length %d is not a multiple of 8" % (name, hlen))
    try:
        text = hb.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError("%s: header is not UTF-8: %s" % (name, e))
    body = text.rstrip(" ")
    if strict and not body.endswith("}"):
        raise FormatError("%s: header JSON is not followed by space padding only" % name)
    try:
        hdr = json.loads(body, object_pairs_hook=_no_duplicates)
    except (ValueError, FormatError) as e:
        raise FormatError("%s: header is not valid JSON: %s" % (name, e))
    if not isinstance(hdr, dict):
        raise FormatError("%s: header is not a JSON object" % name)
    meta = hdr.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise FormatError("%s: __metadata__ must map strings to strings" % name)
    tensors = []
    for tname, info in hdr.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise FormatError("%s: tensor %r: entry must have exactly dtype, shape, data_offsets" % (name, tname))
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in STORAGE:
            raise FormatError("%s: tensor %r: unknown dtype %r" % (name, tname, dt))
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise FormatError("%s: tensor %r: bad shape %r" % (name, tname, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or
                not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offs)):
            raise FormatError("%s: tensor %r: bad data_offsets %r" % (name, tname, offs))
        b, e = offs
        if e < b or e - b != nbytes(dt, shape):
            raise FormatError("%s: tensor %r: data_offsets %r hold %d bytes, dtype %s shape %r needs %d"
                              % (name, tname, offs, e - b, dt, shape, nbytes(dt, shape)))
        tensors.append((tname, dt, tuple(shape), b, e))
    tensors.sort(key=lambda t: (t[3], t[4]))
    pos = 0
    for tname, dt, shape, b, e in tensors:
        if b != pos:
            raise FormatError("%s: tensor %r starts at %d, expected %d (offsets must be contiguous)"
                              % (name, tname, b, pos))
        pos = e
    if 8 + hlen + pos != file_size:
        raise FormatError("%s: data section is %d bytes but the file holds %d after the header"
                          % (name, pos, file_size - 8 - hlen))
    return hlen, meta, tensors


class SafetensorsFile:
    """An opened (header-parsed) safetensors file; tensors are read on demand."""

    def __init__(self, path, strict=False):
        self.path = path
        self.size = os.path.getsize(path)
        with open(path, "rb") as f:
            self.header_len, self.metadata, tl = parse_header(f, self.size, path, strict=strict)
        self.data_start = 8 + self.header_len
        self.tensors = {t[0]: t[1:] for t in tl}   # name -> (dtype, shape, begin, end)
        self.order = [t[0] for t in tl]

    def array(self, name, mmap=True):
        """The tensor as a numpy storage array (memory-mapped unless mmap=False)."""
        dt, shape, b, e = self.tensors[name]
        if e == b:
            return np.zeros(shape, dtype=STORAGE[dt])
        if mmap:
            return np.memmap(self.path, dtype=STORAGE[dt], mode="r", offset=self.data_start + b, shape=shape)
        with open(self.path, "rb") as f:
            f.seek(self.data_start + b)
            return np.frombuffer(read_exact(f, e - b), dtype=STORAGE[dt]).reshape(shape)


# ---------------------------------------------------------------- writing

def build_header(entries, metadata=None):
    """entries: list of (name, dtype, shape) in file order -> padded header bytes."""
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    pos = 0
    for name, dt, shape in entries:
        n = nbytes(dt, shape)
        hdr[name] = {"dtype": dt, "shape": [int(d) for d in shape], "data_offsets": [pos, pos + n]}
        pos += n
    hb = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb, pos


def write_file(path, entries, data_fn, metadata={"format": "pt"}):
    """Stream a safetensors file.

    entries: list of (name, dtype, shape) in file order.  data_fn(name) yields
    the tensor's bytes (bytes-like or numpy arrays) in order; the total must be
    the tensor's byte size.  Returns the data-section size.
    """
    head, total = build_header(entries, metadata)
    with open(path, "wb") as f:
        f.write(head)
        for name, dt, shape in entries:
            want = nbytes(dt, shape)
            got = 0
            for piece in data_fn(name):
                mv = memoryview(np.ascontiguousarray(piece)).cast("B") if isinstance(piece, np.ndarray) \
                    else memoryview(piece).cast("B")
                f.write(mv)
                got += len(mv)
            if got != want:
                raise ValueError("tensor %s: wrote %d bytes, expected %d" % (name, got, want))
    return total


def file_order(entries):
    """safetensors' own order within a file: dtype rank descending, then name."""
    return sorted(entries, key=lambda e: (-DTYPE_RANK[e[1]], e[0]))


def write_index(path, weight_map, total_size):
    with open(path, "w") as f:
        json.dump({"metadata": {"total_size": int(total_size)},
                   "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}, f, indent=2)
        f.write("\n")


def shard_names(n):
    return ["model-%05d-of-%05d.safetensors" % (i + 1, n) for i in range(n)]


def split_shards(sizes, n):
    """Split an ordered list of byte sizes into n contiguous non-empty groups of
    roughly equal size; returns the group index of each item."""
    if n < 1 or n > len(sizes):
        raise ValueError("cannot split %d tensors into %d shards" % (len(sizes), n))
    total = sum(sizes)
    out = []
    cum = 0
    g = 0
    count = 0
    for i, s in enumerate(sizes):
        later_groups = n - 1 - g
        if count > 0 and later_groups > 0 and (cum >= total * (g + 1) / n or len(sizes) - i <= later_groups):
            g += 1
            count = 0
        out.append(g)
        count += 1
        cum += s
    assert g == n - 1, "shard split failed"
    return out
