#!/usr/bin/python3
"""run.py — the sdafs benchmark (`make bench`).  Standard library only.

    bench/run.py [--build DIR] [--gb G] [--rounds N] [--tensors N] [--seed S]

Environment: BENCH_GB (checkpoint size in GiB, default 2), BENCH_ROUNDS
(default 5), BENCH_TENSORS (random tensors, default 50), BENCH_SEED (1),
BENCH_SETTLE (seconds of pause after each measurement, default 1).

Generates (once, cached under DIR/bench/) a Nemotron-H MoE checkpoint of about
BENCH_GB GiB and a 1,000-shard / 100,000-tensor checkpoint, then runs rounds
in which every variant is measured once, in an order rotated from round to
round, and reports medians: throughput ratios to a raw `cat` of the source
(warm page cache) and to a minimal FUSE passthrough (bench/passthrough.c)
with sdafs's FUSE settings.  Then the per-operation section: DIR/bench/ops
(bench/ops.c) times each recipe operation in memory, per backend.  Writes
DIR/bench/results.json.  bench/README.md says what every number means.

Every daemon runs in the foreground (-f) as a child of this script, on its
own temporary mount point; every mount is unmounted with fusermount3 -u in a
finally block, on exit and on SIGINT/SIGTERM/SIGHUP.
"""

import argparse
import atexit
import json
import mmap
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
GEN = os.path.join(REPO, "tests", "fixtures", "gen_checkpoint.py")
GEN_MANY = os.path.join(REPO, "bench", "gen_many_shards.py")
MiB = 1 << 20
GiB = 1 << 30

TARGETS = {
    "sdafs_cold_cat_vs_floor": 0.85,       # >= , ratio to the floor of the same kind
    "sdafs_cold_direct_vs_floor": 0.85,
    "sdafs_warm_vs_raw": 0.80,             # >=
    "sdafs_materialized_vs_raw": 0.90,     # >= , -o materialize_dir copies
    "random_slowdown": 2.0,                # <= , view time / source pread time
    "many_mount_ls_s": 1.0,                # <
    "rss_over_cache_mib": 64,              # VmHWM <= cache + 64 MiB
}


def cpu_snapshot():
    """(busy CPU seconds of the whole machine, CPU seconds of this script and
    its waited-for children, wall time): the difference tells how much CPU
    other work took during the rounds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / hz
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------- mounts

class Mount:
    """One daemon in the foreground on its own temporary mount point."""
    active = []

    def __init__(self, argv, kind, logdir):
        self.kind = kind
        self.mnt = tempfile.mkdtemp(prefix="sdafs-bench-%s-" % kind, dir="/tmp")
        self.argv = argv + [self.mnt]
        self.logpath = os.path.join(logdir, "%s.log" % kind)
        self.proc = None

    def start(self, poll=0.002, timeout=120):
        """Start the daemon and return once the mount answers."""
        parent_dev = os.stat(os.path.dirname(self.mnt)).st_dev
        logf = open(self.logpath, "a")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        Mount.active.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if os.stat(self.mnt).st_dev != parent_dev:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s before mounting; see %s"
                                   % (self.argv[0], self.proc.returncode, self.logpath))
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not mount within %d s" % (self.argv[0], timeout))
            time.sleep(poll)

    def pid(self):
        return self.proc.pid

    def vm_hwm(self):
        """Peak resident set (VmHWM) of the daemon in bytes."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def read_ahead_kb(self):
        """The mount's bdi read_ahead_kb (1024 when the daemon raised it)."""
        real = os.path.realpath(self.mnt)
        with open("/proc/self/mountinfo") as f:
            for line in f:
                p = line.split()
                if p[4] == real:
                    try:
                        with open("/sys/class/bdi/%s/read_ahead_kb" % p[2]) as g:
                            return int(g.read())
                    except OSError:
                        return None
        return None

    def stop(self):
        if self.proc is None:
            return
        for attempt in range(50):
            r = subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.PIPE)
            if r.returncode == 0 or self.proc.poll() is not None:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()            # only the daemon this script started
            self.proc.wait()
        if self in Mount.active:
            Mount.active.remove(self)
        self.proc = None
        try:
            os.rmdir(self.mnt)
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def cleanup_all():
    for m in list(Mount.active):
        try:
            m.stop()
        except Exception as e:          # keep unmounting the others
            log("cleanup of %s: %s" % (m.mnt, e))


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------- checkpoints

