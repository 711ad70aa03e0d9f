#!/bin/bash
# A Nemotron-H MoE checkpoint (Mamba, attention, MoE, shared experts, MTP,
# a layer past num_hidden_layers, *_scale_inv, special float values, three
# shards) mounts as the native view; every byte equals the independent
# reference; sizes are exact before anything is converted; reads convert
# only the chunks they touch; cp -r materializes a valid checkpoint.
. "$(dirname "$0")/lib.sh"
plan 17

$GEN "$T/src" --kind moe --mtp --extra-layer --scale-inv --special-values --shards 3 >/dev/null
mount_view "$T/src" "$T/mnt"
ok $? "mounts the MoE checkpoint"

ls -l "$T/mnt" >"$T/ls.txt"
ok $? "ls -l of the view"
is "$(stat_field "$T/mnt" chunks_converted)" 0 "ls -l converts nothing"
is "$(stat_field "$T/mnt" source_bytes_read)" 0 "ls -l reads no tensor data"
ls -a "$T/mnt" | grep -q sdafs-stats
ok $((! $?)) "the statistics file is not listed"

# Sizes from stat, before any read, must equal what is really there.
for f in "$T"/mnt/*; do echo "$(basename "$f") $(stat -c %s "$f")"; done >"$T/sizes-before"

$CHECK "$T/mnt" "$T/src" >"$T/check.txt" 2>&1
ok $? "every tensor and file of the view equals the reference" || diag "$T/check.txt"

for f in "$T"/mnt/*; do echo "$(basename "$f") $(wc -c <"$f")"; done >"$T/sizes-after"
cmp -s "$T/sizes-before" "$T/sizes-after"
ok $? "sizes known at mount time equal the bytes read"

cp -r "$T/mnt" "$T/copy"
ok $? "cp -r materializes the view"
[ ! -e "$T/copy/.sdafs-stats" ]
ok $? "cp -r does not copy the statistics file"
$CHECK "$T/copy" "$T/src" >"$T/check-copy.txt" 2>&1
ok $? "the copy is a valid checkpoint equal to the reference" || diag "$T/check-copy.txt"

unmount_view "$T/mnt"
ok $? "unmounts cleanly, sanitizer log clean"

# Laziness, counted exactly: with direct_io the kernel sends exactly the
# reads asked for (buffered reads add read-ahead into neighbouring tensors),
# and readahead=0 keeps sdafs from converting ahead of them.
mount_view "$T/src" "$T/lazy" -o direct_io,readahead=0
ok $? "mounts again with -o direct_io,readahead=0"
out=$($PY "$REPO/tests/integration/read_tensor.py" "$T/lazy" model.layers.1.mixer.experts.down_projs)
experts=$(echo "$out" | sed 's/^[A-Z0-9]* \[\([0-9]*\),.*/\1/')
is "$(stat_field "$T/lazy" chunks_converted)" "$experts" "reading one grouped tensor converts its $experts expert chunks and nothing else"
is "$(stat_field "$T/lazy" bytes_converted)" "$(echo "$out" | awk '{print $NF}')" "converted bytes equal that tensor's size"
$PY "$REPO/tests/integration/read_tensor.py" "$T/lazy" model.layers.4.mixer.experts.gate_and_up_projs --row 3 >/dev/null
is "$(stat_field "$T/lazy" chunks_converted)" "$((experts + 1))" "reading one expert's slice converts exactly one more chunk"
$PY "$REPO/tests/integration/read_tensor.py" "$T/lazy" model.layers.1.mixer.experts.down_projs >/dev/null
is "$(stat_field "$T/lazy" chunks_converted)" "$((experts + 1))" "re-reading a tensor is served from the cache"
unmount_view "$T/lazy"
ok $? "unmounts cleanly, sanitizer log clean"
done_testing
