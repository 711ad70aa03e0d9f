#!/bin/bash
# mount -t sdafs and /etc/fstab-style lines work through mount.sdafs, and
# make install puts the program, the helper and the man page in place.
. "$(dirname "$0")/lib.sh"
plan 7

(cd "$REPO" && make -s install DESTDIR="$T/dest" PREFIX=/usr/local >/dev/null)
[ -x "$T/dest/usr/local/bin/sdafs" ] && [ -x "$T/dest/usr/local/sbin/mount.sdafs" ] &&
	[ -f "$T/dest/usr/local/share/man/man8/sdafs.8" ]
ok $? "make install DESTDIR=... installs sdafs, mount.sdafs and sdafs(8)"

# mount(8) looks for /sbin/mount.TYPE.  Use ours for the test unless another
# one is installed there, and take it away again afterwards.
if [ -e /sbin/mount.sdafs ] && [ "$(readlink /sbin/mount.sdafs)" != "$BUILD/mount.sdafs" ]; then
	for i in 2 3 4 5 6 7; do echo "ok $i # skip /sbin/mount.sdafs belongs to an installed sdafs"; done
	exit 0
fi
ln -sf "$BUILD/mount.sdafs" /sbin/mount.sdafs
trap 'rm -f /sbin/mount.sdafs; cleanup' EXIT

$GEN "$T/src" --kind moe >/dev/null
mkdir -p "$T/mnt" "$T/mnt2"
mount -t sdafs "$T/src" "$T/mnt" -o view=native,cache_size=64M,nofail 2>"$T/err"
is_mounted "$T/mnt"
ok $? "mount -t sdafs SRC MNT -o view=native,cache_size=64M,nofail" || diag "$T/err"
$CHECK "$T/mnt" "$T/src" >"$T/check" 2>&1
ok $? "the view mounted by mount(8) equals the reference" || diag "$T/check"
umount "$T/mnt"
! is_mounted "$T/mnt"
ok $? "umount unmounts it"

echo "$T/src $T/mnt2 sdafs view=native,dtype=auto,noauto,x-systemd.automount 0 0" >"$T/fstab"
mount -T "$T/fstab" "$T/mnt2" 2>"$T/err2"
is_mounted "$T/mnt2"
ok $? "an fstab line mounts (mount -T FSTAB MNT)" || diag "$T/err2"
fusermount3 -u "$T/mnt2"

rm "$T/src/config.json"
mount -t sdafs "$T/src" "$T/mnt" 2>"$T/err3"
[ $? -ne 0 ] && ! is_mounted "$T/mnt"
ok $? "mount -t sdafs of a bad checkpoint fails and mounts nothing"
grep -q "config.json" "$T/err3"
ok $? "and mount prints sdafs's message" || diag "$T/err3"
done_testing
