#!/bin/bash
# What the usual tools see of a mount: findmnt shows the source directory
# and fuse.sdafs (also on the materialize_dir path, where sdafs mounts
# /dev/fuse itself), .sdafs-stats says source, mount point, view, adapter
# and options; a view file's times are its newest source file's, the
# directory's the source directory's, so stat agrees across two mounts and
# rsync -a sees nothing to do after a remount; and a cp -r copy is a tree
# its owner can add to and remove.
. "$(dirname "$0")/lib.sh"
plan 16

$GEN "$T/src" --kind moe --shards 2 >/dev/null
# distinct, old times: the view must show these, not the time of the mount
touch -d "2019-03-01 10:00:00" "$T/src/config.json"
touch -d "2020-05-01 10:00:00" "$T/src/model-00001-of-00002.safetensors"
touch -d "2021-07-01 10:00:00.5" "$T/src/model-00002-of-00002.safetensors"
touch -d "2018-01-01 10:00:00" "$T/src"
chmod 755 "$T" "$T/src"         # so that another user can reach the mount below

mount_view "$T/src" "$T/m1" -o view=native,cache_size=64M,allow_other
is "$(findmnt -n -o SOURCE,FSTYPE "$T/m1")" "$T/src fuse.sdafs" \
	"findmnt -n -o SOURCE,FSTYPE MNT: the source directory and fuse.sdafs"

stats=$($PY -c 'import json, sys
s = json.load(open(sys.argv[1] + "/.sdafs-stats"))
print(s["source"], s["mountpoint"], s["view"], s["adapter"], s["options"])' "$T/m1")
is "$stats" "$T/src $T/m1 native nemotron_h view=native,cache_size=64M,allow_other" \
	".sdafs-stats: source, mountpoint, view, adapter and options"

times() {       # times MNT: name, mtime, ctime and atime of the directory and every file
	(cd "$1" && stat -c '%n %Y.%y %Z %X' . * | sed 's/ [+-][0-9]*$//')
}
times "$T/m1" >"$T/times1"
is "$(stat -c %y "$T/m1/config.json")" "$(stat -c %y "$T/src/config.json")" \
	"a passed-through file has its source's mtime"
is "$(stat -c %y "$T/m1/model.safetensors.index.json")" "$(stat -c %y "$T/src/model-00002-of-00002.safetensors")" \
	"the index has the newest weight file's mtime (nanoseconds too)"
bad=0
for f in "$T"/m1/model-*.safetensors; do
	m=$(stat -c %Y "$f")
	[ "$m" = "$(stat -c %Y "$T/src/model-00001-of-00002.safetensors")" ] ||
		[ "$m" = "$(stat -c %Y "$T/src/model-00002-of-00002.safetensors")" ] || { bad=1; echo "# $f: $m"; }
done
ok $bad "every converted shard has the mtime of a source shard, not the mount's"
is "$(stat -c '%a %Y' "$T/m1")" "$(stat -c '%a %Y' "$T/src")" "the directory has the source directory's mode and mtime"

rsync -a "$T/m1/" "$T/copy/"
ok $? "rsync -a MNT/ COPY/ copies the view"
runuser -u nobody -- true 2>/dev/null && nobody=1 || nobody=0
if [ $nobody = 1 ]; then
	install -d -o nobody "$T/nb"
	runuser -u nobody -- cp -r "$T/m1" "$T/nb/copy" 2>"$T/cp.err"
	ok $? "another user copies the view with cp -r (allow_other)" || diag "$T/cp.err"
	runuser -u nobody -- sh -c "mkdir '$T/nb/copy/more' && touch '$T/nb/copy/new' && rm -rf '$T/nb/copy'" 2>"$T/rm.err"
	ok $? "the owner of that copy can add to it and rm -rf it" || diag "$T/rm.err"
else
	for _ in 1 2; do TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip no user nobody"; done
fi
unmount_view "$T/m1"
ok $? "unmounts cleanly"

sleep 1.1       # a second mount at another second: nothing may follow the mount time
mount_view "$T/src" "$T/m1" -o view=native
times "$T/m1" >"$T/times2"
diff "$T/times1" "$T/times2" >"$T/times.diff"
ok $? "stat gives every file and the directory the same mtime, ctime and atime in a second mount" || diag "$T/times.diff"
rsync -a --dry-run --itemize-changes "$T/m1/" "$T/copy/" >"$T/rsync" 2>&1
is "$(cat "$T/rsync")" "" "rsync -a --dry-run --itemize-changes of the copy against a remount: nothing to do"
unmount_view "$T/m1"

if [ "$(id -u)" = 0 ]; then     # materialize_dir: sdafs mounts /dev/fuse itself
	mkdir -p "$T/copies"
	mount_view "$T/src" "$T/m2" -o materialize_dir="$T/copies"
	is "$(findmnt -n -o SOURCE,FSTYPE "$T/m2")" "$T/src fuse.sdafs" \
		"findmnt on the materialize_dir mount (sdafs's own mount(2)): the same"
	unmount_view "$T/m2"
else
	TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # skip sdafs mounts /dev/fuse itself only as root"
fi

odd="$T/a src, with\\odd chars"
cp -r "$T/src" "$odd"
mount_view "$odd" "$T/m3"
is "$(findmnt -n -o SOURCE "$T/m3")" "$odd" "a source path with spaces, a comma and a backslash shows as it is"
[ "$(stat_field "$T/m3" source)" = "$odd" ]
ok $? "and .sdafs-stats says it too"
unmount_view "$T/m3"
ok $? "unmounts cleanly"
done_testing
