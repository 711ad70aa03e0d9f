#!/bin/bash
# sdafs verify compares a directory with the view of SRC, without mounting:
# an exact copy (cp -r of the mount) passes with exit 0; each kind of damage
# is caught with exit 1 and named by file, tensor and byte offset: a flipped
# byte inside a tensor (converted or not), a missing file, an extra file, a
# header whose tensors are stored in another order, a truncated shard, an
# index entry changed, a copy made with other options; --json reports the
# same; a bad SRC or DIR is an error, exit 2.
. "$(dirname "$0")/lib.sh"
FAST=${SDAFS_FAST_BUILD:-$BUILD}/sdafs
export REPO
plan 25

$GEN "$T/src" --kind moe --mtp --scale-inv --special-values --shards 3 >/dev/null
SDAFS=$FAST mount_view "$T/src" "$T/mnt"
cp -r "$T/mnt" "$T/copy"
unmount_view "$T/mnt"

# damaged NAME: a fresh copy of the exact copy to damage
damaged() { rm -rf "$T/$1" && cp -r "$T/copy" "$T/$1"; }

# verify_is NAME RC WORDS...: sdafs verify SRC $T/NAME exits RC, its output has every WORD (2 tests)
verify_is() {
	local name=$1 want=$2 missing="" w
	shift 2
	"$SDAFS" verify -q "$T/src" "$T/$name" >"$T/$name.out" 2>"$T/$name.err"
	is $? "$want" "$name: exit status $want" || diag "$T/$name.out" "$T/$name.err"
	for w in "$@"; do grep -qF -- "$w" "$T/$name.out" || missing="$missing [$w]"; done
	[ -z "$missing" ]
	ok $? "$name: the report names it" || { echo "#   missing:$missing"; diag "$T/$name.out"; }
}

# where NAME FILE: "OFFSET-IN-FILE OFFSET-IN-TENSOR" of the middle byte of tensor NAME in FILE
where() {
	$PY - "$1" "$2" <<'EOF'
import json, struct, sys
path, name = sys.argv[2], sys.argv[1]
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
b, e = h[name]["data_offsets"]
k = (e - b) // 2
print(8 + n + b + k, k)
EOF
}

flip() {        # flip FILE OFFSET: invert one byte
	$PY -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

verify_is copy 0 "equals the view of $T/src"

GROUPED=model.layers.1.mixer.experts.down_projs
SHARD=$(grep -l "$GROUPED" "$T"/copy/model-*.safetensors | head -1)
SHARD=$(basename "$SHARD")
damaged flip-grouped
read -r at k < <(where "$GROUPED" "$T/flip-grouped/$SHARD")
flip "$T/flip-grouped/$SHARD" "$at"
verify_is flip-grouped 1 "$SHARD: tensor '$GROUPED': 1 byte differs, the first at byte $k of the tensor (file offset $at"

PLAIN=model.norm.weight
PSHARD=$(basename "$(grep -l "$PLAIN" "$T"/copy/model-*.safetensors | head -1)")
damaged flip-plain
read -r at k < <(where "$PLAIN" "$T/flip-plain/$PSHARD")
flip "$T/flip-plain/$PSHARD" "$at"
verify_is flip-plain 1 "$PSHARD: tensor '$PLAIN': 1 byte differs, the first at byte $k of the tensor"

damaged missing
rm "$T/missing/tokenizer.json"
verify_is missing 1 "tokenizer.json: missing"

damaged extra
echo notes >"$T/extra/notes.txt"
verify_is extra 1 "notes.txt: not in the view (an extra file)"

damaged reordered
$PY - "$T/reordered/$SHARD" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["REPO"], "tests", "ref"))
import safetensors_lite as st
p = sys.argv[1]
f = st.SafetensorsFile(p)
arrays = {n: f.array(n, mmap=False) for n in f.order}
st.write_file(p, [(n, f.tensors[n][0], tuple(f.tensors[n][1])) for n in reversed(f.order)],
              lambda n: [arrays[n]])
EOF
verify_is reordered 1 "$SHARD: header: tensors stored in another order"
! grep -q "byte.* differ" "$T/reordered.out"
ok $? "reordered: every tensor's bytes are found where its header says, and are right" ||
	diag "$T/reordered.out"

damaged truncated
size=$(stat -c %s "$T/truncated/$SHARD")
truncate -s $((size - 1000)) "$T/truncated/$SHARD"
verify_is truncated 1 "$SHARD: $((size - 1000)) bytes, expected $size (truncated inside tensor '"

damaged index
$PY - "$T/index/model.safetensors.index.json" "$GROUPED" <<'EOF'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
j["weight_map"][sys.argv[2]] = "model-00009-of-00009.safetensors"
json.dump(j, open(p, "w"), indent=2)
EOF
verify_is index 1 "model.safetensors.index.json: weight_map['$GROUPED'] is \"model-00009-of-00009.safetensors\""

# A copy made with other options: merged experts in F32, not the config's BF16.
SDAFS=$FAST mount_view "$T/src" "$T/mnt32" -o dtype=fp32
cp -r "$T/mnt32" "$T/fp32"
unmount_view "$T/mnt32"
verify_is fp32 1 "header: tensor '$GROUPED' is F32[" "expected BF16["
"$SDAFS" verify -q -o dtype=fp32 "$T/src" "$T/fp32" >"$T/fp32-same.out" 2>&1
ok $? "with the options it was made with, it passes" || diag "$T/fp32-same.out"

# --json: the same findings for a program.
"$SDAFS" verify -q --json "$T/src" "$T/flip-grouped" >"$T/json.out" 2>"$T/json.err"
rc=$?
$PY - "$T/json.out" "$SHARD" "$GROUPED" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["differences"]
ok = (r["equal"] is False and r["differences_total"] == 1 and len(d) == 1 and
      d[0]["kind"] == "tensor" and d[0]["file"] == sys.argv[2] and d[0]["tensor"] == sys.argv[3] and
      d[0]["bytes_differing"] == 1 and r["files"] > 0 and r["bytes_compared"] > 0)
sys.exit(0 if ok else 1)
EOF
ok $? "--json: one tensor difference, with file, tensor, offset and count" || diag "$T/json.out"
is "$rc" 1 "--json: exit status 1"
"$SDAFS" verify -q --json "$T/src" "$T/copy" 2>/dev/null | $PY -c 'import json, sys; r = json.load(sys.stdin); sys.exit(0 if r["equal"] and not r["differences"] else 1)'
ok $? "--json of an exact copy: equal, no differences"

# Errors are not differences.
"$SDAFS" verify "$T/nonexistent" "$T/copy" >/dev/null 2>"$T/e1.err"
is $? 2 "a SRC that is not a checkpoint: exit 2" || diag "$T/e1.err"
"$SDAFS" verify "$T/src" "$T/nonexistent" >/dev/null 2>"$T/e2.err"
[ $? -eq 2 ] && grep -q "nonexistent" "$T/e2.err"
ok $? "a DIR that is not there: exit 2, naming it" || diag "$T/e2.err"
done_testing