def moe_layout(gb):
    """Generator options and the expected size for a checkpoint of about gb GiB.

    Nemotron-H MoE: hidden 2048, 64 routed experts of width 1024 (each MoE
    block ~528 MiB, of which 512 MiB experts to merge), Mamba blocks between,
    an attention block every third MoE block; the vocabulary fills up the rest."""
    H, E, I = 2048, 64, 1024
    nh, hd, ng, ss, K = H // 32, 32, 2, 16, 4
    conv = nh * hd + 2 * ng * ss
    b = 2
    m_bytes = b * (H + (2 * nh * hd + 2 * ng * ss + nh) * H + conv * K + conv + 2 * nh
                   + nh * hd + H * nh * hd) + 4 * nh
    a_bytes = b * (H + 2 * (2048 * H) + 2 * (512 * H))
    e_bytes = b * (H + E * H + 2 * E * I * H + 2 * (2 * I) * H) + 4 * E
    target = gb * GiB
    n_e = max(1, int(round((target - 256 * MiB) / (e_bytes + m_bytes))))
    pattern = "".join("M" + ("*" if i % 3 == 1 else "") + "E" for i in range(n_e))
    body = pattern.count("M") * m_bytes + pattern.count("*") * a_bytes + n_e * e_bytes + b * H
    vocab = max(1024, int((target - body) // (2 * b * H)) // 256 * 256)
    shards = max(2, int(round(gb * 4)))
    args = ["--hidden", str(H), "--experts", str(E), "--moe-inter", str(I), "--pattern", pattern,
            "--vocab", str(vocab), "--shards", str(shards), "--seed", "0"]
    return args, body + 2 * b * H * vocab


def cached(dirpath, argv, gen_desc):
    """Run argv (which writes dirpath.tmp) unless dirpath exists with the same stamp."""
    stamp = dirpath + ".stamp"
    want = json.dumps(argv[1:])
    if os.path.isdir(dirpath) and os.path.exists(stamp) and open(stamp).read() == want:
        return False
    log("generating %s (%s); cached for later runs" % (dirpath, gen_desc))
    shutil.rmtree(dirpath, ignore_errors=True)
    shutil.rmtree(dirpath + ".tmp", ignore_errors=True)
    t = time.monotonic()
    subprocess.run(argv, check=True, stdout=sys.stderr)
    os.rename(dirpath + ".tmp", dirpath)
    with open(stamp, "w") as f:
        f.write(want)
    log("generated in %.1f s" % (time.monotonic() - t))
    return True


def shard_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".safetensors"))


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return 8 + n, h


def source_tensors(src):
    """name -> (path, absolute offset, bytes) for every source tensor."""
    out = {}
    for path in shard_files(src):
        base, h = read_header(path)
        for name, t in h.items():
            b, e = t["data_offsets"]
            out[name] = (path, base + b, e - b)
    return out


# --------------------------------------------------------------- measurements

def timed(argv):
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def cat(files):
    return timed(["cat"] + files)


DD = 'for f; do dd if="$f" of=/dev/null bs=4M iflag=direct status=none || exit 1; done'


def dd_direct(files):
    return timed(["bash", "-c", DD, "dd"] + files)


def in_mount(mnt, files):
    return [os.path.join(mnt, os.path.basename(f)) for f in files]


