#!/bin/bash
# Distributed mode under mpirun, one daemon and one mount per rank: each
# rank's view equals the reference's slice for that rank (uneven splits
# included); only rank 0 reads headers; with prefetch the ranks together read
# each shared tensor once; a rank that cannot mount, or that dies, makes the
# whole job exit instead of hanging, and leaves no mount behind.
. "$(dirname "$0")/lib.sh"
FAST=${SDAFS_FAST_BUILD:-$REPO/build}
plan 18
if ! command -v mpirun >/dev/null || ! ldd "$FAST/sdafs" | grep -q libmpi; then
	for i in $(seq 18); do echo "ok $i # skip sdafs was built without MPI"; done
	exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SDAFS_MPI_TIMEOUT=20
MPIRUN="timeout 120 mpirun --oversubscribe"

job_pid=
start_job() {   # start_job NP OPTS SRC: mounts $T/m-%r
	local np=$1 opts=$2 src=$3
	$MPIRUN -np "$np" "$FAST/sdafs" -f -o "$opts" "$src" "$T/m-%r" >"$T/job.log" 2>&1 &
	job_pid=$!
	for _ in $(seq 300); do
		local up=0
		for r in $(seq 0 $((np - 1))); do is_mounted "$T/m-$r" && up=$((up + 1)); done
		[ $up = "$np" ] && return 0
		kill -0 $job_pid 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
stop_job() {    # stop_job NP: unmount every rank, wait for mpirun
	for r in $(seq 0 $(($1 - 1))); do fusermount3 -u "$T/m-$r" 2>/dev/null || fusermount3 -uz "$T/m-$r" 2>/dev/null; done
	wait $job_pid
}
bytes_read() {  # sum of source_bytes_read over ranks
	local sum=0
	for r in $(seq 0 $(($1 - 1))); do sum=$((sum + $(stat_field "$T/m-$r" source_bytes_read))); done
	echo $sum
}
mkdir -p "$T"/m-0 "$T"/m-1 "$T"/m-2 "$T"/m-3

$GEN "$T/src" --kind moe --experts 6 --mtp --shards 3 >/dev/null
start_job 2 mpi "$T/src"
ok $? "mpirun -np 2: every rank mounts its own view"
for r in 0 1; do
	$CHECK "$T/m-$r" "$T/src" --ep-rank $r --ep-size 2 >"$T/c$r" 2>&1
	ok $? "rank $r of 2 holds exactly its experts (reference slice)" || diag "$T/c$r"
done
[ "$(stat_field "$T/m-0" header_bytes_read)" -gt 0 ] && [ "$(stat_field "$T/m-1" header_bytes_read)" = 0 ]
ok $? "only rank 0 read the headers"
stop_job 2
ok $? "unmounting every rank ends the job with status 0"

start_job 4 mpi,prefetch "$T/src"
ok $? "mpirun -np 4 with prefetch: every rank mounts (6 experts: 2,2,1,1)"
for r in 0 1 2 3; do cat "$T/m-$r"/*.safetensors >/dev/null; done
total=$(bytes_read 4)
bad=0
for r in 0 1 2 3; do
	$CHECK "$T/m-$r" "$T/src" --ep-rank $r --ep-size 4 >"$T/p$r" 2>&1 || { bad=1; diag "$T/p$r"; }
done
ok $bad "each of the 4 ranks holds exactly its (uneven) slice"
stop_job 4
mount_view "$T/src" "$T/one"
cat "$T"/one/*.safetensors >/dev/null
single=$(stat_field "$T/one" source_bytes_read)
unmount_view "$T/one"
extra=$((total - ${single:-0}))
[ $extra -ge 0 ] && [ $extra -le 4096 ]
ok $? "4 ranks reading their whole views read the shared tensors once: $total bytes vs $single for one full view"

rmdir "$T/m-1"
touch "$T/m-1"          # not a directory: rank 1 cannot mount there
$MPIRUN -np 2 "$FAST/sdafs" -f -o mpi "$T/src" "$T/m-%r" >"$T/fail.log" 2>&1
[ $? -ne 0 ]
ok $? "a rank that cannot mount makes the job exit non-zero"
grep -q "rank 1 failed" "$T/fail.log" && grep -q "cannot mount" "$T/fail.log"
ok $? "rank 0 says rank 1 failed, and rank 1 says why" || diag "$T/fail.log"
! is_mounted "$T/m-0"
ok $? "and rank 0 did not stay mounted"
rm -f "$T/m-1"
mkdir -p "$T/m-1"

start_job 2 mpi "$T/src"
victim=$(pgrep -P "$(pgrep -P $job_pid -f orted || echo $job_pid)" -f "sdafs -f" | tail -1)
[ -z "$victim" ] && victim=$(pgrep -f "$T/src" | tail -1)
kill -KILL "$victim"
for _ in $(seq 200); do kill -0 $job_pid 2>/dev/null || break; sleep 0.1; done
! kill -0 $job_pid 2>/dev/null
ok $? "a rank killed with SIGKILL ends the job instead of leaving it hanging"
fusermount3 -u "$T/m-0" 2>/dev/null; fusermount3 -u "$T/m-1" 2>/dev/null
! is_mounted "$T/m-0" && ! is_mounted "$T/m-1"
ok $? "and every mount point can be cleaned up"
# A rank reads only what its view needs: one whole view's source bytes less
# the experts of the other ranks (rank 1 of 4 holds experts 2 and 3 of 6).
mount_view "$T/src" "$T/r1" -o ep_rank=1,ep_size=4
cat "$T"/r1/*.safetensors >/dev/null
others=$($PY - "$T/src" <<'PY'
import json, os, re, struct, sys
d = sys.argv[1]
total = 0
for f in os.listdir(d):
    if not f.endswith(".safetensors"):
        continue
    with open(os.path.join(d, f), "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        for k, v in json.loads(fh.read(n)).items():
            m = re.search(r"\.experts\.(\d+)\.", k)
            if m and int(m.group(1)) not in (2, 3) and "gate_proj" not in k:
                total += v["data_offsets"][1] - v["data_offsets"][0]
print(total)
PY
)
is "$(stat_field "$T/r1" source_bytes_read)" "$((single - others))" "ep_rank=1,ep_size=4 reads exactly its view's bytes: all but the other ranks' experts"
unmount_view "$T/r1"

# Without -o mpi, %r and the EP slice come from the launcher's environment.
mkdir -p "$T/env-2"
env -u OMPI_COMM_WORLD_RANK SLURM_PROCID=2 SLURM_NTASKS=3 "$SDAFS" "$T/src" "$T/env-%r"
is_mounted "$T/env-2"
ok $? "SLURM_PROCID=2, SLURM_NTASKS=3: %r in the mount point becomes 2"
$CHECK "$T/env-2" "$T/src" --ep-rank 2 --ep-size 3 >"$T/env.check" 2>&1
ok $? "and the view is rank 2 of 3's slice" || diag "$T/env.check"
fusermount3 -u "$T/env-2"

# A PEFT adapter: every rank shows the whole adapter (recombining expert
# LoRA needs every expert), though each rank's default is its EP slice.
$PY "$REPO/tests/fixtures/gen_peft.py" "$T/peft" --layout native --dora >/dev/null
start_job 2 mpi "$T/peft"
ok $? "a PEFT adapter mounts on both ranks under mpirun"
bad=0
for r in 0 1; do
	$PY "$REPO/tests/ref/peft_ref.py" check "$T/m-$r" "$T/peft" >"$T/peft-$r.check" 2>&1 || bad=1
done
ok $bad "each rank's view is the whole adapter, equal to the reference" || diag "$T/peft-0.check" "$T/peft-1.check"
stop_job 2
done_testing
