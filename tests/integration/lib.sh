# lib.sh — shared helpers for the integration tests (sourced, bash).
#
# Every test mounts for real on its own temporary mount point, runs the
# daemon in the foreground under its own log, and unmounts in an EXIT trap,
# stopping only the daemon it started.  The daemon is the sanitizer build
# (SDAFS_BUILD), so a memory error anywhere fails the test through its log.

set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${SDAFS_BUILD:-$REPO/build}
SDAFS=$BUILD/sdafs
PY=${SDAFS_PYTHON:-/usr/bin/python3}     # a python3 with numpy (scripts/gpu-check.sh may name another)
GEN="$PY $REPO/tests/fixtures/gen_checkpoint.py"
REF="$PY $REPO/tests/ref/automodel_ref.py"
CHECK="$PY $REPO/tests/ref/check_view.py"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

T=$(mktemp -d /tmp/sdafs-test.XXXXXX)
TAP_N=0
TAP_FAILED=0
MOUNTS=()
PIDS=()

plan() { echo "1..$1"; }

ok() {          # ok CONDITION-EXIT-STATUS DESCRIPTION
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TAP_N - $2"
	else
		echo "not ok $TAP_N - $2"
		TAP_FAILED=$((TAP_FAILED + 1))
		return 1
	fi
}

is() {          # is GOT EXPECTED DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; echo "#   got: '$1'"; echo "#   expected: '$2'"; return 1; fi
}

diag() { sed 's/^/# /' "$@"; }

is_mounted() {  # field 5 of mountinfo is the mount point; the type follows " - "
	awk -v m="$(realpath "$1")" '$5 == m && / - fuse\.sdafs / { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# mount_view SRC MNT [sdafs options...]: start a foreground daemon, wait
# until the mount answers.  Returns non-zero (and leaves no mount) on failure.
mount_view() {
	local src=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$SDAFS" -f "$@" "$src" "$mnt" >>"$mnt.log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 200); do
		if is_mounted "$mnt"; then
			MOUNTS+=("$mnt")
			PIDS+=("$pid")
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 1
}

# unmount_view MNT: unmount, wait for its daemon, fail on a dirty log.
unmount_view() {
	local mnt=$1 i pid rc=0
	for i in "${!MOUNTS[@]}"; do
		[ "${MOUNTS[$i]}" = "$mnt" ] || continue
		pid=${PIDS[$i]}
		fusermount3 -u "$mnt" || rc=1
		wait "$pid" || rc=1
		unset 'MOUNTS[i]' 'PIDS[i]'
	done
	if grep -qE "ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer" "$mnt.log" 2>/dev/null; then
		diag "$mnt.log"
		rc=1
	fi
	return $rc
}

stat_field() {  # stat_field MNT KEY: a number from the statistics file
	$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); k=sys.argv[2].split("."); 
for p in k: d=d[p]
print(d)' "$1/.sdafs-stats" "$2"
}

wait_copies() {         # wait_copies MNT N: until N materialized copies are written
	for _ in $(seq 300); do
		[ "$(stat_field "$1" copies_written)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	local i
	for i in "${!MOUNTS[@]}"; do
		fusermount3 -u "${MOUNTS[$i]}" 2>/dev/null || fusermount3 -uz "${MOUNTS[$i]}" 2>/dev/null
		kill "${PIDS[$i]}" 2>/dev/null
		wait "${PIDS[$i]}" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

done_testing() {
	[ "$TAP_FAILED" -eq 0 ]
	exit $?
}
