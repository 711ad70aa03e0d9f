#!/bin/bash
# A shared mount gives no one more than the source does.  With allow_other
# each view file shows the owner, group and read bits of the source files
# it is made from (a symlink's target, narrowed by the directories on the
# way to it), the kernel enforces them (default_permissions), and user
# nobody reads what it could read in the source and nothing else: not a
# 0600 file, not a link to a root-only file outside SRC, not a link to a
# 0644 file under a 0700 directory, not the view shard of a 0600 shard.
# Without allow_other the mounting user reads everything, as before.  A
# HuggingFace hub cache (snapshots/<rev>/* -> ../../blobs/<hash>) mounts
# and every byte equals the reference.
. "$(dirname "$0")/lib.sh"
plan 24

as_nobody() { runuser -u nobody -- "$@"; }
refused() {     # refused FILE: nobody's read fails with "Permission denied"
	as_nobody cat "$1" >/dev/null 2>"$T/nobody.err"
	[ $? -ne 0 ] && grep -q "Permission denied" "$T/nobody.err"
}

chmod 755 "$T"                  # so that nobody reaches the mount points
$GEN "$T/src" --kind moe --shards 2 >/dev/null
chmod 755 "$T/src"
echo "for everyone" >"$T/src/public.txt" && chmod 644 "$T/src/public.txt"
echo "root only" >"$T/src/private.txt" && chmod 600 "$T/src/private.txt"
echo "outside, root only" >"$T/secret" && chmod 600 "$T/secret"
ln -s ../secret "$T/src/secret.txt"
mkdir -m 700 "$T/closed" && echo "0644 under a 0700 directory" >"$T/closed/notes"
chmod 644 "$T/closed/notes"
ln -s ../closed/notes "$T/src/notes.txt"
chmod 600 "$T/src/model-00002-of-00002.safetensors"
as_nobody cat "$T/src/public.txt" >/dev/null && ! as_nobody cat "$T/src/secret.txt" 2>/dev/null &&
	! as_nobody cat "$T/src/notes.txt" 2>/dev/null
ok $? "in the source, nobody reads public.txt but neither link's target"

mount_view "$T/src" "$T/mnt" -o allow_other
ok $? "mounts with allow_other"
m=$T/mnt
is "$(stat -c '%U %a' "$m/public.txt" "$m/private.txt" "$m/secret.txt" "$m/notes.txt" | tr '\n' ' ')" \
	"root 444 root 400 root 400 root 400 " "each file shows its source's owner and read bits"
is "$(stat -c '%a' "$m/model-00001-of-00002.safetensors" "$m/model-00002-of-00002.safetensors" | tr '\n' ' ')" \
	"444 400 " "each view shard shows its source shard's read bits"
is "$(stat -c '%U %a' "$m")" "$(stat -c '%U %a' "$T/src")" "the root has the source directory's owner and mode (its write bits harmless on a read-only mount)"

as_nobody cat "$m/public.txt" | cmp -s - "$T/src/public.txt"
ok $? "nobody reads a 0644 file"
refused "$m/private.txt";       ok $? "nobody is refused a 0600 file"
refused "$m/secret.txt";        ok $? "nobody is refused a link to a 0600 file outside SRC"
refused "$m/notes.txt";         ok $? "nobody is refused a link to a 0644 file under a 0700 directory"
as_nobody cat "$m/model-00001-of-00002.safetensors" >"$T/shard1.nobody"
ok $? "nobody reads the view shard of a 0644 source shard"
cmp -s "$T/shard1.nobody" "$m/model-00001-of-00002.safetensors"
ok $? "and gets the same bytes as root"
refused "$m/model-00002-of-00002.safetensors"
ok $? "nobody is refused the view shard of a 0600 source shard"
refused "$m/model.safetensors.index.json"
ok $? "and the index, which names that shard's tensors"
refused "$m/.sdafs-stats"
ok $? "and the statistics, which name every file"
$CHECK "$m" "$T/src" >"$T/check.txt" 2>&1
ok $? "root (the mounting user) reads every byte, equal to the reference" || diag "$T/check.txt"
is "$(cat "$m/secret.txt")" "outside, root only" "root reads the link out of SRC: links are followed"
unmount_view "$m"
ok $? "unmounts cleanly, sanitizer log clean"

mount_view "$T/src" "$T/own"
ok $? "mounts without allow_other"
cat "$T/own/private.txt" "$T/own/model-00002-of-00002.safetensors" "$T/own/.sdafs-stats" >/dev/null
ok $? "the mounting user reads everything, as before"
as_nobody ls "$T/own" >/dev/null 2>&1
ok $((! $?)) "and no one else reaches the mount"
unmount_view "$T/own"

# The HuggingFace hub cache: every file of a snapshot is a link into blobs/.
repo=$T/hub/models--org--model
mkdir -p "$repo/blobs" "$repo/refs" "$repo/snapshots"
$GEN "$T/hf" --kind moe --shards 3 >/dev/null
rev=0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6
mkdir "$repo/snapshots/$rev" && echo "$rev" >"$repo/refs/main"
for f in "$T"/hf/*; do
	h=$(sha256sum "$f" | cut -d' ' -f1)
	cp "$f" "$repo/blobs/$h"
	ln -s "../../blobs/$h" "$repo/snapshots/$rev/$(basename "$f")"
done
chmod -R go+rX "$T/hub"
mount_view "$repo/snapshots/$rev" "$T/hubmnt" -o allow_other
ok $? "mounts a HuggingFace hub cache snapshot (every file a link into blobs/)"
$CHECK "$T/hubmnt" "$T/hf" >"$T/check-hub.txt" 2>&1
ok $? "every tensor and file of its view equals the reference" || diag "$T/check-hub.txt"
as_nobody cat "$T/hubmnt/model-00001-of-00003.safetensors" | cmp -s - "$T/hubmnt/model-00001-of-00003.safetensors"
ok $? "nobody reads it too: the blobs are 0644 in a searchable directory"
unmount_view "$T/hubmnt"
ok $? "unmounts cleanly, sanitizer log clean"
done_testing
