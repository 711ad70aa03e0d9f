#!/usr/bin/python3
"""read_edges.py VIEW EXPECTED: read every weight file of VIEW across its
edges — the end of the header into the first tensor, every tensor boundary
from a few bytes before it (odd offsets, odd lengths, several tensors in one
read), and past the end of the file — and compare each read with the same
range of the file of the same name in EXPECTED.  Prints the number of reads;
exits non-zero on the first mismatch."""
import json
import os
import struct
import sys


def main():
    view, expected = sys.argv[1], sys.argv[2]
    reads = 0
    for name in sorted(os.listdir(expected)):
        if not name.endswith(".safetensors"):
            continue
        vfd = os.open(os.path.join(view, name), os.O_RDONLY)
        efd = os.open(os.path.join(expected, name), os.O_RDONLY)
        try:
            size = os.fstat(efd).st_size
            (n,) = struct.unpack("<Q", os.pread(efd, 8, 0))
            header = json.loads(os.pread(efd, n, 8))
            header.pop("__metadata__", None)
            starts = sorted({8 + n + t["data_offsets"][0] for t in header.values()})
            ranges = [(8 + n - 3, 70001), (size - 5, 100), (size - 300001, 300001), (size, 10)]
            for s in starts:
                ranges += [(s - 1, 3), (s - 7, 65537), (s - 4097, 1 << 20), (s + 3, 300001)]
            for off, length in ranges:
                off = max(0, off)
                got = os.pread(vfd, length, off)
                if got != os.pread(efd, length, off):
                    sys.exit("%s at %d (+%d): view differs from expected" % (name, off, length))
                reads += 1
        finally:
            os.close(vfd)
            os.close(efd)
    print("%d reads across header, tensor and file edges" % reads)


main()
