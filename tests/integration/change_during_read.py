#!/usr/bin/python3
"""change_during_read.py VIEWFILE EXPECTED SOURCE [--stats FILE] [--at FRACTION]:
read VIEWFILE front to back in 256 KiB pieces, comparing each piece with the
same range of EXPECTED.  Once FRACTION (default 0.3) of it is read, rewrite
the tensor data of SOURCE in place (same size, every byte inverted, so its
mtime changes and any byte taken from it afterwards differs), then read on.
Passes when no read ever returned bytes that differ from EXPECTED and every
read after the change failed with EIO.  With --stats (the mount's statistics
file) it also requires that the read-ahead had converted chunks by the time
of the change, so that the change met it running."""
import argparse
import errno
import json
import os
import struct
import sys

STEP = 256 << 10


def invert_tensor_data(path):
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        data = f.read()
        f.seek(8 + n)
        f.write(bytes(b ^ 0xFF for b in data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("view")
    ap.add_argument("expected")
    ap.add_argument("source")
    ap.add_argument("--stats")
    ap.add_argument("--at", type=float, default=0.3)
    a = ap.parse_args()
    want = open(a.expected, "rb").read()
    change_at = int(len(want) * a.at) // STEP * STEP
    fd = os.open(a.view, os.O_RDONLY)
    before = after = 0
    for off in range(0, len(want), STEP):
        if off == change_at:
            if a.stats:
                fills = json.load(open(a.stats))["cache"]["ahead_fills"]
                if not fills:
                    sys.exit("the read-ahead had converted nothing when the source changed")
            invert_tensor_data(a.source)
        try:
            got = os.pread(fd, STEP, off)
        except OSError as e:
            if e.errno != errno.EIO or off < change_at:
                sys.exit("read at %d failed: %s" % (off, e))
            after += 1
            continue
        if got != want[off:off + STEP]:
            sys.exit("read at %d (+%d) returned bytes that differ from the view before the change"
                     % (off, len(got)))
        if off >= change_at:
            sys.exit("read at %d after the change succeeded (with the old bytes); expected EIO" % off)
        before += 1
    os.close(fd)
    if not after:
        sys.exit("the change came after the last read")
    print("%d reads equal before the change, all %d after it failed with EIO" % (before, after))


main()
