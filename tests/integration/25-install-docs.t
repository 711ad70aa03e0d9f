#!/bin/bash
# Installed like a package: make install puts exactly the program, the
# helper, the man page and the example adapter tables in place, the
# installed sdafs finds those tables by name (after the built-ins, never
# instead of one), make uninstall takes back all of it.  The man page and
# --help name the same options, both ways; the man page names every built-in
# adapter, every .sdafs-stats field and the environment.  The helpers a user
# runs work whatever python3 comes first on PATH.
. "$(dirname "$0")/lib.sh"
plan 22

DOCS="$PY $REPO/tests/integration/doc_names.py"
MAN="$REPO/docs/sdafs.8"
files_under() { (cd "$1" && find . -type f -o -type l | sed 's|^\./||' | sort); }

(cd "$REPO" && make -s install DESTDIR="$T/dest" PREFIX=/usr/local >/dev/null)
want=$(printf '%s\n' usr/local/bin/sdafs usr/local/sbin/mount.sdafs usr/local/share/man/man8/sdafs.8 \
	$(cd "$REPO/examples/adapters" && ls *.json | sed 's|^|usr/local/share/sdafs/adapters/|') | sort)
is "$(files_under "$T/dest")" "$want" "make install DESTDIR=...: the program, the helper, sdafs(8) and the example tables, nothing else"
bad=0
for f in "$REPO"/examples/adapters/*.json; do
	cmp -s "$f" "$T/dest/usr/local/share/sdafs/adapters/$(basename "$f")" || bad=1
done
ok $bad "the installed tables are the examples, byte for byte"

INSTALLED="$T/dest/usr/local/bin/sdafs"
$GEN "$T/qwen" --family qwen3_moe >/dev/null
"$INSTALLED" --inspect -o adapter=qwen3_moe "$T/qwen" 2>"$T/err" | head -1 | grep -q "adapter qwen3_moe, hf->native"
ok $? "the installed sdafs: adapter=qwen3_moe finds the installed table by name" || diag "$T/err"
"$INSTALLED" --list-adapters | grep -q "table: $T/dest/usr/local/share/sdafs/adapters/qwen3_moe.json"
ok $? "--list-adapters lists it, with the file it comes from"
"$INSTALLED" --inspect "$T/qwen" >/dev/null 2>"$T/err"
grep -q "the example table $T/dest/usr/local/share/sdafs/adapters/qwen3_moe.json describes it: mount with -o adapter=qwen3_moe" "$T/err"
ok $? "without adapter=, the message names the installed table" || diag "$T/err"
echo '{ this is not the llama table' >"$T/dest/usr/local/share/sdafs/adapters/llama.json"
$GEN "$T/llama" --family llama >/dev/null
"$INSTALLED" --inspect -o adapter=llama "$T/llama" 2>"$T/err" | head -1 | grep -q "adapter llama"
ok $? "a built-in comes first: an installed llama.json does not replace the built-in llama" || diag "$T/err"
"$INSTALLED" --inspect -o adapter=../../bin/sdafs "$T/qwen" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "no adapter called '../../bin/sdafs'" "$T/err"
ok $? "adapter= a path is not looked up as a file" || diag "$T/err"
rm "$T/dest/usr/local/share/sdafs/adapters/llama.json"

(cd "$REPO" && make -s install DESTDIR="$T/opt" PREFIX=/opt/sdafs >/dev/null)
"$T/opt/opt/sdafs/bin/sdafs" --inspect -o adapter=mixtral "$T/qwen" 2>&1 | grep -q "mixtral"
ok $? "installed under another PREFIX, sdafs finds its own tables (relative to the binary)"

(cd "$REPO" && make -s uninstall DESTDIR="$T/dest" PREFIX=/usr/local >/dev/null 2>&1)
is "$(files_under "$T/dest")" "" "make uninstall DESTDIR=... removes every file install put there"
[ ! -e "$T/dest/usr/local/share/sdafs" ]
ok $? "and the share/sdafs directory it made"

"$SDAFS" --help | $DOCS help >"$T/help.names"
$DOCS man "$MAN" OPTIONS >"$T/man.names"
comm -23 "$T/help.names" "$T/man.names" >"$T/only-help"
is "$(cat "$T/only-help")" "" "every option of sdafs --help has an entry in sdafs(8) OPTIONS"
comm -13 "$T/help.names" "$T/man.names" >"$T/only-man"
is "$(cat "$T/only-man")" "" "every option in sdafs(8) OPTIONS is in sdafs --help"
[ "$(wc -l <"$T/help.names")" -gt 30 ]
ok $? "(and the comparison saw them all: $(wc -l <"$T/help.names") names)"
is "$("$SDAFS" status --help | $DOCS help)" "$($DOCS man "$MAN" STATUS)" "sdafs status --help and sdafs(8) STATUS name the same options"

bad=""
for a in $("$SDAFS" --list-adapters | awk 'NR > 1 && /^[a-z]/ { print $1 }'); do
	grep -qE "^\.BR? $a( |$)" "$MAN" || bad="$bad $a"
done
is "$bad" "" "sdafs(8) names every adapter --list-adapters shows (built-in and example)"

mkdir -p "$T/copies"
$GEN "$T/src" --kind moe >/dev/null
mount_view "$T/src" "$T/mnt" -o materialize_dir="$T/copies",prefetch
keys=$($PY -c 'import json, sys
def keys(o):
    for k, v in o.items():
        yield k
        if isinstance(v, dict):
            yield from keys(v)
print(" ".join(sorted(set(keys(json.load(open(sys.argv[1])))))))' "$T/mnt/.sdafs-stats")
unmount_view "$T/mnt"
bad=""
for k in $keys; do
	grep -qE "(^\.BR? |\" )$k( |$|\")" "$MAN" || bad="$bad $k"
done
is "$bad" "" "sdafs(8) describes every field of .sdafs-stats ($(echo $keys | wc -w) fields)"
bad=""
for v in OMPI_COMM_WORLD_RANK PMI_RANK SLURM_PROCID OMPI_COMM_WORLD_SIZE PMI_SIZE SLURM_NTASKS SDAFS_MPI_TIMEOUT; do
	sed -n '/^\.SH ENVIRONMENT/,/^\.SH /p' "$MAN" | grep -q "$v" || bad="$bad $v"
done
is "$bad" "" "ENVIRONMENT names the launcher variables and SDAFS_MPI_TIMEOUT"
bad=""
for s in "EXIT STATUS" ENVIRONMENT FILES DIAGNOSTICS EXAMPLES; do grep -q "^\.SH $s$" "$MAN" || bad="$bad [$s]"; done
is "$bad" "" "sdafs(8) has EXIT STATUS, ENVIRONMENT, FILES, DIAGNOSTICS and EXAMPLES"
if command -v groff >/dev/null; then
	is "$(groff -man -ww -z "$MAN" 2>&1)" "" "groff -man -ww renders it without a warning"
else
	TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip no groff"
fi

# A python3 first on PATH that cannot run the helpers (as one without numpy).
mkdir -p "$T/badbin"
printf '#!/bin/sh\necho "this python3 has no numpy" >&2\nexit 1\n' >"$T/badbin/python3"
chmod +x "$T/badbin/python3"
PATH="$T/badbin:$PATH" "$REPO/tests/fixtures/gen_checkpoint.py" --help >/dev/null 2>"$T/err" &&
	PATH="$T/badbin:$PATH" "$REPO/tests/ref/check_view.py" --help >/dev/null 2>>"$T/err"
ok $? "gen_checkpoint.py --help and check_view.py --help run with a useless python3 first on PATH" || diag "$T/err"
(cd "$REPO" && PATH="$T/badbin:$PATH" make -s checkpoint OUT="$T/made" GEN_ARGS="--family qwen3_moe --shards 1" >/dev/null 2>"$T/err") &&
	[ -f "$T/made/config.json" ]
ok $? "make checkpoint OUT=DIR GEN_ARGS=... makes a checkpoint, PATH notwithstanding" || diag "$T/err"
mount_view "$T/made" "$T/made-view" -o adapter=qwen3_moe
(cd "$REPO" && PATH="$T/badbin:$PATH" make -s check-view VIEW="$T/made-view" SRC="$T/made" CHECK_ARGS="--family qwen3_moe" >"$T/cv" 2>&1)
ok $? "make check-view VIEW=MNT SRC=DIR checks a view against the reference" || diag "$T/cv"
unmount_view "$T/made-view"
done_testing
