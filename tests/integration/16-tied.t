#!/bin/bash
# Tied lm_head (conversion spec §6) on the Llama family, whose HF and
# native names are the same (§8): a checkpoint saved from a tied model has
# no lm_head.weight, and its native view holds one that is an alias of
# model.embed_tokens.weight — the same source bytes, nothing converted.
# Viewed back as HF, the tied lm_head is dropped again, as the save pops it.
# view=hf shows the source as it is; an untied checkpoint gets no alias; a
# sharded Automodel save of the tied model chains to the same native view.
. "$(dirname "$0")/lib.sh"
DCP="$PY $REPO/tests/fixtures/gen_dcp.py"
plan 20

# same_tensor DIR1 NAME1 DIR2 NAME2: the two tensors have the same dtype,
# shape and bytes (read through each directory's index).
same_tensor() {
	$PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import automodel_ref as r
a = r.load_hf_state_dict(sys.argv[2])[sys.argv[3]]
b = r.load_hf_state_dict(sys.argv[4])[sys.argv[5]]
sys.exit(0 if (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()) else 1)' \
		"$REPO/tests/ref" "$@"
}

# has_tensor DIR NAME: the directory's index lists NAME.
has_tensor() {
	$PY -c 'import json, sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1] + "/model.safetensors.index.json"))["weight_map"] else 1)' "$1" "$2"
}

EMBED=model.embed_tokens.weight
HEAD=lm_head.weight

$GEN "$T/tied" --family llama --tied --special-values --shards 2 >/dev/null
! has_tensor "$T/tied" $HEAD
ok $? "the tied fixture has no $HEAD (as a tied model's save writes it)"

# The native view (view=auto: the names cannot tell, so auto means native).
mount_view "$T/tied" "$T/nat"
ok $? "the tied checkpoint mounts with view=auto"
out=$($PY "$REPO/tests/integration/read_tensor.py" "$T/nat" $HEAD)
ok $? "$HEAD of the view reads ($out)"
is "$(stat_field "$T/nat" chunks_converted)" 0 "reading $HEAD converted no chunk: it is an alias, not a copy"
bytes=$(echo "$out" | awk '{print $NF}')
[ "$(stat_field "$T/nat" source_bytes_read)" -ge "$bytes" ]
ok $? "it was served from the source file ($bytes bytes)"
same_tensor "$T/nat" $HEAD "$T/nat" $EMBED && same_tensor "$T/nat" $HEAD "$T/tied" $EMBED
ok $? "$HEAD is byte-identical to $EMBED, in the view and in the source"
$CHECK "$T/nat" "$T/tied" >"$T/nat.check" 2>&1
ok $? "the native view equals the reference from_hf (every tensor, index, other files)" || diag "$T/nat.check"
# Saving pops a tied lm_head: the native view copied to disk and viewed as
# HF gives back exactly the original checkpoint, without lm_head.
mkdir -p "$T/nat-copy" && cp "$T"/nat/* "$T/nat-copy/"
mount_view "$T/nat-copy" "$T/back" -o view=hf
! has_tensor "$T/back" $HEAD && $CHECK "$T/back" "$T/nat-copy" --direction to_hf >"$T/back.check" 2>&1 &&
	$PY "$REPO/tests/ref/roundtrip_diff.py" "$T/tied" "$T/back" >>"$T/back.check" 2>&1
ok $? "the HF view of the native copy drops the tied $HEAD and equals the original" || diag "$T/back.check"
unmount_view "$T/back"
unmount_view "$T/nat"
ok $? "unmounts cleanly, sanitizer log clean"

mount_view "$T/tied" "$T/nat2" -o view=native
has_tensor "$T/nat2" $HEAD
ok $? "view=native gives the same native view, with the alias"
unmount_view "$T/nat2"

# view=hf: the source as it is (no mixing-layouts refusal, no lm_head added).
mount_view "$T/tied" "$T/hf" -o view=hf
ok $? "view=hf mounts the same checkpoint"
$CHECK "$T/hf" "$T/tied" --direction to_hf >"$T/hf.check" 2>&1 && ! has_tensor "$T/hf" $HEAD
ok $? "and shows the source as it is, without $HEAD" || diag "$T/hf.check"
unmount_view "$T/hf"
ok $? "unmounts cleanly"

# Untied: a stored lm_head is its own tensor; without one, nothing is added.
$GEN "$T/untied" --family llama --shards 2 >/dev/null
mount_view "$T/untied" "$T/unat"
$CHECK "$T/unat" "$T/untied" >"$T/unat.check" 2>&1
ok $? "an untied checkpoint's native view equals the reference" || diag "$T/unat.check"
same_tensor "$T/unat" $HEAD "$T/untied" $HEAD && ! same_tensor "$T/unat" $HEAD "$T/unat" $EMBED
ok $? "its $HEAD is the stored one, not the embedding"
unmount_view "$T/unat"
cp -r "$T/tied" "$T/untied-nohead"
$PY -c 'import json, sys; p = sys.argv[1] + "/config.json"; c = json.load(open(p)); c["tie_word_embeddings"] = False; json.dump(c, open(p, "w"))' "$T/untied-nohead"
mount_view "$T/untied-nohead" "$T/unat2"
! has_tensor "$T/unat2" $HEAD && $CHECK "$T/unat2" "$T/untied-nohead" >"$T/unat2.check" 2>&1
ok $? "tie_word_embeddings false and no $HEAD: the view has none either" || diag "$T/unat2.check"
unmount_view "$T/unat2"
ok $? "unmounts cleanly"

# A sharded Automodel save of the tied model (no lm_head, as the save pops
# it): view=native chains through the same planning and gets the alias.
$DCP "$T/tied" "$T/dcp" --ranks 3 >/dev/null
mkdir -p "$T/tied-nr" && cp "$T"/tied/* "$T/tied-nr/" && rm -f "$T/tied-nr/README.md"
mount_view "$T/dcp" "$T/dnat" -o view=native
$CHECK "$T/dnat" "$T/tied-nr" >"$T/dnat.check" 2>&1 && same_tensor "$T/dnat" $HEAD "$T/tied" $EMBED
ok $? "a sharded save viewed as native equals the reference, $HEAD included" || diag "$T/dnat.check"
unmount_view "$T/dnat"
ok $? "unmounts cleanly, sanitizer log clean"
mount_view "$T/dcp" "$T/dhf"
! has_tensor "$T/dhf" $HEAD
ok $? "the consolidated HF view of the sharded save has no $HEAD, as consolidation writes"
unmount_view "$T/dhf"
done_testing