def stats_of(mnt):
    try:
        with open(os.path.join(mnt, ".sdafs-stats")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def preadv_full(fd, mv, n, off):
    got = 0
    while got < n:
        r = os.preadv(fd, [mv[got:n]], off + got)
        if r <= 0:
            raise OSError("short read at %d (%d of %d bytes)" % (off, got, n))
        got += r
    return got


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build)
        self.dir = os.path.join(self.build, "bench")
        self.logdir = os.path.join(self.dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        for f in os.listdir(self.logdir):          # logs of this run only
            if f.endswith(".log"):
                os.unlink(os.path.join(self.logdir, f))
        self.sdafs = os.path.join(self.build, "sdafs")
        self.passthrough = os.path.join(self.build, "bench", "passthrough")
        self.ops = os.path.join(self.build, "bench", "ops")
        self.samples = {}           # variant -> list per round of dicts
        self.info = {}

    # ---- setup
    def prepare(self):
        for exe in (self.sdafs, self.passthrough, self.ops):
            if not os.access(exe, os.X_OK):
                sys.exit("bench: %s missing; run `make bench`" % exe)
        if not shutil.which("fusermount3"):
            sys.exit("bench: fusermount3 not found (apt-get install fuse3)")
        gen_args, expect = moe_layout(self.a.gb)
        tag = ("%g" % self.a.gb).replace(".", "p")
        self.moe = os.path.join(self.dir, "moe-%sg" % tag)
        cached(self.moe, [PY, GEN, self.moe + ".tmp"] + gen_args,
               "Nemotron-H MoE, about %.2f GiB" % (expect / GiB))
        self.gen_args = gen_args
        self.many = os.path.join(self.dir, "many-1000x100000")
        cached(self.many, [PY, GEN_MANY, self.many + ".tmp", "--shards", "1000", "--tensors", "100000"],
               "1,000 shards, 100,000 tensors")
        self.src_files = shard_files(self.moe)
        self.src_bytes = sum(os.path.getsize(f) for f in self.src_files)
        # the native view's plan, without mounting
        r = subprocess.run([self.sdafs, "--inspect", "--json", "-o", "view=native", self.moe],
                           stdout=subprocess.PIPE, check=True)
        plan = json.loads(r.stdout)
        weights = [f for f in plan["files"] if f["kind"] == "weights"]
        self.view_names = [f["name"] for f in weights]
        self.view_bytes = sum(f["size"] for f in weights)
        self.pick_tensors(weights)
        self.materialize()
        many_plan = json.loads(subprocess.run(
            [self.sdafs, "--inspect", "--json", "-o", "view=native", self.many],
            stdout=subprocess.PIPE, check=True).stdout)
        self.many_view_files = len(many_plan["files"])
        self.info.update({
            "checkpoint": {"dir": self.moe, "generator_args": gen_args,
                           "source_shards": len(self.src_files), "source_bytes": self.src_bytes,
                           "view_shards": len(self.view_names), "view_bytes": self.view_bytes,
                           "moe_layers": gen_args[gen_args.index("--pattern") + 1].count("E")},
            "many": {"dir": self.many, "source_shards": len(shard_files(self.many)),
                     "tensors": sum(len(read_header(p)[1]) for p in shard_files(self.many)),
                     "view_files": self.many_view_files},
        })

    def materialize(self):
        """Write the view's materialized copies once (-o materialize_dir,
        prefetch), so the materialized variant reads what a second reader or
        the next mount would read."""
        self.mat_dir = os.path.join(self.dir, "materialized")
        shutil.rmtree(self.mat_dir, ignore_errors=True)
        os.makedirs(self.mat_dir)
        with self.mount_sdafs(self.moe, "materialize",
                              "view=native,materialize_dir=%s,prefetch" % self.mat_dir) as m:
            deadline = time.time() + 600
            while stats_of(m.mnt).get("copies_written", 0) < len(self.view_names):
                if time.time() > deadline:
                    sys.exit("bench: materialized copies were not written in 10 minutes")
                time.sleep(0.2)

    def pick_tensors(self, weights):
        src = source_tensors(self.moe)
        grouped, plain = [], []
        for f in weights:
            for t in f["tensors"]:
                names = re.findall(r'src\("([^"]+)"\)', t["recipe"])
                item = {"name": t["name"], "file": f["name"], "offset": t["offset"],
                        "bytes": t["bytes"], "sources": [src[n] for n in names]}
                (grouped if len(names) > 1 else plain).append(item)
        rng = random.Random(self.a.seed)
        n = self.a.tensors
        g = rng.sample(grouped, min(len(grouped), n // 2))
        p = rng.sample(plain, min(len(plain), n - len(g)))
        self.picks = g + p
        self.info["random_tensors"] = {"n_grouped": len(g), "n_plain": len(p),
                                       "grouped_available": len(grouped),
                                       "view_bytes": sum(t["bytes"] for t in self.picks)}
        self.buf = mmap.mmap(-1, max(t["bytes"] for t in self.picks) + MiB)
        self.buf.write(b"\0" * len(self.buf))       # fault it in once, outside the timings
        self.mv = memoryview(self.buf)

    def warm(self):
        """Source shards (both checkpoints) into the page cache, daemons' binaries too.
        sync first: a fresh checkpoint's writeback must not run during the rounds."""
        log("warming the page cache with the sources")
        os.sync()
        cat(self.src_files)
        cat(self.src_files)
        cat(shard_files(self.many))
        # one untimed cold read through each daemon: the first fresh page-cache
        # allocation after a while is much slower here (see README.md)
        with self.mount_floor() as m:
            cat(in_mount(m.mnt, self.src_files))
        with self.mount_sdafs(self.moe, "warmup") as m:
            cat([os.path.join(m.mnt, n) for n in self.view_names])
        with self.mount_sdafs(self.many, "warmup"):
            pass
        time.sleep(self.a.settle)

    def mount_sdafs(self, src, kind, opts="view=native"):
        return Mount([self.sdafs, "-f", "-o", opts, src], "sdafs-" + kind, self.logdir)

    def mount_floor(self):
        return Mount([self.passthrough, "-f", self.moe], "floor", self.logdir)

    # ---- variants (each returns a dict of numbers for this round)
    def v_raw(self):
        return {"s": cat(self.src_files)}

    def v_floor_cat(self):
        with self.mount_floor() as m:
            files = in_mount(m.mnt, self.src_files)
            cold = cat(files)
            warm = cat(files)
            return {"s": cold, "warm_s": warm, "read_ahead_kb": m.read_ahead_kb()}

    def v_floor_direct(self):
        with self.mount_floor() as m:
            return {"s": dd_direct(in_mount(m.mnt, self.src_files))}

    def v_sdafs_cat(self):
        with self.mount_sdafs(self.moe, "cat") as m:
            files = [os.path.join(m.mnt, n) for n in self.view_names]
            hwm_mounted = m.vm_hwm()
            cold = cat(files)
            hwm_cold = m.vm_hwm()
            warm = cat(files)
            st = stats_of(m.mnt)
            return {"s": cold, "warm_s": warm, "vm_hwm_mounted": hwm_mounted, "vm_hwm": hwm_cold,
                    "vm_hwm_end": m.vm_hwm(),
                    "read_ahead_kb": m.read_ahead_kb(), "stats": st}

    def v_sdafs_mat(self):
        opts = "view=native,materialize_dir=%s" % self.mat_dir
        with self.mount_sdafs(self.moe, "materialized", opts) as m:
            files = [os.path.join(m.mnt, n) for n in self.view_names]
            t = cat(files)
            return {"s": t, "stats": stats_of(m.mnt)}

    def v_sdafs_direct(self):
        with self.mount_sdafs(self.moe, "direct") as m:
            files = [os.path.join(m.mnt, n) for n in self.view_names]
            t = dd_direct(files)
            return {"s": t, "vm_hwm": m.vm_hwm(), "stats": stats_of(m.mnt)}

    def v_random(self, rnd):
        """Each picked tensor read once through a fresh mount (O_DIRECT: exactly
        its bytes, no read-ahead into neighbours) and once from the source
        (buffered pread, page cache warm), alternating which goes first."""
        order = list(range(len(self.picks)))
        random.Random(self.a.seed * 1000 + rnd).shuffle(order)
        res = {}
        with self.mount_sdafs(self.moe, "random") as m:
            vfd = {n: os.open(os.path.join(m.mnt, n), os.O_RDONLY | os.O_DIRECT)
                   for n in self.view_names}
            sfd = {p: os.open(p, os.O_RDONLY) for p in self.src_files}
            try:
                for k, i in enumerate(order):
                    t = self.picks[i]

                    def view():
                        t0 = time.perf_counter()
                        preadv_full(vfd[t["file"]], self.mv, t["bytes"], t["offset"])
                        return time.perf_counter() - t0

                    def source():
                        t0 = time.perf_counter()
                        for path, off, n in t["sources"]:
                            preadv_full(sfd[path], self.mv, n, off)
                        return time.perf_counter() - t0

                    if k % 2:
                        sv = source()
                        vv = view()
                    else:
                        vv = view()
                        sv = source()
                    res[t["name"]] = (vv, sv)
            finally:
                for fd in list(vfd.values()) + list(sfd.values()):
                    os.close(fd)
            hwm = m.vm_hwm()
        grouped = [t["name"] for t in self.picks if len(t["sources"]) > 1]
        plain = [t["name"] for t in self.picks if len(t["sources"]) == 1]

        def agg(names):
            v = sum(res[n][0] for n in names)
            s = sum(res[n][1] for n in names)
            return {"view_s": v, "source_s": s, "slowdown": v / s if s else None}
        return {"all": agg(grouped + plain), "grouped": agg(grouped), "plain": agg(plain),
                "plain_median_slowdown": statistics.median(res[n][0] / res[n][1] for n in plain)
                if plain else None,
                "per_tensor": res, "vm_hwm": hwm}

    def v_many(self):
        """Wall time from starting sdafs to `ls -l` of the mount finishing."""
        m = self.mount_sdafs(self.many, "many")
        try:
            t0 = time.perf_counter()
            m.start(poll=0.001)
            t_mounted = time.perf_counter()
            subprocess.run(["ls", "-l", m.mnt], stdout=subprocess.DEVNULL, check=True)
            t1 = time.perf_counter()
            return {"s": t1 - t0, "mount_s": t_mounted - t0, "ls_s": t1 - t_mounted,
                    "vm_hwm": m.vm_hwm()}
        finally:
            m.stop()

    # ---- driver
    def run(self):
        variants = [("raw", self.v_raw), ("floor_cat", self.v_floor_cat),
                    ("floor_direct", self.v_floor_direct), ("sdafs_cat", self.v_sdafs_cat),
                    ("sdafs_direct", self.v_sdafs_direct), ("sdafs_mat", self.v_sdafs_mat),
                    ("random", None), ("many", self.v_many)]
        for r in range(self.a.rounds):
            k = r % len(variants)
            order = variants[k:] + variants[:k]
            log("round %d/%d: %s" % (r + 1, self.a.rounds, " ".join(n for n, _ in order)))
            for name, fn in order:
                out = self.v_random(r) if name == "random" else fn()
                self.samples.setdefault(name, []).append(out)
                # let the kernel finish deferred work (freeing the unmounted
                # page cache, free page reporting) outside the next timing
                time.sleep(self.a.settle)

    def run_ops(self):
        """The per-operation section (bench/ops.c): in memory, no FUSE; run
        after the rounds so it takes no CPU from them."""
        path = os.path.join(self.dir, "ops.json")
        log("per-operation section: %s" % self.ops)
        r = subprocess.run([self.ops, "--json", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return {"error": "%s exited with %d" % (self.ops, r.returncode), "output": r.stdout}
        with open(path) as f:
            return json.load(f)

    # ---- results
    def summarize(self):
        S, R = self.samples, self.a.rounds
        med = statistics.median
        raw_thr = [self.src_bytes / S["raw"][i]["s"] for i in range(R)]

        def thr(name, nbytes, key="s"):
            return [nbytes / S[name][i][key] for i in range(R)]

        fc, fd = thr("floor_cat", self.src_bytes), thr("floor_direct", self.src_bytes)
        fw = thr("floor_cat", self.src_bytes, "warm_s")
        sc, sd = thr("sdafs_cat", self.view_bytes), thr("sdafs_direct", self.view_bytes)
        sw = thr("sdafs_cat", self.view_bytes, "warm_s")
        sm = thr("sdafs_mat", self.view_bytes)

        def row(label, nbytes, t, name, key="s", floor=None, target=None):
            secs = [S[name][i][key] for i in range(R)]
            ratio = [t[i] / raw_thr[i] for i in range(R)]
            d = {"label": label, "bytes": nbytes, "seconds": med(secs), "seconds_all": secs,
                 "gib_s": med(t) / GiB, "ratio_raw": med(ratio), "ratio_raw_all": ratio}
            if floor is not None:
                rf = [t[i] / floor[i] for i in range(R)]
                d["ratio_floor"] = med(rf)
                d["ratio_floor_all"] = rf
            if target:
                d["target"] = target
            return d

        rows = {
            "raw": row("raw cat, source (warm page cache)", self.src_bytes, raw_thr, "raw"),
            "floor_cat": row("FUSE floor: cold cat", self.src_bytes, fc, "floor_cat", floor=fc),
            "floor_direct": row("FUSE floor: cold O_DIRECT dd 4M", self.src_bytes, fd,
                                "floor_direct", floor=fd),
            "floor_warm": row("FUSE floor: warm re-read (cat)", self.src_bytes, fw, "floor_cat",
                              "warm_s", floor=fw),
            "sdafs_cat": row("sdafs: cold cat of the view", self.view_bytes, sc, "sdafs_cat",
                             floor=fc, target=">= 0.85 x floor"),
            "sdafs_direct": row("sdafs: cold O_DIRECT dd 4M", self.view_bytes, sd, "sdafs_direct",
                                floor=fd, target=">= 0.85 x floor"),
            "sdafs_warm": row("sdafs: warm re-read (cat)", self.view_bytes, sw, "sdafs_cat",
                              "warm_s", floor=fw, target=">= 0.80 x raw"),
            "sdafs_mat": row("sdafs: materialized copies (cat)", self.view_bytes, sm, "sdafs_mat",
                             floor=fc, target=">= 0.90 x raw"),
        }
        rows["sdafs_cat"]["pass"] = rows["sdafs_cat"]["ratio_floor"] >= TARGETS["sdafs_cold_cat_vs_floor"]
        rows["sdafs_direct"]["pass"] = rows["sdafs_direct"]["ratio_floor"] >= TARGETS["sdafs_cold_direct_vs_floor"]
        rows["sdafs_warm"]["pass"] = rows["sdafs_warm"]["ratio_raw"] >= TARGETS["sdafs_warm_vs_raw"]
        rows["sdafs_mat"]["pass"] = rows["sdafs_mat"]["ratio_raw"] >= TARGETS["sdafs_materialized_vs_raw"]

        rnd = S["random"]
        random_res = {}
        for cls in ("all", "grouped", "plain"):
            sl = [x[cls]["slowdown"] for x in rnd if x[cls]["slowdown"] is not None]
            random_res[cls] = {
                "view_s": med(x[cls]["view_s"] for x in rnd),
                "source_s": med(x[cls]["source_s"] for x in rnd),
                "slowdown": med(sl) if sl else None, "slowdown_all": sl}
        pm = [x["plain_median_slowdown"] for x in rnd if x["plain_median_slowdown"] is not None]
        random_res["plain_median_per_tensor_slowdown"] = med(pm) if pm else None
        names = list(rnd[0]["per_tensor"])
        tb = {t["name"]: t["bytes"] for t in self.picks}
        random_res["per_tensor"] = [
            {"name": n, "bytes": tb[n],
             "view_s": med(x["per_tensor"][n][0] for x in rnd),
             "source_s": med(x["per_tensor"][n][1] for x in rnd)} for n in names]
        random_res["pass"] = random_res["all"]["slowdown"] <= TARGETS["random_slowdown"]
        random_res.update(self.info["random_tensors"])

        many = S["many"]
        many_res = {"seconds": med(x["s"] for x in many), "seconds_all": [x["s"] for x in many],
                    "mount_s": med(x["mount_s"] for x in many), "ls_s": med(x["ls_s"] for x in many),
                    "vm_hwm": max(x["vm_hwm"] for x in many)}
        many_res["pass"] = many_res["seconds"] < TARGETS["many_mount_ls_s"]
        many_res.update(self.info["many"])

        cache = None
        for x in S["sdafs_cat"] + S["sdafs_direct"]:
            if x.get("stats"):
                cache = x["stats"]["cache"]["max_bytes"]
        hwm_cat = [x["vm_hwm"] for x in S["sdafs_cat"]]
        hwm_dir = [x["vm_hwm"] for x in S["sdafs_direct"]]
        rss = {"cache_bytes": cache, "vm_hwm_cold_cat": hwm_cat, "vm_hwm_cold_direct": hwm_dir,
               "vm_hwm_random": [x["vm_hwm"] for x in rnd], "vm_hwm_max": max(hwm_cat + hwm_dir),
               "vm_hwm_mounted": med(x["vm_hwm_mounted"] for x in S["sdafs_cat"])}
        rss["limit_bytes"] = cache + TARGETS["rss_over_cache_mib"] * MiB if cache else None
        rss["pass"] = bool(cache) and rss["vm_hwm_max"] <= rss["limit_bytes"]

        return {"rows": rows, "random": random_res, "many": many_res, "rss": rss}

    def machine(self):
        def first(path, key):
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith(key):
                            return line.split(":", 1)[1].strip()
            except OSError:
                pass
            return None
        virt = None
        if shutil.which("systemd-detect-virt"):
            r = subprocess.run(["systemd-detect-virt"], stdout=subprocess.PIPE, text=True)
            virt = r.stdout.strip() if r.returncode == 0 else "none"
        fuse = subprocess.run(["pkg-config", "--modversion", "fuse3"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout.strip() or None
        def read(path):
            try:
                with open(path) as f:
                    return f.read().strip()
            except OSError:
                return None
        return {"free_page_reporting_order": read("/sys/module/page_reporting/parameters/page_reporting_order"),
                "damon_kdamond0": read("/sys/kernel/mm/damon/admin/kdamonds/0/state"),
                "vm": " hypervisor " in " %s " % (first("/proc/cpuinfo", "flags") or ""),
                "cpus": os.cpu_count(), "cpu": first("/proc/cpuinfo", "model name"),
                "mem_total": first("/proc/meminfo", "MemTotal"), "kernel": platform.release(),
                "virtualization": virt, "libfuse": fuse, "root": os.geteuid() == 0,
                "sdafs_version": subprocess.run([self.sdafs, "--version"], stdout=subprocess.PIPE,
                                                text=True).stdout.strip()}


# --------------------------------------------------------------- report

def fmt_table(res, meta):
    rows, m = res["rows"], meta["machine"]
    out = []
    kind = "VM" if m["vm"] else "machine"
    ck = meta["checkpoint"]
    mem = int(m["mem_total"].split()[0]) * 1024 / GiB if m["mem_total"] else 0
    out.append("sdafs bench  %s  (%d-core %s, %.0f GiB RAM, Linux %s, libfuse %s%s)" % (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(meta["started"])), m["cpus"], kind,
        mem, m["kernel"], m["libfuse"], "" if m["root"] else ", NOT root: read-ahead not raised"))
    out.append("checkpoint: Nemotron-H MoE %.2f GiB in %d shards (hidden 2048, 64 experts, moe inter 1024, "
               "%d MoE layers); view %.2f GiB in %d shards" % (
                   ck["source_bytes"] / GiB, ck["source_shards"], ck["moe_layers"],
                   ck["view_bytes"] / GiB, ck["view_shards"]))
    out.append("%d rounds, variants interleaved, medians; ratios are throughput (1.00 = as fast as raw)"
               % meta["rounds"])
    share = meta["other_cpu_share"]
    out.append("CPU taken by everything but the bench and its daemons during the rounds: %.0f%% of the machine "
               "(load %.1f at start)%s" % (100 * share, meta["loadavg_start"][0],
                                           "  WARNING: busy machine, numbers not comparable"
                                           if share > 0.10 else ""))
    out.append("")
    hdr = "%-38s %9s %8s %7s %8s  %s" % ("", "time", "GiB/s", "x raw", "x floor", "target")
    out.append(hdr)
    out.append("-" * len(hdr))
    for key in ("raw", "floor_cat", "floor_direct", "floor_warm", "sdafs_cat", "sdafs_direct",
                "sdafs_warm", "sdafs_mat"):
        r = rows[key]
        tgt = ""
        if "target" in r:
            tgt = "%s  %s" % (r["target"], "ok" if r["pass"] else "MISSED")
        rf = "%8.2f" % r["ratio_floor"] if "ratio_floor" in r and not key.startswith("floor") else "%8s" % "-"
        out.append(("%-38s %7.3f s %8.2f %7.2f %s  %s" % (r["label"], r["seconds"], r["gib_s"],
                                                          r["ratio_raw"], rf, tgt)).rstrip())
    rd = res["random"]
    out.append("")
    out.append("random tensors: %d (%d grouped expert tensors, %d plain), %.0f MiB; each read cold through a "
               "fresh mount (O_DIRECT) vs pread of its source bytes (warm)" % (
                   rd["n_grouped"] + rd["n_plain"], rd["n_grouped"], rd["n_plain"], rd["view_bytes"] / MiB))
    for cls, label in (("all", "all"), ("grouped", "grouped"), ("plain", "plain")):
        c = rd[cls]
        if c["slowdown"] is None:
            continue
        tgt = ("  target <= 2.0x slower  %s" % ("ok" if rd["pass"] else "MISSED")) if cls == "all" else ""
        out.append("  %-8s view %8.4f s  source %8.4f s  slowdown %6.2fx  (x raw %.2f)%s" % (
            label, c["view_s"], c["source_s"], c["slowdown"], 1 / c["slowdown"], tgt))
    if rd["plain_median_per_tensor_slowdown"]:
        out.append("  plain tensors, median per-tensor slowdown %.1fx (small tensors: one FUSE round trip each)"
                   % rd["plain_median_per_tensor_slowdown"])
    mn = res["many"]
    out.append("")
    out.append("mount + ls -l, %d shards / %d tensors (view: %d files): %.3f s (mount %.3f + ls %.3f)  "
               "target < 1 s  %s" % (mn["source_shards"], mn["tensors"], mn["view_files"], mn["seconds"],
                                     mn["mount_s"], mn["ls_s"], "ok" if mn["pass"] else "MISSED"))
    rs = res["rss"]
    out.append("peak RSS (VmHWM) of sdafs during cold reads: %.0f MiB (cat %.0f, O_DIRECT %.0f; %.0f after "
               "mounting), cache %.0f MiB -> limit %.0f MiB  %s" % (
                   rs["vm_hwm_max"] / MiB, max(rs["vm_hwm_cold_cat"]) / MiB,
                   max(rs["vm_hwm_cold_direct"]) / MiB, rs["vm_hwm_mounted"] / MiB,
                   (rs["cache_bytes"] or 0) / MiB, (rs["limit_bytes"] or 0) / MiB,
                   "ok" if rs["pass"] else "MISSED"))
    out.append("")
    out.extend(fmt_ops(res.get("ops")))
    return "\n".join(out)


def fmt_ops(ops):
    """The per-operation section: GB/s of output per backend, one thread."""
    if not ops or "error" in ops:
        return ["recipe operations: not measured (%s)" % (ops or {}).get("error", "no results")]
    out = ["recipe operations in memory (bench/ops.c), one thread, GB/s of output, median of %d "
           "interleaved passes; a column per CPU kernel path" % ops["reps"]]
    if "cuda_skipped" in ops:
        out.append("  CUDA column skipped: %s" % ops["cuda_skipped"])
    else:
        out.append("  CUDA: %s" % ops["cuda_device"])
    paths = ["scalar", "sse2", "avx2", "avx512"]     # the CPU kernel paths, - where absent
    out.append("  %-20s %8s %7s %s %7s %8s" % ("op", "MB out", "memcpy",
                                              " ".join("%7s" % p for p in paths), "CUDA", "CUDA/CPU"))
    for o in ops["ops"]:
        cuda = "%7.2f" % o["cuda_gb_s"] if "cuda_gb_s" in o else "%7s" % "-"
        ratio = "%8.2f" % o["cuda_over_cpu"] if "cuda_over_cpu" in o else "%8s" % "-"
        note = "  CUDA: %s" % o["cuda_note"] if "cuda_note" in o else ""
        cols = " ".join("%7.2f" % o["paths"][p] if p in o.get("paths", {}) else "%7s" % "-"
                        for p in paths)
        memcpy = "%7.2f" % o["memcpy_gb_s"] if "memcpy_gb_s" in o else "%7s" % "-"
        out.append("  %-20s %8.1f %s %s %s %s%s" % (o["op"], o["bytes_out"] / 1e6, memcpy, cols,
                                                    cuda, ratio, note))
    return out


def main():
    p = argparse.ArgumentParser(description="sdafs benchmark (make bench)")
    p.add_argument("--build", default=os.path.join(REPO, "build"))
    p.add_argument("--gb", type=float, default=float(os.environ.get("BENCH_GB") or 2))
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS") or 5))
    p.add_argument("--tensors", type=int, default=int(os.environ.get("BENCH_TENSORS") or 50))
    p.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED") or 1))
    p.add_argument("--settle", type=float, default=float(os.environ.get("BENCH_SETTLE") or 1.0),
                   help="seconds of pause after each variant (default 1)")
    a = p.parse_args()
    if a.gb <= 0 or a.rounds < 1 or a.tensors < 2:
        p.error("need BENCH_GB > 0, BENCH_ROUNDS >= 1, BENCH_TENSORS >= 2")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(cleanup_all)
    started = time.time()
    b = Bench(a)
    try:
        b.prepare()
        b.warm()
        load_start = os.getloadavg()
        t = time.monotonic()
        c0 = cpu_snapshot()
        b.run()
        c1 = cpu_snapshot()
        res = b.summarize()
    finally:
        cleanup_all()
    res["ops"] = b.run_ops()
    wall = c1[2] - c0[2]
    other = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1]))
    meta = {"started": started, "rounds": a.rounds, "settle_s": a.settle, "gb": a.gb, "tensors": a.tensors, "seed": a.seed,
            "machine": b.machine(), "checkpoint": b.info["checkpoint"],
            "measure_seconds": time.monotonic() - t, "total_seconds": time.time() - started,
            "targets": TARGETS, "loadavg_start": load_start,
            "other_cpu_share": other / (wall * (os.cpu_count() or 1))}
    table = fmt_table(res, meta)
    out = os.path.join(b.dir, "results.json")
    with open(out, "w") as f:
        json.dump({"meta": meta, "results": res, "samples": b.samples, "table": table.split("\n")},
                  f, indent=1)
        f.write("\n")
    print(table)
    print("\n(%s; measuring took %.0f s, all %.0f s)" % (out, meta["measure_seconds"], meta["total_seconds"]))


if __name__ == "__main__":
    main()
