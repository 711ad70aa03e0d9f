#!/bin/bash
# Bad input gets a clear error and loses nothing: each damaged checkpoint
# makes sdafs (and --inspect) exit non-zero before detaching, with a message
# naming what is wrong, and leaves no mount behind.  Damage that appears
# while mounted makes reads of the affected file fail with EIO, names the
# file in the log, and leaves the other files readable.
. "$(dirname "$0")/lib.sh"

# kind | words the message must contain
cases=(
	"missing-expert|expert weights missing|layers.1.mixer.experts.gate_and_up_projs|up_proj of experts 3"
	"index-escape|../outside.safetensors|not a plain file name"
	"index-absolute|/etc/passwd|not a plain file name"
	"index-wrong-file|is listed in|but is stored in"
	"truncated-shard|model-00002-of-00002.safetensors"
	"header-too-big|model-00001-of-00002.safetensors"
	"header-not-json|model-00001-of-00002.safetensors"
	"overlapping-offsets|norm.weight"
	"shape-overflow|norm.weight"
	"unknown-dtype|norm.weight|Q7"
	"unknown-arch|GPT2LMHeadModel|not supported|nemotron_h"
	"no-config|config.json|adapter="
	"config-not-json|config.json|not valid JSON"
	"nul-names|model-0000|the name \"norm\\u0000|NUL character"
	"name-not-utf8|model-0000|tensor name \"norm-\\xff\\xfe\"|not valid UTF-8"
	"deep-config|config.json|nested deeper than 1000 levels|not a syntax error"
	"deep-index|model.safetensors.index.json|nested deeper than 1000 levels"
	"deep-header|model-0000|header: JSON nested deeper than 1000 levels"
)
plan $(( ${#cases[@]} * 3 + 6 ))

$GEN "$T/good" --kind moe --shards 2 >/dev/null
for c in "${cases[@]}"; do
	IFS='|' read -r kind words <<<"$c"
	rm -rf "$T/bad" && cp -r "$T/good" "$T/bad"
	$PY "$REPO/tests/fixtures/break_checkpoint.py" "$T/bad" "$kind"
	mkdir -p "$T/mnt"
	"$SDAFS" "$T/bad" "$T/mnt" 2>"$T/err"
	rc=$?
	if is_mounted "$T/mnt"; then fusermount3 -u "$T/mnt"; mounted=1; else mounted=0; fi
	[ $rc -ne 0 ] && [ $mounted -eq 0 ]
	ok $? "$kind: sdafs exits non-zero and leaves no mount" || diag "$T/err"
	missing=""
	IFS='|' read -ra want <<<"$words"
	for w in "${want[@]}"; do grep -qF -- "$w" "$T/err" || missing="$missing [$w]"; done
	[ -z "$missing" ] && ! grep -qE "ERROR: AddressSanitizer|runtime error" "$T/err"
	ok $? "$kind: the message says what is wrong" || { echo "#   missing:$missing"; diag "$T/err"; }
	"$SDAFS" --inspect "$T/bad" >/dev/null 2>"$T/err2"
	[ $? -ne 0 ] && cmp -s <(head -c 200 "$T/err") <(head -c 200 "$T/err2")
	ok $? "$kind: --inspect refuses it with the same message"
done

# Damage while mounted: the source shard shrinks under a direct_io mount.
cp -r "$T/good" "$T/live"
mount_view "$T/live" "$T/mnt2" -o direct_io
ok $? "mounts a good checkpoint"
truncate -s 4096 "$T/live/model-00001-of-00002.safetensors"
cat "$T/mnt2/model-00001-of-00002.safetensors" >/dev/null 2>"$T/cat-err"
grep -q "Input/output error" "$T/cat-err"
ok $? "reading the view of a truncated source file fails with EIO"
grep -q "model-00001-of-00002.safetensors" "$T/mnt2.log"
ok $? "the log names the damaged source file" || diag "$T/mnt2.log"
cmp -s "$T/mnt2/config.json" "$T/good/config.json"
ok $? "other files of the view still read correctly"
cat "$T/mnt2/.sdafs-stats" >/dev/null
ok $? "the daemon is still serving"
unmount_view "$T/mnt2"
ok $? "unmounts cleanly, sanitizer log clean"
done_testing
