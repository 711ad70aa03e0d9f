#!/bin/bash
# PEFT adapter directories (adapter_model.safetensors + adapter_config.json):
# native grouped expert LoRA mounts as HF PEFT ParamWrapper (v5, default) or
# per-expert (v4) keys, HF PEFT mounts as native, DoRA magnitudes are renamed
# both ways (legacy .default.weight too), an incomplete v4 group passes
# through; every byte is compared with tests/ref/peft_ref.py, and a round trip
# through two mounts gives back the original bytes; malformed adapters fail
# naming the tensor.
. "$(dirname "$0")/lib.sh"
PEFT="$PY $REPO/tests/fixtures/gen_peft.py"
PREF="$PY $REPO/tests/ref/peft_ref.py"
# name | gen_peft options | mount options | peft_ref check options
cases=(
	"native-v5|--layout native --dora||"
	"native-v4|--layout native --dora|-o peft=v4|--v4"
	"v5|--layout v5 --dora||"
	"v4|--layout v4 --legacy-dora||"
	"v4-incomplete|--layout v4 --incomplete||"
)
breaks=(rank no-rank mixed shape)
plan $(( ${#cases[@]} * 2 + 8 + ${#breaks[@]} * 2 ))

for c in "${cases[@]}"; do
	IFS='|' read -r name gopts mopts copts <<<"$c"
	$PEFT "$T/$name" $gopts >/dev/null
	mount_view "$T/$name" "$T/m-$name" $mopts
	$PREF check "$T/m-$name" "$T/$name" $copts >"$T/$name.check" 2>&1
	ok $? "$name: every tensor and file equals the reference" || diag "$T/$name.check"
	unmount_view "$T/m-$name"
	ok $? "$name: unmounts cleanly, sanitizer log clean"
done

# Round trips through two mounts: native -> HF (v5, then v4) -> native is the
# original adapter, byte for byte (no reference involved).
for fmt in v5 v4; do
	mopt=""
	[ "$fmt" = v4 ] && mopt="-o peft=$fmt"
	mount_view "$T/native-v5" "$T/hf-$fmt" $mopt
	mkdir -p "$T/copy-$fmt" && cp "$T/hf-$fmt"/* "$T/copy-$fmt/"
	unmount_view "$T/hf-$fmt"
	mount_view "$T/copy-$fmt" "$T/back-$fmt" -o view=native
	ok $? "$fmt: the HF copy mounts as native"
	cmp "$T/back-$fmt/adapter_model.safetensors" "$T/native-v5/adapter_model.safetensors" \
		>"$T/rt-$fmt.cmp" 2>&1
	ok $? "$fmt: native -> HF -> native gives back the original file byte for byte" ||
		diag "$T/rt-$fmt.cmp"
	unmount_view "$T/back-$fmt"
	ok $? "$fmt: unmounts cleanly, sanitizer log clean"
done

# view= confirms the direction, as for checkpoints.
"$SDAFS" --inspect -o view=native "$T/native-v5" >/dev/null 2>"$T/dir.err"
grep -q "already in the native layout" "$T/dir.err"
ok $? "view=native on a native adapter is refused with the way out" || diag "$T/dir.err"
"$SDAFS" --inspect -o peft=v6 "$T/native-v5" >/dev/null 2>"$T/opt.err"
grep -q "peft=v6: expected v5" "$T/opt.err"
ok $? "peft=v6 is refused naming the choices" || diag "$T/opt.err"

for kind in "${breaks[@]}"; do
	layout=v5
	case $kind in mixed|shape) layout=native ;; esac
	out=$($PEFT "$T/bad-$kind" --layout $layout --break "$kind")
	tensor=$(echo "$out" | awk '$1 == "BROKEN" {print $3}')
	"$SDAFS" --inspect "$T/bad-$kind" >/dev/null 2>"$T/bad-$kind.err"
	grep -qF "$tensor" "$T/bad-$kind.err" && ! "$SDAFS" --inspect "$T/bad-$kind" >/dev/null 2>&1
	ok $? "$kind: the mount is refused, naming $tensor" || diag "$T/bad-$kind.err"
	! grep -qE "ERROR: AddressSanitizer|runtime error" "$T/bad-$kind.err"
	ok $? "$kind: no sanitizer complaint"
done
done_testing
