#!/bin/bash
# The GPU's life in a daemon (docs/design.md, "The GPU's life"): CUDA starts
# in the process that serves, after the daemon detached, so a mount without
# -f converts where it says it does.  .sdafs-stats names the backend that
# converted, why the CPU did when it did, and the daemon's pid; backend=cpu
# never loads CUDA's driver; backend=cuda without a usable GPU fails before
# anything is mounted, with the reason on stderr; -o mpi honours backend=.
# Runs the optimised build (CUDA does not start under AddressSanitizer's
# memory layout): here, without a GPU, the CPU converts and says why; on a
# GPU machine the same tests see the GPU convert in the daemon.
. "$(dirname "$0")/lib.sh"
FAST=${SDAFS_FAST_BUILD:-$REPO/build}
plan 14

$GEN "$T/src" --kind moe --experts 4 >/dev/null

mount_daemon() {        # mount_daemon MNT OPTS: sdafs without -f; its status
	mkdir -p "$1"
	"$FAST/sdafs" -o "$2" "$T/src" "$1" >"$1.log" 2>&1
}
adopt() {               # adopt MNT: $pid is its daemon's, cleaned up at exit
	pid=$(stat_field "$1" pid 2>/dev/null)
	pid=${pid:-0}
	MOUNTS+=("$1")
	PIDS+=("$pid")
}
gone_after_unmount() {  # gone_after_unmount MNT PID: unmount, the daemon ends
	fusermount3 -u "$1" || return 1
	for _ in $(seq 600); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
loads_cuda() { grep -q 'libcuda\.so' "/proc/$1/maps" 2>/dev/null; }

# --- backend=auto, detached -------------------------------------------------
mount_daemon "$T/auto" backend=auto
ok $? "without -f, backend=auto: sdafs detaches and exits 0" || diag "$T/auto.log"
adopt "$T/auto"
[ "$pid" -gt 1 ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = sdafs ] && [ "$pid" != $$ ]
ok $? "the statistics come from the detached daemon (pid $pid)"
$CHECK "$T/auto" "$T/src" >"$T/auto.check" 2>&1
ok $? "the daemon's view equals the reference" || diag "$T/auto.check"
backend=$(stat_field "$T/auto" backend)
if [ "$backend" = cuda ]; then
	[ "$(stat_field "$T/auto" bytes_converted_cuda)" -gt 0 ] && loads_cuda "$pid"
	ok $? "the GPU converted in the daemon: $(stat_field "$T/auto" gpu.device)"
else
	reason=$(stat_field "$T/auto" backend_reason)
	[ "$backend" = cpu ] && [ "$(stat_field "$T/auto" bytes_converted_cpu)" -gt 0 ] &&
		echo "$reason" | grep -q "no usable GPU\|built without CUDA"
	ok $? "the CPU converted, and .sdafs-stats says why: $reason"
fi
gone_after_unmount "$T/auto" "$pid"
ok $? "unmounting ends the daemon"

# --- backend=cpu: CUDA is never started ---------------------------------------
mount_daemon "$T/cpu" backend=cpu
adopt "$T/cpu"
cat "$T"/cpu/*.safetensors >/dev/null
[ "$(stat_field "$T/cpu" backend)" = cpu ] && [ "$(stat_field "$T/cpu" backend_reason)" = backend=cpu ] &&
	[ "$(stat_field "$T/cpu" bytes_converted_cpu)" -gt 0 ]
ok $? "backend=cpu: the CPU converts, and .sdafs-stats says it was asked to"
! loads_cuda "$pid"
ok $? "backend=cpu: the daemon never loads CUDA's driver"
gone_after_unmount "$T/cpu" "$pid"

# --- backend=cuda, detached ---------------------------------------------------
if mount_daemon "$T/cuda" backend=cuda; then
	adopt "$T/cuda"
	cat "$T"/cuda/*.safetensors >/dev/null
	[ "$(stat_field "$T/cuda" backend)" = cuda ] && [ "$(stat_field "$T/cuda" bytes_converted_cuda)" -gt 0 ] &&
		[ "$(stat_field "$T/cuda" gpu.fallback_chunks)" = 0 ]
	ok $? "backend=cuda without -f: every chunk converts on the GPU, in the daemon" || diag "$T/cuda/.sdafs-stats"
	gone_after_unmount "$T/cuda" "$pid"
else
	! is_mounted "$T/cuda" && grep -q "backend=cuda: .*\(no usable GPU\|built without CUDA\)" "$T/cuda.log"
	ok $? "backend=cuda without a usable GPU: nothing mounted, the reason on stderr" || diag "$T/cuda.log"
fi

# --- options -------------------------------------------------------------------
mkdir -p "$T/bad"
"$FAST/sdafs" -f -o gpu_mem=lots "$T/src" "$T/bad" 2>"$T/bad.err"
[ $? -ne 0 ] && grep -q "gpu_mem=lots: expected a size" "$T/bad.err" && ! is_mounted "$T/bad"
ok $? "gpu_mem= that is not a size is refused, naming it" || diag "$T/bad.err"
"$FAST/sdafs" -f -o gpu_pinned=0 "$T/src" "$T/bad" 2>"$T/bad.err"
[ $? -ne 0 ] && grep -q "gpu_pinned=0: expected a size" "$T/bad.err"
ok $? "gpu_pinned=0 is refused" || diag "$T/bad.err"

# --- -o mpi honours backend= -------------------------------------------------------
if ! command -v mpirun >/dev/null || ! ldd "$FAST/sdafs" | grep -q libmpi; then
	for _ in 1 2 3 4; do TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip sdafs was built without MPI"; done
	done_testing
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SDAFS_MPI_TIMEOUT=20
mkdir -p "$T/m-0" "$T/m-1"
start_job() {   # start_job OPTS: 2 ranks mount $T/m-%r; the job's status if it ends first
	timeout 120 mpirun --oversubscribe -np 2 "$FAST/sdafs" -f -o "$1" "$T/src" "$T/m-%r" >"$T/job.log" 2>&1 &
	job=$!
	for _ in $(seq 300); do
		is_mounted "$T/m-0" && is_mounted "$T/m-1" && return 0
		kill -0 $job 2>/dev/null || { wait $job; return 1; }
		sleep 0.1
	done
	return 1
}
stop_job() { fusermount3 -u "$T/m-0"; fusermount3 -u "$T/m-1"; wait $job; }

start_job mpi,backend=cpu
ok $? "-o mpi,backend=cpu: both ranks mount" || diag "$T/job.log"
[ "$(stat_field "$T/m-0" backend_reason)" = backend=cpu ] && [ "$(stat_field "$T/m-1" backend_reason)" = backend=cpu ]
ok $? "-o mpi,backend=cpu: each rank converts on the CPU because it was asked to"
stop_job
if start_job mpi,backend=cuda; then
	ndev=$(stat_field "$T/m-0" gpu.device | sed -n 's/.*GPU [0-9]* of \([0-9]*\)$/\1/p')
	[ "$(stat_field "$T/m-0" backend)" = cuda ] && [ "$(stat_field "$T/m-1" backend)" = cuda ] &&
		stat_field "$T/m-1" gpu.device | grep -q "GPU $((1 % ${ndev:-1})) of"
	ok $? "-o mpi,backend=cuda: both ranks on the GPU, rank 1 on device 1 mod the devices"
	cat "$T"/m-1/*.safetensors >/dev/null
	[ "$(stat_field "$T/m-1" bytes_converted_cuda)" -gt 0 ]
	ok $? "-o mpi,backend=cuda: rank 1 converts on its GPU"
	stop_job
else
	[ "$(grep -c "backend=cuda: .*\(no usable GPU\|built without CUDA\)" "$T/job.log")" -ge 1 ]
	ok $? "-o mpi,backend=cuda without a usable GPU: the job fails, saying why" || diag "$T/job.log"
	! is_mounted "$T/m-0" && ! is_mounted "$T/m-1"
	ok $? "and no rank stays mounted"
fi
done_testing
