#!/usr/bin/python3
"""stress_read.py VIEW EXPECTED [--threads N] [--reads N] [--seed S] [--mmap]
[--sequential N]: many threads read random ranges of every file of VIEW at
once and compare each byte with the same range of the file of the same name
in EXPECTED (a directory holding the expected view).  With --mmap, every
other thread reads through mmap, as safetensors and vLLM do, mixed with the
pread threads.  With --sequential N, N more threads read every file front to
back meanwhile, in pieces of random size (the streams the read-ahead
follows).  Exits non-zero on the first mismatch; prints how many bytes were
verified."""
import argparse
import mmap
import os
import random
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("view")
    ap.add_argument("expected")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mmap", action="store_true")
    ap.add_argument("--sequential", type=int, default=0)
    a = ap.parse_args()
    names = sorted(os.listdir(a.expected))
    sizes = {n: os.path.getsize(os.path.join(a.expected, n)) for n in names}
    verified = [0] * (a.threads + a.sequential)
    failures = []

    def reader(k):
        rng = random.Random(a.seed * 1000 + k)
        for n in rng.sample(names, len(names)):
            with open(os.path.join(a.view, n), "rb", buffering=0) as f, \
                    open(os.path.join(a.expected, n), "rb") as e:
                off = 0
                while True:
                    got = f.read(rng.choice([4096, 65536, 131072, 1 << 20, rng.randrange(1, 1 << 20)]))
                    if got != e.read(len(got)):
                        failures.append("%s at %d (+%d): view differs from expected (sequential)"
                                        % (n, off, len(got)))
                        return
                    if not got:
                        break
                    off += len(got)
                    verified[k] += len(got)

    def worker(k):
        rng = random.Random(a.seed * 1000 + k)
        fds = {n: os.open(os.path.join(a.view, n), os.O_RDONLY) for n in names}
        exp = {n: os.open(os.path.join(a.expected, n), os.O_RDONLY) for n in names}
        maps = {}
        if a.mmap and k % 2 == 1:
            maps = {n: mmap.mmap(fds[n], 0, prot=mmap.PROT_READ) for n in names if sizes[n]}
        try:
            for _ in range(a.reads):
                n = rng.choice(names)
                size = sizes[n]
                off = rng.randrange(size) if size else 0
                length = rng.choice([1, 7, 4096, 65536, 1 << 20, rng.randrange(1, 300000)])
                if n in maps:
                    got = maps[n][off:off + length]
                else:
                    got = os.pread(fds[n], length, off)
                want = os.pread(exp[n], length, off)
                if got != want:
                    failures.append("%s at %d (+%d): view differs from expected" % (n, off, length))
                    return
                verified[k] += len(got)
        finally:
            for m in maps.values():
                m.close()
            for fd in list(fds.values()) + list(exp.values()):
                os.close(fd)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(a.threads)]
    threads += [threading.Thread(target=reader, args=(a.threads + k,)) for k in range(a.sequential)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("verified %d bytes in %d random reads%s%s" % (
        sum(verified), a.threads * a.reads, " (half through mmap)" if a.mmap else "",
        ", %d sequential readers" % a.sequential if a.sequential else ""))


main()
