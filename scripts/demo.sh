#!/bin/bash
# make demo: generate a small Nemotron-H MoE checkpoint, mount it as the
# native view, show what the view holds and what reading it did, unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=build/demo/Nemotron-H-MoE
MNT=$(mktemp -d /tmp/sdafs-demo.XXXXXX)
trap 'fusermount3 -u "$MNT" 2>/dev/null || true; rmdir "$MNT" 2>/dev/null || true' EXIT

if [ ! -f "$SRC/config.json" ]; then
	echo "== generating a small HF Nemotron-H MoE checkpoint in $SRC"
	/usr/bin/python3 tests/fixtures/gen_checkpoint.py "$SRC" --kind moe --mtp --shards 2
fi
echo
echo "== the HF source ($SRC)"
ls -l "$SRC"

echo
echo "== build/sdafs $SRC $MNT"
build/sdafs "$SRC" "$MNT"

echo
echo "== ls -l $MNT   (sizes are exact; nothing has been converted yet)"
ls -l "$MNT"
echo
echo "== statistics after ls -l: chunks_converted $(grep -o '"chunks_converted":[^,]*' "$MNT/.sdafs-stats" | tr -dc 0-9)"

echo
echo "== a few tensors of the native view (name, dtype, shape)"
/usr/bin/python3 - "$MNT" <<'PY'
import json, os, struct, sys
view = sys.argv[1]
index = json.load(open(os.path.join(view, "model.safetensors.index.json")))
print("index: %d tensors, total_size %d bytes" % (len(index["weight_map"]), index["metadata"]["total_size"]))
shown = 0
for name in sorted(index["weight_map"]):
    if any(k in name for k in ("gate_and_up_projs", "down_projs", "_fp32_params", "embed_tokens", "model.norm")):
        with open(os.path.join(view, index["weight_map"][name]), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            t = json.loads(f.read(n))[name]
        print("  %-52s %-5s %s" % (name, t["dtype"], t["shape"]))
        shown += 1
    if shown == 10:
        break
PY

echo
echo "== reading the whole view (cat > /dev/null), then the statistics"
cat "$MNT"/*.safetensors >/dev/null
cat "$MNT/.sdafs-stats"

echo
echo "== the plan of one grouped tensor (sdafs --inspect)"
# (the whole listing first: grep -m1 closing the pipe early would kill sdafs
# with SIGPIPE, which pipefail reports as a failure)
plan=$(build/sdafs --inspect "$SRC")
grep -m1 "down_projs" <<<"$plan" | cut -c1-200

fusermount3 -u "$MNT"
echo
echo "== unmounted.  Try it yourself:"
echo "   build/sdafs $SRC /some/empty/dir && ls -l /some/empty/dir && fusermount3 -u /some/empty/dir"
