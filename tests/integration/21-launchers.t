#!/bin/bash
# Under a launcher, without -o mpi: the rank comes from OMPI_COMM_WORLD_RANK,
# PMI_RANK or SLURM_PROCID (in that order) unless ep_rank is given, the size
# from the same launcher's OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS
# when %r or ep_size=auto asks for it, and an explicit ep_size with a
# launcher rank works (the README's srun line).  A per-rank mount point
# that is missing is made, as mount --mkdir does, and removed at unmount;
# one that was there stays.  Every refusal names the variables it saw.
# The daemons run detached, as the README runs them.
. "$(dirname "$0")/lib.sh"
plan 32

LAUNCHER_VARS="OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS"
# A detached daemon's sanitizer report goes to a file, checked at the end.
export ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$T/asan"
DETACHED=()
trap 'for m in "${DETACHED[@]}"; do fusermount3 -u "$m" 2>/dev/null; done; cleanup' EXIT

launcher() {    # launcher VAR=VALUE... -- SDAFS-ARGS...: sdafs with only those launcher variables
	local unset=() vars=()
	for v in $LAUNCHER_VARS; do unset+=(-u "$v"); done
	while [ "$1" != "--" ]; do vars+=("$1"); shift; done
	shift
	env "${unset[@]}" "${vars[@]}" "$SDAFS" "$@"
}
gone() {        # gone DIR: wait until the detached daemon has removed DIR
	for _ in $(seq 200); do [ -e "$1" ] || return 0; sleep 0.05; done
	return 1
}
slice_of() {    # slice_of MNT RANK SIZE: the view is that EP rank's slice
	$CHECK "$1" "$T/src" --ep-rank "$2" --ep-size "$3" >"$1.check" 2>&1 || { diag "$1.check"; return 1; }
}
inspect_slice() {       # inspect_slice VAR=VALUE... -- OPTIONS: the "this view" experts --inspect shows
	launcher "$@" | head -1 | grep -o 'this view: [0-9.]*'
}

$GEN "$T/src" --kind moe --experts 6 >/dev/null

for l in "OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE ompi" "PMI_RANK PMI_SIZE pmi" "SLURM_PROCID SLURM_NTASKS slurm"; do
	read -r rv sv name <<<"$l"
	mnt="$T/$name-1"
	launcher "$rv=1" "$sv=3" -- "$T/src" "$T/$name-%r" 2>"$T/$name.err"
	is_mounted "$mnt" && DETACHED+=("$mnt") && slice_of "$mnt" 1 3
	ok $? "$rv=1 $sv=3: %r is 1, the missing mount point is made, the view is rank 1 of 3's slice" || diag "$T/$name.err"
	fusermount3 -u "$mnt"
	gone "$mnt"
	ok $? "$rv: the mount point sdafs made is removed at unmount"
done

launcher SLURM_PROCID=2 SLURM_NTASKS=3 -- -o ep_size=3 "$T/src" "$T/srun-%r" 2>"$T/srun.err"
is_mounted "$T/srun-2" && DETACHED+=("$T/srun-2") && slice_of "$T/srun-2" 2 3
ok $? "srun's SLURM_PROCID=2 SLURM_NTASKS=3 with -o ep_size=3 (the README's srun line) mounts rank 2's slice" || diag "$T/srun.err"
fusermount3 -u "$T/srun-2"; gone "$T/srun-2"

is "$(inspect_slice SLURM_PROCID=1 SLURM_NTASKS=8 -- --inspect -o ep_size=2 "$T/src")" "this view: 3..5" \
	"an explicit ep_size=2 with a launcher rank of 8 ranks: rank 1 of 2 (experts 3..5)"
is "$(inspect_slice PMI_RANK=1 PMI_SIZE=3 -- --inspect -o ep_size=auto "$T/src")" "this view: 2..3" \
	"ep_size=auto: PMI_RANK=1 of PMI_SIZE=3 (experts 2..3), no %r needed"
is "$(inspect_slice SLURM_PROCID=2 SLURM_NTASKS=3 -- --inspect -o ep_rank=0,ep_size=auto "$T/src")" "this view: 0..1" \
	"ep_rank=0 beats the launcher's rank; ep_size=auto still takes its size"
is "$(inspect_slice OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 SLURM_PROCID=0 SLURM_NTASKS=3 -- --inspect -o ep_size=auto "$T/src")" \
	"this view: 3..5" "OpenMPI's variables come before Slurm's (rank 1 of 2, not 0 of 3)"
is "$(inspect_slice PMI_RANK=0 PMI_SIZE=2 SLURM_PROCID=1 SLURM_NTASKS=2 -- --inspect -o ep_size=auto "$T/src")" \
	"this view: 0..2" "PMI's variables come before Slurm's"
is "$(inspect_slice SLURM_PROCID=1 SLURM_NTASKS=3 -- --inspect "$T/src")" "" \
	"a launcher alone asks for nothing: no %r, no ep_ option, every expert"

