#!/usr/bin/python3
"""run.py — the sdafs benchmark (`make bench`).  Standard library only.

    bench/run.py [--build DIR] [--gb G] [--rounds N] [--tensors N] [--seed S]

Environment: BENCH_GB (checkpoint size in GiB, default 2), BENCH_ROUNDS
(default 5), BENCH_TENSORS (random tensors, default 50), BENCH_SEED (1),
BENCH_SETTLE (seconds of pause after each measurement, default 0.5).

Generates (once, cached under DIR/bench/) a Nemotron-H MoE checkpoint of about
BENCH_GB GiB (experts 1024 wide), one of about BENCH_GB/2 GiB with experts 512
wide, and a 1,000-shard / 100,000-tensor checkpoint, then runs rounds in which
every variant is measured once, in an order rotated from round to round, and
reports medians: throughput ratios to a raw `cat` of the source (warm page
cache) and to a minimal FUSE passthrough (bench/passthrough.c) with sdafs's
FUSE settings.  The speed-ups of the read path are measured on and off in the
same rounds (SDAFS_OFF, docs/performance.md).  After the rounds: peak RSS
against the cache size, then the per-operation section: DIR/bench/ops
(bench/ops.c) times each recipe operation in memory, per backend.  Then the
convert section (ConvertBench, alone with --only convert): sdafs convert
against cp -r of the source to the same disk and the Python stand-in
(BENCH_NO_REF=1 leaves that out).  Writes DIR/bench/results.json.
bench/README.md says what every number means.

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
LOADER = os.path.join(REPO, "bench", "mmap_loader.py")
REFCONV = os.path.join(REPO, "tests", "ref", "automodel_ref.py")
MiB = 1 << 20
GiB = 1 << 30

TARGETS = {
    "sdafs_cold_cat_vs_floor": 1.0,        # >= , ratio to the floor of the same kind
    "sdafs_cold_cat_vs_raw": 0.3,          # >= , stretch
    "sdafs_cold_direct_vs_floor": 0.85,
    "mmap_view_vs_copy": 1.2,              # <= , time on a fresh mount / on a cached copy
    "cp_vs_python": 15.0,                  # >= , python converter time / cp -r time
    "sdafs_warm_vs_raw": 0.80,             # >=
    "sdafs_materialized_vs_raw": 0.90,     # >= , -o materialize_dir copies
    "random_slowdown": 2.0,                # <= , view time / source pread time
    "many_mount_ls_s": 1.0,                # <
    "rss_over_cache_mib": 64,              # VmHWM <= cache + 64 MiB
}

# SDAFS_OFF values: every speed-up of the read path off ("all", the read
# path before them), or one at a time (fs/mount.c).
LEVERS_OFF = {"all": "readahead,splice,recycle,reuse,hugepages,prefault", "readahead": "readahead",
              "splice": "splice", "memory": "recycle,reuse,hugepages,prefault"}
LEVER_LABELS = {"all": "all levers off (before)", "readahead": "without read-ahead",
                "splice": "without splice", "memory": "without memory reuse"}
RSS_CACHES = ("64M", "1G")          # besides the default 256M, once after the rounds


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

    def __init__(self, argv, kind, logdir, env=None):
        self.kind = kind
        self.env = dict(os.environ, **env) if env else None
        self.mnt = tempfile.mkdtemp(prefix="sdafs-bench-%s-" % kind, dir="/tmp")
        self.argv = argv + [self.mnt]
        self.logpath = os.path.join(logdir, "%s.log" % kind)
        self.proc = None

    def start(self, poll=0.002, timeout=120):
        """Start the daemon and return once the mount answers."""
        parent_dev = os.stat(os.path.dirname(self.mnt)).st_dev
        logf = open(self.logpath, "a")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
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

    def cpu_s(self):
        """CPU seconds (user + system) the daemon and its threads used so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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

def moe_layout(gb, H=2048, I=1024, n_e=None):
    """Generator options and the expected size for a checkpoint of about gb GiB.

    Nemotron-H MoE: hidden H, 64 routed experts of width I (at H 2048, I 1024
    each MoE block is ~528 MiB, of which 512 MiB experts to merge), Mamba
    blocks between, an attention block every third MoE block; n_e MoE blocks
    (default: as many as fit) and the vocabulary fills up the rest."""
    E = 64
    nh, hd, ng, ss, K = H // 32, 32, 2, 16, 4
    conv = nh * hd + 2 * ng * ss
    b = 2
    m_bytes = b * (H + (2 * nh * hd + 2 * ng * ss + nh) * H + conv * K + conv + 2 * nh
                   + nh * hd + H * nh * hd) + 4 * nh
    a_bytes = b * (H + 2 * (2048 * H) + 2 * (512 * H))
    e_bytes = b * (H + E * H + 2 * E * I * H + 2 * (2 * I) * H) + 4 * E
    target = gb * GiB
    if n_e is None:
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


