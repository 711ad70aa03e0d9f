#!/usr/bin/python3
"""read_tensor.py VIEWDIR NAME [--row K]: read one tensor of a view (or only
row K of its dim 0, e.g. one expert of a grouped tensor) through plain file
reads, and print its dtype, shape and byte count.  Used by the laziness tests:
reading a header never converts anything, so the statistics afterwards count
exactly the chunks this read touched."""
import json
import os
import struct
import sys


def main():
    view, name = sys.argv[1], sys.argv[2]
    row = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--row" else None
    index = json.load(open(os.path.join(view, "model.safetensors.index.json")))
    path = os.path.join(view, index["weight_map"][name])
    # os.pread: exactly the bytes asked for (a buffered file over-reads).
    fd = os.open(path, os.O_RDONLY)
    try:
        (n,) = struct.unpack("<Q", os.pread(fd, 8, 0))
        header = json.loads(os.pread(fd, n, 8))
        t = header[name]
        b, e = t["data_offsets"]
        start, length = 8 + n + b, e - b
        if row is not None:
            per_row = length // t["shape"][0]
            start, length = start + row * per_row, per_row
        got = b""
        while len(got) < length:
            piece = os.pread(fd, length - len(got), start + len(got))
            if not piece:
                break
            got += piece
    finally:
        os.close(fd)
    if len(got) != length:
        sys.exit("short read: %d of %d bytes" % (len(got), length))
    print(t["dtype"], t["shape"], length)


main()
