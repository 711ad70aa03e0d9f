#!/bin/bash
# The view is read-only: every modifying operation fails with EROFS (or the
# kernel's own read-only refusal) and nothing changes in the source; unknown
# names are ENOENT; the statistics file is readable by name but not listed.
. "$(dirname "$0")/lib.sh"
plan 12

$GEN "$T/src" --kind moe >/dev/null
cp -r "$T/src" "$T/pristine"
mount_view "$T/src" "$T/mnt"
ok $? "mounts"
m=$T/mnt

erofs() { "$@" 2>&1 | grep -q "Read-only file system"; }
erofs touch "$m/new";                            ok $? "creating a file: EROFS"
erofs sh -c "echo x >> '$m/config.json'";        ok $? "appending to a file: EROFS"
erofs mkdir "$m/dir";                            ok $? "mkdir: EROFS"
erofs rm -f "$m/config.json";                    ok $? "unlink: EROFS"
erofs mv "$m/config.json" "$m/c2.json";          ok $? "rename: EROFS"
erofs chmod 777 "$m/config.json";                ok $? "chmod: EROFS"
erofs truncate -s 0 "$m/model-00001-of-00002.safetensors"; ok $? "truncate: EROFS"
cat "$m/no-such-file" 2>&1 | grep -q "No such file"
ok $? "an unknown name is ENOENT"
$PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$m/.sdafs-stats"
ok $? "the statistics file parses as JSON"
diff -r "$T/src" "$T/pristine" >/dev/null
ok $? "the source is unchanged"
unmount_view "$m"
ok $? "unmounts cleanly, sanitizer log clean"
done_testing
