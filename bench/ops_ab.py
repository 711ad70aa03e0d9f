#!/usr/bin/python3
"""ops_ab.py -- before/after of the recipe operations (bench/ops.c) in one run.

Builds build/bench/ops of another revision (BASE, default the merge base
with main) in a temporary git worktree, then runs it and this tree's
build/bench/ops alternately, ROUNDS times each (the order swaps every
round, so drift of a shared machine hits both alike), and prints per
operation the median GB/s of each and their ratio.  "after" is the path the
new binary uses by default (the widest the CPU has); every path and the
memcpy ceiling are shown too, from the same runs.

    bench/ops_ab.py [--base REV] [--rounds N] [--reps N] [--json FILE]

Standard library only; run from the repository root after `make
build/bench/ops`.  The temporary worktree is removed at the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_base(rev, where):
    run(["git", "-C", REPO, "worktree", "add", "--detach", "--force", where, rev],
        stdout=subprocess.DEVNULL)
    run(["make", "-C", where, "-j2", "NVCC=", "build/bench/ops"], stdout=subprocess.DEVNULL)
    return os.path.join(where, "build", "bench", "ops")


def ops_run(exe, reps, out):
    run([exe, "--reps", str(reps), "--json", out], stdout=subprocess.DEVNULL)
    with open(out) as f:
        return {o["op"]: o for o in json.load(f)["ops"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default=None, help="revision to compare with (default: merge base with main)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    base = a.base or subprocess.run(["git", "-C", REPO, "merge-base", "HEAD", "main"], check=True,
                                    stdout=subprocess.PIPE, text=True).stdout.strip()
    new = os.path.join(REPO, "build", "bench", "ops")
    if not os.access(new, os.X_OK):
        sys.exit("ops_ab: build this tree's build/bench/ops first (make build/bench/ops)")
    tmp = tempfile.mkdtemp(prefix="sdafs-ops-ab.")
    where = os.path.join(tmp, "base")
    try:
        old = build_base(base, where)
        samples = {"before": [], "after": []}
        for r in range(a.rounds):
            order = [("before", old), ("after", new)]
            for name, exe in order if r % 2 == 0 else order[::-1]:
                print("round %d: %s" % (r + 1, name), file=sys.stderr)
                samples[name].append(ops_run(exe, a.reps, os.path.join(tmp, "%s-%d.json" % (name, r))))
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", where],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", tmp])

    med = statistics.median
    paths = ["scalar", "sse2", "avx2", "avx512"]
    print("recipe operations, GB/s of output, one thread: median over %d alternating runs of each "
          "binary (base %s)" % (a.rounds, base[:12]))
    print("%-20s %7s %7s %6s | %7s %7s %7s %7s %7s" % ("op", "before", "after", "x", "memcpy", *paths))
    result = []
    for op in samples["after"][0]:
        after = med(s[op]["cpu_gb_s"] for s in samples["after"])
        before = [s[op]["cpu_gb_s"] for s in samples["before"] if op in s]
        before = med(before) if before else None
        row = {"op": op, "after_gb_s": after, "before_gb_s": before,
               "memcpy_gb_s": med(s[op]["memcpy_gb_s"] for s in samples["after"]),
               "paths": {q: med(s[op]["paths"][q] for s in samples["after"])
                         for q in paths if q in samples["after"][0][op]["paths"]}}
        result.append(row)
        cols = ["%7.2f" % row["paths"][q] if q in row["paths"] else "%7s" % "-" for q in paths]
        print("%-20s %7s %7.2f %6s | %7.2f %s" % (
            op, "%.2f" % before if before else "-", after,
            "%.2f" % (after / before) if before else "-", row["memcpy_gb_s"], " ".join(cols)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"base": base, "rounds": a.rounds, "reps": a.reps, "ops": result,
                       "samples": samples}, f, indent=1)


if __name__ == "__main__":
    main()
