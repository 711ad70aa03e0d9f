#!/bin/bash
# gpu-check.sh — the checks of the CUDA backend that need an NVIDIA GPU, in
# about ten minutes, with a summary at the end (exit 1 when one failed).
#
#   scripts/gpu-check.sh [--out DIR] [--part 1|2] [--use-pack]   on the GPU machine
#   scripts/gpu-check.sh --pack                                  here, before going there
#
# On the GPU machine it builds the tree (make all asan gpu-tests) when the
# build's libraries are installed there; when they are not (a machine with
# CUDA but without libfuse3/cJSON/PCRE2/cmocka), it runs the binaries of
# build/gpu-pack instead, which --pack makes on a machine that builds: the
# optimised and sanitizer sdafs, test_gpu, the stress driver, bench/ops, the
# shared libraries they load and fusermount3.  Carry build/gpu-pack along.
#
# Steps, each with a time limit and its whole log under DIR (default
# build/gpu-check): the GPU and tools seen; build; test_gpu (CPU and GPU
# bytes for every operation); the stress driver (stale errors, out of
# memory, fork, 16 threads under a small bound, declines, a poisoned
# context, the self-check; with --large, chunks past 4 GiB); the daemon-mode mount
# (20-gpu-life.t: CUDA in the detached daemon); 14-quantized.t (FP8, MXFP4,
# backend=cuda); bench/ops (the CUDA column); compute-sanitizer memcheck,
# racecheck and synccheck over test_gpu where it is installed; and whether
# the sanitizer build's sdafs starts CUDA (docs/design.md, defect 4).
# Part 1 (about 4 minutes after the build): test_gpu, the stress driver,
# the two mounts, the sanitizer build; part 2 (about 5): the two chunks past
# 4 GiB, bench/ops, compute-sanitizer.  Both by default; one run of the
# device tool may take 10 minutes at most, so run --part 1 and --part 2 as
# two calls where time is short.  --use-pack runs build/gpu-pack even where
# the tree could be built.
set -u
# --tap FILE: run a TAP producer (a binary or a .t script), through prove
# where there is one (for step, which runs commands under timeout)
if [ "${1:-}" = --tap ]; then
	if command -v prove >/dev/null; then
		case $2 in *.t) exec prove -v "$2" ;; *) exec prove -v --exec '' "$2" ;; esac
	fi
	case $2 in *.t) exec bash "$2" ;; *) exec "$2" ;; esac
fi
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=$REPO/build/gpu-check
PART=all
PACK=0
USE_PACK=0
while [ $# -gt 0 ]; do
	case $1 in
	--out) OUT=$2; shift ;;
	--part) PART=$2; shift ;;
	--quick) PART=1 ;;
	--pack) PACK=1 ;;
	--use-pack) USE_PACK=1 ;;
	*) echo "usage: $0 [--out DIR] [--part 1|2] [--use-pack] | --pack" >&2; exit 2 ;;
	esac
	shift
done