mkdir -p "$T/kept-0"
launcher OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 -- "$T/src" "$T/kept-%r" 2>"$T/kept.err"
is_mounted "$T/kept-0" && DETACHED+=("$T/kept-0")
ok $? "a per-rank mount point that exists is used" || diag "$T/kept.err"
fusermount3 -u "$T/kept-0"
for _ in $(seq 100); do pgrep -f "$T/kept-%r" >/dev/null || break; sleep 0.05; done
[ -d "$T/kept-0" ]
ok $? "and stays after unmount: sdafs did not make it"

launcher SLURM_PROCID=0 SLURM_NTASKS=1 -- "$T/src" "$T/deep/er/d-%r" 2>"$T/deep.err"
is_mounted "$T/deep/er/d-0" && DETACHED+=("$T/deep/er/d-0")
ok $? "missing parents of a per-rank mount point are made too (mkdir -p)" || diag "$T/deep.err"
fusermount3 -u "$T/deep/er/d-0"
gone "$T/deep"
ok $? "and every directory sdafs made is removed at unmount"

(cd "$T" && launcher SLURM_PROCID=0 SLURM_NTASKS=1 -- src "rel-%r" 2>"$T/rel.err")
is_mounted "$T/rel-0" && DETACHED+=("$T/rel-0")
ok $? "a relative per-rank mount point is made in the current directory" || diag "$T/rel.err"
fusermount3 -u "$T/rel-0"
gone "$T/rel-0"
ok $? "and removed at unmount, though the daemon has left that directory (chdir /)"

# refusals: exit status, one message naming what was seen, nothing left behind
refuse() {      # refuse DESCRIPTION MESSAGE VAR=VALUE... -- ARGS...
	local what=$1 msg=$2
	shift 2
	launcher "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	[ $rc -ne 0 ] && grep -qF -- "$msg" "$T/err" && [ "$(wc -l <"$T/err")" -eq 1 ]
	ok $? "$what" || { echo "#   exit $rc, expected the one line: $msg"; diag "$T/err"; }
}
refuse "SLURM_PROCID without SLURM_NTASKS: says SLURM_PROCID is set and SLURM_NTASKS is not" \
	"SLURM_PROCID=3 is set but SLURM_NTASKS is not, so the number of ranks is unknown; give ep_size=N" \
	SLURM_PROCID=3 -- "$T/src" "$T/r-%r"
[ ! -e "$T/r-3" ]
ok $? "and makes no mount point"
refuse "%r with no launcher: names the three rank variables" \
	"%r in $T/r-%r is the rank, but none of OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID is set" \
	-- "$T/src" "$T/r-%r"
refuse "ep_size=8 with no launcher and no ep_rank: says where the rank would come from" \
	"ep_size=8 without ep_rank takes the rank from the launcher, but none of OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID is set; give ep_rank=R" \
	-- -o ep_size=8 "$T/src" "$T/r-%r"
refuse "a launcher rank past ep_size: says which number came from where" \
	"rank 8 (SLURM_PROCID=8) is not below the number of ranks 8 (ep_size=8)" \
	SLURM_PROCID=8 SLURM_NTASKS=9 -- -o ep_size=8 "$T/src" "$T/r-%r"
refuse "a launcher rank past the launcher's size" \
	"rank 4 (OMPI_COMM_WORLD_RANK=4) is not below the number of ranks 4 (OMPI_COMM_WORLD_SIZE=4)" \
	OMPI_COMM_WORLD_RANK=4 OMPI_COMM_WORLD_SIZE=4 -- "$T/src" "$T/r-%r"
refuse "a rank variable that is not a number" "PMI_RANK=x is not a rank (a number >= 0)" \
	PMI_RANK=x PMI_SIZE=2 -- "$T/src" "$T/r-%r"
refuse "a size variable that is not a number of ranks" \
	"OMPI_COMM_WORLD_SIZE=0 is not a number of ranks (>= 1); give ep_size=N" \
	OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=0 -- "$T/src" "$T/r-%r"
refuse "ep_size=auto with no launcher: names the three rank variables" \
	"ep_size=auto takes the rank and the number of ranks from the launcher, but none of OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID is set; give ep_rank=R,ep_size=N" \
	-- --inspect -o ep_size=auto "$T/src"
refuse "ep_rank=0,ep_size=auto with no launcher: names the three size variables" \
	"ep_size=auto is the launcher's number of ranks, but none of OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS is set; give ep_size=N" \
	-- --inspect -o ep_rank=0,ep_size=auto "$T/src"
refuse "ep_rank without ep_size (and no %r)" "ep_rank=1 needs ep_size=N (or ep_size=auto under a launcher)" \
	-- --inspect -o ep_rank=1 "$T/src"
refuse "ep_size that is not a number" "ep_size=lots: expected a number of ranks >= 1, or auto (the launcher's)" \
	-- --inspect -o ep_size=lots "$T/src"

ls "$T"/asan* >/dev/null 2>&1 && cat "$T"/asan* | sed 's/^/# /' | head -40
[ ! -e "$(ls "$T"/asan* 2>/dev/null | head -1)" ]
ok $? "no sanitizer report from any detached daemon"
done_testing