class Checkpoint:
    """A source checkpoint and its native view's weight files."""

    def __init__(self, bench, dirpath, gen_args):
        self.dir = dirpath
        self.gen_args = gen_args
        self.src_files = shard_files(dirpath)
        self.src_bytes = sum(os.path.getsize(f) for f in self.src_files)
        r = subprocess.run([bench.sdafs, "--inspect", "--json", "-o", "view=native", dirpath],
                           stdout=subprocess.PIPE, check=True)
        self.weights = [f for f in json.loads(r.stdout)["files"] if f["kind"] == "weights"]
        self.view_names = [f["name"] for f in self.weights]
        self.view_bytes = sum(f["size"] for f in self.weights)

    def info(self):
        a = self.gen_args
        return {"dir": self.dir, "generator_args": a, "source_shards": len(self.src_files),
                "source_bytes": self.src_bytes, "view_shards": len(self.view_names),
                "view_bytes": self.view_bytes, "hidden": int(a[a.index("--hidden") + 1]),
                "moe_inter": int(a[a.index("--moe-inter") + 1]),
                "moe_layers": a[a.index("--pattern") + 1].count("E")}


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
        tag = ("%g" % self.a.gb).replace(".", "p")
        gen_args, expect = moe_layout(self.a.gb)
        main_dir = os.path.join(self.dir, "moe-%sg" % tag)
        cached(main_dir, [PY, GEN, main_dir + ".tmp"] + gen_args,
               "Nemotron-H MoE, about %.2f GiB" % (expect / GiB))
        # The second checkpoint: hidden 1024, experts 512 wide, 7 MoE
        # layers at the default size (half of BENCH_GB).
        gen512, expect512 = moe_layout(self.a.gb / 2, H=1024, I=512,
                                       n_e=max(1, int(round(7 * self.a.gb / 2))))
        w512_dir = os.path.join(self.dir, "moe512-%sg" % tag)
        cached(w512_dir, [PY, GEN, w512_dir + ".tmp"] + gen512,
               "Nemotron-H MoE, experts 512 wide, about %.2f GiB" % (expect512 / GiB))
        self.many = os.path.join(self.dir, "many-1000x100000")
        cached(self.many, [PY, GEN_MANY, self.many + ".tmp", "--shards", "1000", "--tensors", "100000"],
               "1,000 shards, 100,000 tensors")
        self.main = Checkpoint(self, main_dir, gen_args)
        self.w512 = Checkpoint(self, w512_dir, gen512)
        self.pick_tensors(self.main.weights)
        self.materialize()
        many_plan = json.loads(subprocess.run(
            [self.sdafs, "--inspect", "--json", "-o", "view=native", self.many],
            stdout=subprocess.PIPE, check=True).stdout)
        self.many_view_files = len(many_plan["files"])
        self.info.update({
            "checkpoint": self.main.info(), "checkpoint512": self.w512.info(),
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
        with self.mount_sdafs(self.main, "materialize",
                              "view=native,materialize_dir=%s,prefetch" % self.mat_dir) as m:
            deadline = time.time() + 600
            while stats_of(m.mnt).get("copies_written", 0) < len(self.main.view_names):
                if time.time() > deadline:
                    sys.exit("bench: materialized copies were not written in 10 minutes")
                time.sleep(0.2)
        # each copy is named <hash of the view>.<view file name>
        names = os.listdir(self.mat_dir)
        self.mat_files = [os.path.join(self.mat_dir, next(f for f in names if f.endswith("." + n)))
                          for n in self.main.view_names]

    def pick_tensors(self, weights):
        src = source_tensors(self.main.dir)
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
        """Source shards (all checkpoints) and the materialized copies into the
        page cache, daemons' binaries too.  sync first: a fresh checkpoint's
        writeback must not run during the rounds."""
        log("warming the page cache with the sources")
        os.sync()
        for ck in (self.main, self.w512):
            cat(ck.src_files)
            cat(ck.src_files)
        cat(shard_files(self.many))
        cat(self.mat_files)
        # one untimed cold read through each daemon: the first fresh page-cache
        # allocation after a while is much slower here (see README.md)
        with self.mount_floor(self.main) as m:
            cat(in_mount(m.mnt, self.main.src_files))
        with self.mount_sdafs(self.main, "warmup") as m:
            cat([os.path.join(m.mnt, n) for n in self.main.view_names])
        with Mount([self.sdafs, "-f", "-o", "view=native", self.many], "sdafs-warmup", self.logdir):
            pass
        time.sleep(self.a.settle)

    def mount_sdafs(self, ck, kind, opts="view=native", off=None):
        env = {"SDAFS_OFF": LEVERS_OFF[off]} if off else None
        return Mount([self.sdafs, "-f", "-o", opts, ck.dir], "sdafs-" + kind, self.logdir, env)

    def mount_floor(self, ck):
        return Mount([self.passthrough, "-f", ck.dir], "floor", self.logdir)

    # ---- variants (each returns a dict of numbers for this round)
    def v_raw(self, ck):
        return {"s": cat(ck.src_files)}

    def v_floor_cat(self, ck):
        with self.mount_floor(ck) as m:
            files = in_mount(m.mnt, ck.src_files)
            c0 = m.cpu_s()
            cold = cat(files)
            cpu = m.cpu_s() - c0
            warm = cat(files)
            return {"s": cold, "cpu_s": cpu, "warm_s": warm, "read_ahead_kb": m.read_ahead_kb()}

    def v_floor_direct(self, ck):
        with self.mount_floor(ck) as m:
            c0 = m.cpu_s()
            t = dd_direct(in_mount(m.mnt, ck.src_files))
            return {"s": t, "cpu_s": m.cpu_s() - c0}

    def v_sdafs_cat(self, ck, off=None):
        with self.mount_sdafs(ck, "cat", off=off) as m:
            files = [os.path.join(m.mnt, n) for n in ck.view_names]
            hwm_mounted = m.vm_hwm()
            c0 = m.cpu_s()
            cold = cat(files)
            cpu = m.cpu_s() - c0
            hwm_cold = m.vm_hwm()
            warm = cat(files)
            st = stats_of(m.mnt)
            return {"s": cold, "cpu_s": cpu, "warm_s": warm, "vm_hwm_mounted": hwm_mounted,
                    "vm_hwm": hwm_cold,
                    "vm_hwm_end": m.vm_hwm(),
                    "read_ahead_kb": m.read_ahead_kb(), "stats": st}

    def v_sdafs_mat(self):
        opts = "view=native,materialize_dir=%s" % self.mat_dir
        with self.mount_sdafs(self.main, "materialized", opts) as m:
            files = [os.path.join(m.mnt, n) for n in self.main.view_names]
            t = cat(files)
            return {"s": t, "stats": stats_of(m.mnt)}

    def v_sdafs_direct(self, ck, off=None):
        with self.mount_sdafs(ck, "direct", off=off) as m:
            files = [os.path.join(m.mnt, n) for n in ck.view_names]
            c0 = m.cpu_s()
            t = dd_direct(files)
            return {"s": t, "cpu_s": m.cpu_s() - c0, "vm_hwm": m.vm_hwm(), "stats": stats_of(m.mnt)}

    def v_random(self, rnd, off=None):
        """Each picked tensor read once through a fresh mount (O_DIRECT: exactly
        its bytes, no kernel read-ahead into neighbours) and once from the
        source (buffered pread, page cache warm), alternating which goes first."""
        order = list(range(len(self.picks)))
        random.Random(self.a.seed * 1000 + rnd).shuffle(order)
        res = {}
        with self.mount_sdafs(self.main, "random", off=off) as m:
            vfd = {n: os.open(os.path.join(m.mnt, n), os.O_RDONLY | os.O_DIRECT)
                   for n in self.main.view_names}
            sfd = {p: os.open(p, os.O_RDONLY) for p in self.main.src_files}
            try:
                for k, i in enumerate(order):
                    t = self.picks[i]

                    def view():
                        t0 = time.perf_counter()
                        preadv_full(vfd[t["file"]], self.mv, t["bytes"], t["offset"])
                        return time.perf_counter() - t0

                    def source():
                        t0 = time.perf_counter()
                        for path, off_, n in t["sources"]:
                            preadv_full(sfd[path], self.mv, n, off_)
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

    def loader(self, files, rnd):
        """bench/mmap_loader.py over files; its own timing (mmap to last copy)."""
        r = subprocess.run([PY, LOADER, "--seed", str(self.a.seed * 1000 + rnd)] + files,
                           stdout=subprocess.PIPE, check=True, text=True)
        return json.loads(r.stdout)

    def v_mmap_view(self, rnd, off=None):
        with self.mount_sdafs(self.main, "mmap", off=off) as m:
            out = self.loader([os.path.join(m.mnt, n) for n in self.main.view_names], rnd)
            out["stats"] = stats_of(m.mnt)
            return out

    def v_mmap_copy(self, rnd):
        """The same loader on the materialized copy itself, pages cached."""
        return self.loader(self.mat_files, rnd)

    def v_cp_view(self):
        """cp -r of the 512-wide checkpoint's native view, then sync."""
        dest = os.path.join(self.dir, "cp-out")
        shutil.rmtree(dest, ignore_errors=True)
        with self.mount_sdafs(self.w512, "cp") as m:
            t = timed(["bash", "-c", 'cp -r "$1" "$2" && sync', "cp", m.mnt, dest])
        shutil.rmtree(dest, ignore_errors=True)
        return {"s": t}

    def v_py_convert(self):
        """The Python stand-in for NeMo Automodel's conversion (tests/ref's
        from_hf, numpy) writing the same view, then sync, timed the same way."""
        dest = os.path.join(self.dir, "py-out")
        shutil.rmtree(dest, ignore_errors=True)
        t = timed(["bash", "-c", '"$1" "$2" --view "$3" --shards "$4" --quiet && sync', "py",
                   REFCONV, self.w512.dir, dest, str(len(self.w512.view_names))])
        shutil.rmtree(dest, ignore_errors=True)
        return {"s": t}

    def v_many(self):
        """Wall time from starting sdafs to `ls -l` of the mount finishing."""
        m = Mount([self.sdafs, "-f", "-o", "view=native", self.many], "sdafs-many", self.logdir)
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

    def rss_sweep(self):
        """Peak RSS of a cold cat of the view against the cache size: once
        each, after the rounds (RSS does not drift like time does)."""
        out = {}
        for size in RSS_CACHES:
            with self.mount_sdafs(self.main, "rss-%s" % size, "view=native,cache_size=%s" % size) as m:
                t = cat([os.path.join(m.mnt, n) for n in self.main.view_names])
                st = stats_of(m.mnt)
                out[size] = {"cache_bytes": st["cache"]["max_bytes"], "vm_hwm": m.vm_hwm(), "s": t}
            time.sleep(self.a.settle)
        return out

    # ---- driver
    def variants(self):
        mc, w = self.main, self.w512
        v = [("raw", lambda r: self.v_raw(mc)), ("raw512", lambda r: self.v_raw(w)),
             ("floor_cat", lambda r: self.v_floor_cat(mc)),
             ("floor_direct", lambda r: self.v_floor_direct(mc)),
             ("floor512_cat", lambda r: self.v_floor_cat(w)),
             ("sdafs_cat", lambda r: self.v_sdafs_cat(mc)),
             ("sdafs_direct", lambda r: self.v_sdafs_direct(mc)),
             ("sdafs512_cat", lambda r: self.v_sdafs_cat(w)),
             ("sdafs512_cat_off_all", lambda r: self.v_sdafs_cat(w, "all"))]
        for lever in LEVERS_OFF:
            v.append(("sdafs_cat_off_" + lever, lambda r, x=lever: self.v_sdafs_cat(mc, x)))
            v.append(("sdafs_direct_off_" + lever, lambda r, x=lever: self.v_sdafs_direct(mc, x)))
        v += [("sdafs_mat", lambda r: self.v_sdafs_mat()),
              ("random", lambda r: self.v_random(r)),
              ("random_off_all", lambda r: self.v_random(r, "all")),
              ("mmap_view", lambda r: self.v_mmap_view(r)),
              ("mmap_view_off_all", lambda r: self.v_mmap_view(r, "all")),
              ("mmap_copy", lambda r: self.v_mmap_copy(r)),
              ("cp_view", lambda r: self.v_cp_view()),
              ("py_convert", lambda r: self.v_py_convert()),
              ("many", lambda r: self.v_many())]
        return v

    def run(self):
        variants = self.variants()
        for r in range(self.a.rounds):
            k = r % len(variants)
            order = variants[k:] + variants[:k]
            log("round %d/%d: %s" % (r + 1, self.a.rounds, " ".join(n for n, _ in order)))
            for name, fn in order:
                self.samples.setdefault(name, []).append(fn(r))
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
        mc, w = self.main, self.w512

        def thr(name, nbytes, key="s"):
            return [nbytes / S[name][i][key] for i in range(R)]

        raw = {"main": thr("raw", mc.src_bytes), "w512": thr("raw512", w.src_bytes)}

        def row(label, name, ck="main", key="s", floor=None, target=None):
            nbytes = (mc if ck == "main" else w).view_bytes if name.startswith("sdafs") \
                else (mc if ck == "main" else w).src_bytes
            t = thr(name, nbytes, key)
            secs = [S[name][i][key] for i in range(R)]
            ratio = [t[i] / raw[ck][i] for i in range(R)]
            d = {"label": label, "bytes": nbytes, "seconds": med(secs), "seconds_all": secs,
                 "gib_s": med(t) / GiB, "ratio_raw": med(ratio), "ratio_raw_all": ratio}
            if key == "s" and "cpu_s" in S[name][0]:
                # daemon CPU seconds per GiB read: the work, whatever else runs
                cpu = [S[name][i]["cpu_s"] / (nbytes / GiB) for i in range(R)]
                d["daemon_cpu_s_per_gib"] = med(cpu)
                d["daemon_cpu_s_per_gib_all"] = cpu
            if floor is not None:
                f = thr(floor, (mc if ck == "main" else w).src_bytes, key)
                rf = [t[i] / f[i] for i in range(R)]
                d["ratio_floor"] = med(rf)
                d["ratio_floor_all"] = rf
            if target:
                d["target"] = target
            return d

        rows = {
            "raw": row("raw cat, source (warm page cache)", "raw"),
            "floor_cat": row("FUSE floor: cold cat", "floor_cat", floor="floor_cat"),
            "floor_direct": row("FUSE floor: cold O_DIRECT dd 4M", "floor_direct", floor="floor_direct"),
            "floor_warm": row("FUSE floor: warm re-read (cat)", "floor_cat", key="warm_s",
                              floor="floor_cat"),
            "sdafs_cat": row("sdafs: cold cat of the view", "sdafs_cat", floor="floor_cat",
                             target=">= 1.0 x floor"),
            "sdafs_direct": row("sdafs: cold O_DIRECT dd 4M", "sdafs_direct", floor="floor_direct",
                                target=">= 0.85 x floor"),
            "sdafs_warm": row("sdafs: warm re-read (cat)", "sdafs_cat", key="warm_s",
                              floor="floor_cat", target=">= 0.80 x raw"),
            "sdafs_mat": row("sdafs: materialized copies (cat)", "sdafs_mat", floor="floor_cat",
                             target=">= 0.90 x raw"),
            "raw512": row("raw cat, source (warm page cache)", "raw512", ck="w512"),
            "floor512_cat": row("FUSE floor: cold cat", "floor512_cat", ck="w512",
                                floor="floor512_cat"),
            "sdafs512_cat": row("sdafs: cold cat of the view", "sdafs512_cat", ck="w512",
                                floor="floor512_cat", target=">= 1.0 x floor"),
            "sdafs512_cat_off_all": row("  " + LEVER_LABELS["all"], "sdafs512_cat_off_all",
                                        ck="w512", floor="floor512_cat"),
        }
        for lever in LEVERS_OFF:
            rows["sdafs_cat_off_" + lever] = row("  " + LEVER_LABELS[lever], "sdafs_cat_off_" + lever,
                                                 floor="floor_cat")
            rows["sdafs_direct_off_" + lever] = row("  " + LEVER_LABELS[lever],
                                                    "sdafs_direct_off_" + lever, floor="floor_direct")
        for k in ("sdafs_cat", "sdafs512_cat"):
            rows[k]["pass"] = rows[k]["ratio_floor"] >= TARGETS["sdafs_cold_cat_vs_floor"]
            rows[k]["pass_raw"] = rows[k]["ratio_raw"] >= TARGETS["sdafs_cold_cat_vs_raw"]
        rows["sdafs_direct"]["pass"] = rows["sdafs_direct"]["ratio_floor"] >= TARGETS["sdafs_cold_direct_vs_floor"]
        rows["sdafs_warm"]["pass"] = rows["sdafs_warm"]["ratio_raw"] >= TARGETS["sdafs_warm_vs_raw"]
        rows["sdafs_mat"]["pass"] = rows["sdafs_mat"]["ratio_raw"] >= TARGETS["sdafs_materialized_vs_raw"]

        random_res = {"on": self.summarize_random(S["random"]),
                      "off_all": self.summarize_random(S["random_off_all"])}

        def ratio_of(a, b):
            rs = [S[a][i]["s"] / S[b][i]["s"] for i in range(R)]
            return {"ratio": med(rs), "ratio_all": rs, "s": med(x["s"] for x in S[a]),
                    "base_s": med(x["s"] for x in S[b])}
        mmap_res = {"view": ratio_of("mmap_view", "mmap_copy"),
                    "view_off_all": ratio_of("mmap_view_off_all", "mmap_copy"),
                    "bytes": S["mmap_copy"][0]["bytes"], "tensors": S["mmap_copy"][0]["tensors"]}
        mmap_res["pass"] = mmap_res["view"]["ratio"] <= TARGETS["mmap_view_vs_copy"]
        cp_res = ratio_of("py_convert", "cp_view")
        cp_res["pass"] = cp_res["ratio"] >= TARGETS["cp_vs_python"]

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
               "vm_hwm_random": [x["vm_hwm"] for x in S["random"]],
               "vm_hwm_max": max(hwm_cat + hwm_dir),
               "vm_hwm_off_all": max(x["vm_hwm"] for x in S["sdafs_cat_off_all"] + S["sdafs_direct_off_all"]),
               "vm_hwm_mounted": med(x["vm_hwm_mounted"] for x in S["sdafs_cat"])}
        rss["limit_bytes"] = cache + TARGETS["rss_over_cache_mib"] * MiB if cache else None
        rss["pass"] = bool(cache) and rss["vm_hwm_max"] <= rss["limit_bytes"]

        return {"rows": rows, "random": random_res, "mmap": mmap_res, "cp": cp_res,
                "many": many_res, "rss": rss}

    def summarize_random(self, rnd):
        med = statistics.median
        out = {}
        for cls in ("all", "grouped", "plain"):
            sl = [x[cls]["slowdown"] for x in rnd if x[cls]["slowdown"] is not None]
            out[cls] = {
                "view_s": med(x[cls]["view_s"] for x in rnd),
                "source_s": med(x[cls]["source_s"] for x in rnd),
                "slowdown": med(sl) if sl else None, "slowdown_all": sl}
        pm = [x["plain_median_slowdown"] for x in rnd if x["plain_median_slowdown"] is not None]
        out["plain_median_per_tensor_slowdown"] = med(pm) if pm else None
        names = list(rnd[0]["per_tensor"])
        tb = {t["name"]: t["bytes"] for t in self.picks}
        out["per_tensor"] = [
            {"name": n, "bytes": tb[n],
             "view_s": med(x["per_tensor"][n][0] for x in rnd),
             "source_s": med(x["per_tensor"][n][1] for x in rnd)} for n in names]
        out["pass"] = out["all"]["slowdown"] <= TARGETS["random_slowdown"]
        out["pass_grouped"] = (out["grouped"]["slowdown"] or 0) <= TARGETS["random_slowdown"]
        out.update(self.info["random_tensors"])
        return out

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


# --------------------------------------------------------------- convert (no FUSE)

REF = os.path.join(REPO, "tests", "ref", "automodel_ref.py")


def run_rusage(argv, logpath):
    """Run argv to the end: (wall seconds, its peak RSS in bytes).  The peak
    comes from GNU time: a child forked from this script would carry the
    script's own high-water mark in wait4's figure."""
    with tempfile.NamedTemporaryFile("r") as rss, open(logpath, "a") as logf:
        t = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + argv,
                           stdout=subprocess.DEVNULL, stderr=logf, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        peak = int(rss.read().split()[-1]) * 1024
    if r.returncode != 0:
        raise RuntimeError("%s exited with %d; see %s" % (" ".join(argv), r.returncode, logpath))
    return wall, peak


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


class ConvertBench:
    """sdafs convert (no FUSE) against cp -r of the source to the same disk,
    in rounds of rotated order, and once the Python stand-in converter
    (tests/ref/automodel_ref.py --view: Automodel's from_hf in numpy)."""

    def __init__(self, a, build):
        self.a = a
        self.dir = os.path.join(build, "bench")
        self.logdir = os.path.join(self.dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.sdafs = os.path.join(build, "sdafs")
        self.out = os.path.join(self.dir, "convert-out")   # beside the source: the same disk
        self.samples = []

    def prepare(self):
        gen_args, expect = moe_layout(self.a.gb)
        tag = ("%g" % self.a.gb).replace(".", "p")
        self.src = os.path.join(self.dir, "moe-%sg" % tag)
        cached(self.src, [PY, GEN, self.src + ".tmp"] + gen_args,
               "Nemotron-H MoE, about %.2f GiB" % (expect / GiB))
        self.src_bytes = dir_bytes(self.src)
        plan = json.loads(subprocess.run([self.sdafs, "--inspect", "--json", "-o", "view=native", self.src],
                                         stdout=subprocess.PIPE, check=True).stdout)
        self.view_bytes = sum(f["size"] for f in plan["files"])
        self.view_shards = sum(1 for f in plan["files"] if f["kind"] == "weights")
        self.fs = subprocess.run(["stat", "-f", "-c", "%T", self.dir], stdout=subprocess.PIPE,
                                 text=True).stdout.strip()
        self.clear()
        os.sync()
        cat(shard_files(self.src))      # the source warm, as cp and convert will both find it

    def clear(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def measure(self, argv, name):
        self.clear()
        os.sync()                       # no earlier writeback in this timing
        time.sleep(self.a.settle)
        return run_rusage(argv, os.path.join(self.logdir, "convert-%s.log" % name))

    def variants(self):
        sd = [self.sdafs, "convert", "-q", "-o", "view=native"]
        return [
            ("cp", ["cp", "-r", self.src, self.out]),
            ("cp_sync", ["sh", "-c", 'cp -r "$1" "$2" && sync -f "$2"', "sh", self.src, self.out]),
            ("convert", sd + [self.src, self.out]),
            ("convert_j1", sd + ["-j", "1", self.src, self.out]),
        ]

    def run(self):
        vs = self.variants()
        for r in range(self.a.rounds):
            got = {}
            for i in range(len(vs)):
                name, argv = vs[(i + r) % len(vs)]
                t, rss = self.measure(argv, name)
                got[name] = {"s": t, "rss": rss}
                log("convert round %d: %-10s %.3f s" % (r + 1, name, t))
            self.samples.append(got)
        self.ref = None
        if not self.a.no_ref:
            log("the Python stand-in converter (once: it is slow)")
            t, rss = self.measure([PY, REF, self.src, "--view", self.out, "--quiet",
                                   "--shards", str(self.view_shards)], "python_ref")
            self.ref = {"s": t, "rss": rss, "bytes": dir_bytes(self.out)}
        self.clear()

    def summarize(self):
        med = statistics.median
        S = self.samples
        names = [n for n, _ in self.variants()]
        nbytes = {"cp": self.src_bytes, "cp_sync": self.src_bytes}
        thr = {n: [nbytes.get(n, self.view_bytes) / x[n]["s"] for x in S] for n in names}
        rows = {}
        for n in names:
            rows[n] = {"seconds": med(x[n]["s"] for x in S), "seconds_all": [x[n]["s"] for x in S],
                       "gib_s": med(thr[n]) / GiB,
                       "x_cp": med(thr[n][i] / thr["cp"][i] for i in range(len(S))),
                       "x_cp_sync": med(thr[n][i] / thr["cp_sync"][i] for i in range(len(S))),
                       "peak_rss": max(x[n]["rss"] for x in S)}
        cache = 256 * MiB
        for n in ("convert", "convert_j1"):
            rows[n]["rss_limit"] = cache + TARGETS["rss_over_cache_mib"] * MiB
            rows[n]["rss_pass"] = rows[n]["peak_rss"] <= rows[n]["rss_limit"]
        rows["convert"]["target"] = ">= 0.8 x cp -r"
        rows["convert"]["pass"] = rows["convert"]["x_cp"] >= 0.8
        if self.ref:
            cp_s = rows["cp"]["seconds"]
            self.ref.update({"gib_s": self.ref["bytes"] / self.ref["s"] / GiB,
                             "x_cp": (self.ref["bytes"] / self.ref["s"]) / (self.src_bytes / cp_s)})
        return {"source_bytes": self.src_bytes, "view_bytes": self.view_bytes, "dest_fs": self.fs,
                "dest": self.out, "rounds": rows, "python_ref": self.ref, "cpus": os.cpu_count()}


def fmt_convert(c):
    """The convert section: GiB/s of bytes written, ratios to cp -r in the same round."""
    if not c or "error" in c:
        return ["sdafs convert: not measured (%s)" % (c or {}).get("error", "no results")]
    out = ["sdafs convert (no FUSE) of the native view, %.2f GiB, into %s (%s, the source's disk); "
           "medians; x cp = throughput against cp -r of the source in the same round"
           % (c["view_bytes"] / GiB, c["dest"], c["dest_fs"])]
    labels = {"cp": "cp -r of the source", "cp_sync": "cp -r, then sync",
              "convert": "sdafs convert -j %d (synced)" % c["cpus"], "convert_j1": "sdafs convert -j 1 (synced)"}
    for n in ("cp", "cp_sync", "convert", "convert_j1"):
        r = c["rounds"][n]
        line = "  %-34s %7.3f s %6.2f GiB/s  %5.2f x cp  %5.2f x cp+sync  peak RSS %5.0f MiB" % (
            labels[n], r["seconds"], r["gib_s"], r["x_cp"], r["x_cp_sync"], r["peak_rss"] / MiB)
        if "rss_limit" in r:
            line += " (<= %.0f: %s)" % (r["rss_limit"] / MiB, "ok" if r["rss_pass"] else "MISSED")
        if "target" in r:
            line += "  target %s: %s" % (r["target"], "ok" if r["pass"] else "MISSED")
        out.append(line)
    ref = c.get("python_ref")
    if ref:
        out.append("  %-34s %7.3f s %6.2f GiB/s  %5.2f x cp  %16s peak RSS %5.0f MiB" % (
            "Python stand-in (tests/ref from_hf)", ref["s"], ref["gib_s"], ref["x_cp"], "", ref["rss"] / MiB))
    return out


def run_convert_section(a, build):
    """The convert section on its own (make bench-convert) or after the rest."""
    cb = ConvertBench(a, build)
    try:
        cb.prepare()
        cb.run()
        return cb.summarize()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        cb.clear()
        return {"error": str(e)}


# --------------------------------------------------------------- report

def fmt_rows(rows, keys):
    out = []
    for key in keys:
        r = rows[key]
        tgt = ""
        if "target" in r:
            tgt = "%s  %s" % (r["target"], "ok" if r["pass"] else "MISSED")
        rf = "%8.2f" % r["ratio_floor"] if "ratio_floor" in r and "floor" not in key else "%8s" % "-"
        cpu = "%7.2f" % r["daemon_cpu_s_per_gib"] if "daemon_cpu_s_per_gib" in r else "%7s" % "-"
        out.append(("%-38s %7.3f s %8.2f %7.2f %s %s  %s" % (r["label"], r["seconds"], r["gib_s"],
                                                             r["ratio_raw"], rf, cpu, tgt)).rstrip())
    return out


def fmt_random(rd, label):
    out = []
    for cls in ("all", "grouped", "plain"):
        c = rd[cls]
        if c["slowdown"] is None:
            continue
        tgt = ("  target <= 2.0x slower  %s" % ("ok" if rd["pass" if cls == "all" else "pass_grouped"]
                                                 else "MISSED")) if cls != "plain" else ""
        out.append("  %-8s %-14s view %8.4f s  source %8.4f s  slowdown %6.2fx%s" % (
            cls, label, c["view_s"], c["source_s"], c["slowdown"], tgt))
    return out


def fmt_table(res, meta):
    rows, m = res["rows"], meta["machine"]
    out = []
    kind = "VM" if m["vm"] else "machine"
    mem = int(m["mem_total"].split()[0]) * 1024 / GiB if m["mem_total"] else 0
    out.append("sdafs bench  %s  (%d-core %s, %.0f GiB RAM, Linux %s, libfuse %s%s)" % (
        time.strftime("%Y-%m-%d %H:%M", time.localtime(meta["started"])), m["cpus"], kind,
        mem, m["kernel"], m["libfuse"], "" if m["root"] else ", NOT root: read-ahead not raised"))
    out.append("%d rounds, variants interleaved, medians; ratios are throughput (1.00 = as fast as raw); "
               "cpu/GiB: the daemon's CPU seconds per GiB read" % meta["rounds"])
    share = meta["other_cpu_share"]
    out.append("CPU taken by everything but the bench and its daemons during the rounds: %.0f%% of the machine "
               "(load %.1f at start)%s" % (100 * share, meta["loadavg_start"][0],
                                           "  WARNING: busy machine, numbers not comparable"
                                           if share > 0.10 else ""))
    hdr = "%-38s %9s %8s %7s %8s %7s  %s" % ("", "time", "GiB/s", "x raw", "x floor", "cpu/GiB",
                                             "target")
    for ck, keys in (("checkpoint", ["raw", "floor_cat", "floor_direct", "floor_warm",
                                     "sdafs_cat"] + ["sdafs_cat_off_" + k for k in LEVERS_OFF]
                      + ["sdafs_direct"] + ["sdafs_direct_off_" + k for k in LEVERS_OFF]
                      + ["sdafs_warm", "sdafs_mat"]),
                     ("checkpoint512", ["raw512", "floor512_cat", "sdafs512_cat",
                                        "sdafs512_cat_off_all"])):
        c = meta[ck]
        out.append("")
        out.append("checkpoint: Nemotron-H MoE %.2f GiB in %d shards (hidden %d, 64 experts, moe inter %d, "
                   "%d MoE layers); view %.2f GiB in %d shards" % (
                       c["source_bytes"] / GiB, c["source_shards"], c["hidden"], c["moe_inter"],
                       c["moe_layers"], c["view_bytes"] / GiB, c["view_shards"]))
        out.append(hdr)
        out.append("-" * len(hdr))
        out.extend(fmt_rows(rows, keys))
    for k in ("sdafs_cat", "sdafs512_cat"):
        out.append("  %s (%s checkpoint): %.2f x raw, stretch target >= 0.3 x raw  %s" % (
            rows[k]["label"], "512-wide" if "512" in k else "first", rows[k]["ratio_raw"],
            "ok" if rows[k]["pass_raw"] else "MISSED"))
    rd = res["random"]["on"]
    out.append("")
    out.append("random tensors: %d (%d grouped expert tensors, %d plain), %.0f MiB; each read cold through a "
               "fresh mount (O_DIRECT) vs pread of its source bytes (warm)" % (
                   rd["n_grouped"] + rd["n_plain"], rd["n_grouped"], rd["n_plain"], rd["view_bytes"] / MiB))
    out.extend(fmt_random(rd, "now"))
    out.extend(fmt_random(res["random"]["off_all"], "levers off"))
    if rd["plain_median_per_tensor_slowdown"]:
        out.append("  plain tensors, median per-tensor slowdown %.1fx (small tensors: one FUSE round trip each)"
                   % rd["plain_median_per_tensor_slowdown"])
    mm = res["mmap"]
    out.append("")
    out.append("mmap loader (map each view file, copy all %d tensors out in random order, %.2f GiB):" % (
        mm["tensors"], mm["bytes"] / GiB))
    out.append("  fresh mount %.3f s vs materialized copy, pages cached, %.3f s: %.2fx the time  "
               "target <= 1.2x  %s" % (mm["view"]["s"], mm["view"]["base_s"], mm["view"]["ratio"],
                                       "ok" if mm["pass"] else "MISSED"))
    out.append("  %s: %.3f s, %.2fx" % (LEVER_LABELS["all"], mm["view_off_all"]["s"],
                                        mm["view_off_all"]["ratio"]))
    cp = res["cp"]
    out.append("")
    out.append("cp -r of the 512-wide checkpoint's native view + sync: %.3f s; tests/ref's Python "
               "converter (numpy from_hf, same view) + sync: %.3f s: cp is %.1fx faster  "
               "target >= 15x  %s" % (cp["base_s"], cp["s"], cp["ratio"], "ok" if cp["pass"] else "MISSED"))
    mn = res["many"]
    out.append("")
    out.append("mount + ls -l, %d shards / %d tensors (view: %d files): %.3f s (mount %.3f + ls %.3f)  "
               "target < 1 s  %s" % (mn["source_shards"], mn["tensors"], mn["view_files"], mn["seconds"],
                                     mn["mount_s"], mn["ls_s"], "ok" if mn["pass"] else "MISSED"))
    rs = res["rss"]
    out.append("peak RSS (VmHWM) of sdafs during cold reads: %.0f MiB (cat %.0f, O_DIRECT %.0f; %.0f after "
               "mounting; %.0f with the levers off), cache %.0f MiB -> limit %.0f MiB  %s" % (
                   rs["vm_hwm_max"] / MiB, max(rs["vm_hwm_cold_cat"]) / MiB,
                   max(rs["vm_hwm_cold_direct"]) / MiB, rs["vm_hwm_mounted"] / MiB,
                   rs["vm_hwm_off_all"] / MiB,
                   (rs["cache_bytes"] or 0) / MiB, (rs["limit_bytes"] or 0) / MiB,
                   "ok" if rs["pass"] else "MISSED"))
    for size, x in sorted(res.get("rss_sweep", {}).items(), key=lambda kv: kv[1]["cache_bytes"]):
        over = (x["vm_hwm"] - x["cache_bytes"]) / MiB
        out.append("  cache_size=%-4s cold cat %.3f s, VmHWM %.0f MiB (cache + %.0f MiB)  %s" % (
            size, x["s"], x["vm_hwm"] / MiB, over,
            "ok" if over <= TARGETS["rss_over_cache_mib"] else "over cache + %d MiB"
            % TARGETS["rss_over_cache_mib"]))
    out.append("")
    out.extend(fmt_ops(res.get("ops")))
    out.append("")
    out.extend(fmt_convert(res.get("convert")))
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
    p.add_argument("--settle", type=float, default=float(os.environ.get("BENCH_SETTLE") or 0.5),
                   help="seconds of pause after each variant (default 0.5)")
    p.add_argument("--only", choices=["convert"], help="only this section (make bench-convert)")
    p.add_argument("--no-ref", action="store_true", default=bool(os.environ.get("BENCH_NO_REF")),
                   help="convert section: leave out the (slow) Python stand-in converter")
    a = p.parse_args()
    if a.gb <= 0 or a.rounds < 1 or a.tensors < 2:
        p.error("need BENCH_GB > 0, BENCH_ROUNDS >= 1, BENCH_TENSORS >= 2")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(cleanup_all)
    if a.only == "convert":
        return main_convert(a)
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
        res["rss_sweep"] = b.rss_sweep()
    finally:
        cleanup_all()
    res["ops"] = b.run_ops()
    res["convert"] = run_convert_section(a, b.build)
    wall = c1[2] - c0[2]
    other = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1]))
    meta = {"started": started, "rounds": a.rounds, "settle_s": a.settle, "gb": a.gb, "tensors": a.tensors, "seed": a.seed,
            "machine": b.machine(), "checkpoint": b.info["checkpoint"],
            "checkpoint512": b.info["checkpoint512"], "levers_off": LEVERS_OFF,
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


def main_convert(a):
    """make bench-convert: the convert section alone, into DIR/bench/convert.json."""
    build = os.path.abspath(a.build)
    started = time.time()
    c0 = cpu_snapshot()
    res = run_convert_section(a, build)
    c1 = cpu_snapshot()
    wall = c1[2] - c0[2]
    other = max(0.0, (c1[0] - c0[0]) - (c1[1] - c0[1])) / (wall * (os.cpu_count() or 1))
    lines = fmt_convert(res)
    lines.append("CPU taken by everything but the bench during it: %.0f%% of the machine%s" % (
        100 * other, "  WARNING: busy machine, numbers not comparable" if other > 0.10 else ""))
    out = os.path.join(build, "bench", "convert.json")
    with open(out, "w") as f:
        json.dump({"started": started, "rounds": a.rounds, "gb": a.gb, "other_cpu_share": other,
                   "convert": res, "table": lines}, f, indent=1)
        f.write("\n")
    print("\n".join(lines))
    print("\n(%s; %.0f s)" % (out, time.time() - started))


if __name__ == "__main__":
    main()
