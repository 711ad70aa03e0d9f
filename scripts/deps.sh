#!/bin/sh
# Install the Debian packages sdafs needs to build, test and demo, but only
# those missing, so a prepared machine pays nothing.  Needs root (or sudo)
# only when something is missing.
set -e
need="build-essential pkg-config libfuse3-dev fuse3 libcjson-dev libpcre2-dev
libcmocka-dev python3 python3-numpy perl valgrind clang libclang-rt-14-dev
openmpi-bin libopenmpi-dev rsync time"
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