# --- here: pack what the GPU machine may not be able to build ------------------
if [ $PACK = 1 ]; then
	P=build/gpu-pack
	make -j"$(nproc)" all asan gpu-tests build/bench/ops >/dev/null || exit 1
	rm -rf "$P" && mkdir -p "$P/fast/tests" "$P/fast/bench" "$P/asan" "$P/lib" "$P/bin"
	cp build/sdafs build/mount.sdafs "$P/fast/" && cp build/asan/sdafs "$P/asan/"
	cp build/tests/test_gpu build/tests/gpu_stress "$P/fast/tests/"
	cp build/bench/ops "$P/fast/bench/"
	cp "$(command -v fusermount3)" "$P/bin/"
	ldd "$P"/fast/sdafs "$P"/asan/sdafs "$P"/fast/tests/* "$P"/fast/bench/ops |
		awk '/=> \// { print $3 }' | sort -u | grep -Ev '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' |
		xargs -r cp -L -t "$P/lib/"
	du -sh "$P"
	echo "carry build/gpu-pack (the run tool's limit is 64 MiB)"
	exit 0
fi

mkdir -p "$OUT"
declare -a NAMES RESULTS
FAILED=0
step() {        # step NAME SECONDS COMMAND...: run, log, record
	local name=$1 limit=$2 t0=$SECONDS rc
	shift 2
	echo "== $name (at most ${limit}s)"
	timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
	rc=$?
	tail -n 25 "$OUT/$name.log"
	local verdict=pass
	[ $rc -ne 0 ] && verdict="FAIL (status $rc)" && FAILED=1
	[ $rc -eq 124 ] && verdict="FAIL (over ${limit}s)"
	NAMES+=("$name")
	RESULTS+=("$verdict, $((SECONDS - t0))s")
}
note() {        # note NAME TEXT: a result that is information, not a verdict
	NAMES+=("$1")
	RESULTS+=("$2")
}

# --- what is there --------------------------------------------------------------
{
	nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
	command -v nvcc && nvcc --version | tail -1
	command -v compute-sanitizer
	ls -l /dev/fuse; command -v fusermount3; nproc; free -g
} >"$OUT/machine.log" 2>&1
cat "$OUT/machine.log"

PYTHON=""
for p in /usr/bin/python3 python3 /opt/torch/.venv/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PYTHON=$(command -v "$p"); break; fi
done
export SDAFS_PYTHON=${PYTHON:-/usr/bin/python3}
# the real clients (31-real-clients.t) need torch, safetensors and transformers
CLIENT_PYTHON=""
for p in python3 /usr/bin/python3 /opt/torch/.venv/bin/python3; do
	if command -v "$p" >/dev/null &&
	   "$p" -c 'import numpy, torch, safetensors, transformers' 2>/dev/null; then
		CLIENT_PYTHON=$(command -v "$p"); break
	fi
done

# --- build here, or use the pack --------------------------------------------------
if [ $USE_PACK = 0 ] && pkg-config --exists fuse3 libcjson libpcre2-8 2>/dev/null &&
   [ -e /usr/include/cmocka.h ] && command -v nvcc >/dev/null; then
	step build 400 make -j"$(nproc)" all asan gpu-tests build/bench/ops
	FAST=$REPO/build ASAN=$REPO/build/asan
elif [ -x build/gpu-pack/fast/sdafs ]; then
	note build "not built here: build/gpu-pack used"
	export LD_LIBRARY_PATH=$REPO/build/gpu-pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export PATH=$PATH:$REPO/build/gpu-pack/bin
	FAST=$REPO/build/gpu-pack/fast ASAN=$REPO/build/gpu-pack/asan
else
	echo "gpu-check: cannot build here and no build/gpu-pack: run scripts/gpu-check.sh --pack on a machine that builds, and carry build/gpu-pack" >&2
	exit 1
fi

# --- part 1: the GPU's own tests and the mounts (about 4 minutes) -------------------
export CMOCKA_MESSAGE_OUTPUT=TAP SDAFS_BUILD=$ASAN SDAFS_FAST_BUILD=$FAST
if [ "$PART" != 2 ]; then
	step test_gpu 120 "$SELF" --tap "$FAST/tests/test_gpu"
	step stress 240 "$FAST/tests/gpu_stress"
	if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
		step daemon_mode 180 "$SELF" --tap tests/integration/20-gpu-life.t
		step quantized 300 "$SELF" --tap tests/integration/14-quantized.t
		if [ -n "$CLIENT_PYTHON" ]; then
			step real_clients 240 env SDAFS_PYTHON="$CLIENT_PYTHON" "$SELF" --tap \
				tests/integration/31-real-clients.t
		else
			note real_clients "skipped: no python with torch, safetensors and transformers"
		fi
	else
		note daemon_mode "skipped: no /dev/fuse or fusermount3 on this machine"
	fi
fi

# --- part 2: chunks past 4 GiB, the CUDA column, compute-sanitizer (about 5) --------
if [ "$PART" != 1 ]; then
	step stress_large_cast 240 "$FAST/tests/gpu_stress" --large --only large_cast
	step stress_large_transpose 240 "$FAST/tests/gpu_stress" --large --only large_transpose
	step bench_ops 300 "$FAST/bench/ops" --json "$OUT/ops.json"
	if command -v compute-sanitizer >/dev/null; then
		for tool in memcheck racecheck synccheck; do
			step "sanitizer_$tool" 200 compute-sanitizer --tool "$tool" --error-exitcode 1 \
				"$FAST/tests/test_gpu"
		done
	else
		note compute_sanitizer "not installed"
	fi
fi

# --- defect 4: does the sanitizer build start CUDA (protect_shadow_gap=0)? --------
if [ "$PART" != 2 ] && [ -e /dev/fuse ] && [ -n "$PYTHON" ]; then
	T=$(mktemp -d)
	"$PYTHON" tests/fixtures/gen_checkpoint.py "$T/src" --kind moe --experts 2 >/dev/null 2>&1
	mkdir -p "$T/mnt"
	"$ASAN/sdafs" -f -o backend=cuda "$T/src" "$T/mnt" >"$OUT/asan_cuda.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		awk -v m="$T/mnt" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if cat "$T"/mnt/*.safetensors >/dev/null 2>&1 && grep -q '"backend": *"cuda"' "$T/mnt/.sdafs-stats"; then
		note asan_cuda "the sanitizer build converts on the GPU"
	else
		note asan_cuda "the sanitizer build does not convert on the GPU: $(head -c 300 "$OUT/asan_cuda.log" | tr '\n' ' ')"
	fi
	fusermount3 -u "$T/mnt" 2>/dev/null
	wait $pid 2>/dev/null
	grep -q "ERROR: AddressSanitizer\|runtime error\|LeakSanitizer" "$OUT/asan_cuda.log" &&
		note asan_cuda_log "the sanitizer build reported errors: see asan_cuda.log" && FAILED=1
	rm -rf "$T"
fi

echo
echo "== summary ($(nvidia-smi -L 2>/dev/null | head -1 || true))"
for i in "${!NAMES[@]}"; do printf '%-22s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"; done | tee "$OUT/summary.txt"
exit $FAILED
