#!/usr/bin/python3
"""mmap_loader.py [--seed S] FILE...: load safetensors files the way
safetensors.safe_open and most training loaders do: map each file, then copy
every tensor out of the mapping into an array of its own, in a random order
over all files.  Prints {"s": seconds, "bytes": n, "tensors": n} as JSON; the
time runs from the first mmap to the last copy (no interpreter start-up).

Used by `make bench` (bench/run.py) on a fresh sdafs mount, where each page
fault of the mapping becomes a FUSE read, and on a materialized copy of the
same view whose pages are cached."""
import argparse
import json
import mmap
import os
import random
import struct
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    t0 = time.perf_counter()
    maps, work = [], []
    for path in a.files:
        fd = os.open(path, os.O_RDONLY)
        try:
            m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        maps.append(m)
        (n,) = struct.unpack("<Q", m[:8])
        header = json.loads(m[8:8 + n])
        header.pop("__metadata__", None)
        for t in header.values():
            b, e = t["data_offsets"]
            work.append((m, 8 + n + b, e - b))
    random.Random(a.seed).shuffle(work)
    total = 0
    for m, off, length in work:
        out = np.frombuffer(m, dtype=np.uint8, count=length, offset=off).copy()
        total += out.nbytes
        del out
    secs = time.perf_counter() - t0
    for m in maps:
        m.close()
    print(json.dumps({"s": secs, "bytes": total, "tensors": len(work)}))


if __name__ == "__main__":
    main()
