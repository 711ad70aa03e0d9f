#!/bin/bash
# PEFT adapter directories (adapter_model.safetensors + adapter_config.json):
# native grouped expert LoRA mounts as HF PEFT ParamWrapper (v5, default) or
# per-expert (v4) keys, HF PEFT mounts as native, DoRA magnitudes are renamed
# both ways (legacy .default.weight too), an incomplete v4 group passes
# through; every byte is compared with tests/ref/peft_ref.py, and a round trip
# through two mounts gives back the original bytes; malformed adapters fail
# naming the tensor.  Per built-in family (gen_peft.py --family): the keys
# in the family's names both ways, checked against the reference and
# against the names the spec gives, written out by hand in gen_peft.py;
# round trips through two mounts; the Nemotron-H backbone. regression; how
# the family is found (config.json, adapter=, key names, unknown).
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
families=(nemotron_h nemotron_omni step3p5 deepseek_v3 gpt_oss llama)
plan $(( ${#cases[@]} * 2 + 8 + ${#breaks[@]} * 2 + ${#families[@]} * 13 + 8 + 4 ))

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
# mount_copy SRC NAME [options]: mount SRC, copy the view to $T/NAME, unmount.
mount_copy() {
	local src=$1 name=$2
	shift 2
	mount_view "$src" "$T/mnt-$name" "$@" &&
		mkdir -p "$T/$name" && cp "$T/mnt-$name"/* "$T/$name/" &&
		unmount_view "$T/mnt-$name"
}

# one_way F FROM TO WANT: mount $T/F-FROM (FROM names and layout) as TO, copy
# it to $T/F-to-TO; it must equal the reference and, by name and bytes,
# $T/F-WANT (the names gen_peft.py writes out by hand).
one_way() {
	local f=$1 from=$2 to=$3 want=$4
	mount_copy "$T/$f-$from" "$f-to-$to"
	ok $? "$f: the $from adapter mounts as $to, unmounts cleanly"
	$PREF check "$T/$f-to-$to" "$T/$f-$from" >"$T/$f-$to.check" 2>&1
	ok $? "$f: $from -> $to equals the reference" || diag "$T/$f-$to.check"
	$PREF same "$T/$f-to-$to" "$T/$f-$want" >"$T/$f-$to.same" 2>&1
	ok $? "$f: $from -> $to has the spec's names, as written out in gen_peft.py ($want)" ||
		diag "$T/$f-$to.same"
}

for f in "${families[@]}"; do
	for n in native hf saved loaded; do
		lay=native
		case $n in hf|saved) lay=v5 ;; esac
		$PEFT "$T/$f-$n" --family "$f" --names $n --layout $lay
	done
	# HF names -> native: Automodel's from_hf names ("loaded"); native -> HF:
	# its to_hf names ("saved")
	one_way "$f" hf native loaded
	one_way "$f" native hf saved
	# native -> HF -> native: the original file, byte for byte
	mount_view "$T/$f-to-hf" "$T/mnt-$f-back" -o view=native
	ok $? "$f: the HF copy mounts as native"
	cmp "$T/mnt-$f-back/adapter_model.safetensors" "$T/$f-native/adapter_model.safetensors" \
		>"$T/$f-c.cmp" 2>&1
	ok $? "$f: native -> HF -> native gives back the original file byte for byte" || diag "$T/$f-c.cmp"
	unmount_view "$T/mnt-$f-back"
	ok $? "$f: unmounts cleanly, sanitizer log clean"
	# HF -> native -> HF: the original names, except Nemotron-H's backbone., which
	# Automodel's save does not write back (spec §7 item 3): its saved names
	back=hf
	[ "$f" = nemotron_h ] && back=saved
	mount_view "$T/$f-to-native" "$T/mnt-$f-again" -o view=hf
	ok $? "$f: the native copy mounts as HF"
	$PREF same "$T/mnt-$f-again" "$T/$f-$back" >"$T/$f-d.same" 2>&1
	ok $? "$f: HF -> native -> HF gives the $back names, the same bytes" || diag "$T/$f-d.same"
	cmp "$T/mnt-$f-again/adapter_model.safetensors" "$T/$f-$back/adapter_model.safetensors" \
		>"$T/$f-d.cmp" 2>&1
	ok $? "$f: ... byte for byte" || diag "$T/$f-d.cmp"
	unmount_view "$T/mnt-$f-again"
	ok $? "$f: unmounts cleanly, sanitizer log clean"
done

# The issue's regression: an HF adapter for transformers' NemotronH
# (backbone. names) with no config.json: the key names tell the family.
$PEFT "$T/bb" --family nemotron_h --names hf --layout v5 --no-config
"$SDAFS" --inspect "$T/bb" >"$T/bb.inspect" 2>&1
head -1 "$T/bb.inspect" | grep -q "adapter peft, nemotron_h names (key names), hf->native (PEFT)"
ok $? "backbone. adapter without config.json: --inspect names the family and how it was found" ||
	diag "$T/bb.inspect"
grep -q "^  base_model.model.model.layers.1.mixer.experts.lora_down_A " "$T/bb.inspect"
ok $? "... and shows base_model.model.model.layers.1.mixer.experts.lora_down_A" || diag "$T/bb.inspect"
mount_copy "$T/bb" bb-native
ok $? "backbone. adapter without config.json mounts as native"
$PREF check "$T/bb-native" "$T/bb" --family nemotron_h >"$T/bb.check" 2>&1
ok $? "... equal to the reference's nemotron_h names" || diag "$T/bb.check"

# -o adapter= names the family, also over a config.json of another family
$PEFT "$T/opt" --family nemotron_h --names hf --layout v4
echo '{"architectures": ["LlamaForCausalLM"]}' >"$T/opt/config.json"
"$SDAFS" --inspect -o adapter=nemotron_h "$T/opt" >"$T/opt.inspect" 2>&1
head -1 "$T/opt.inspect" | grep -q "nemotron_h names (adapter=)" &&
	grep -q "^  base_model.model.model.layers.1.mixer.experts.lora_gate_and_up_A " "$T/opt.inspect"
ok $? "adapter=nemotron_h renames a backbone. adapter whose config.json says Llama" ||
	diag "$T/opt.inspect"
"$SDAFS" --inspect "$T/opt" >"$T/opt2.inspect" 2>&1
head -1 "$T/opt2.inspect" | grep -q "llama names (config.json)" &&
	grep -q "^  base_model.model.backbone.layers.1.mixer.experts.lora_gate_and_up_A " "$T/opt2.inspect"
ok $? "without it the config.json's family (llama) keeps backbone." || diag "$T/opt2.inspect"

# a family that cannot be told: names kept, and --inspect says so
"$SDAFS" --inspect "$T/native-v5" >"$T/unknown.inspect" 2>&1
head -1 "$T/unknown.inspect" | grep -q "adapter peft, family unknown: names kept"
ok $? "no config.json, key names of no one family: --inspect says the names are kept" ||
	diag "$T/unknown.inspect"
$PEFT "$T/omni-nocfg" --family nemotron_omni --names hf --layout v5 --no-config
"$SDAFS" --inspect -o adapter_file="$REPO/convert/plan/adapters/nemotron_omni.json" \
	"$T/omni-nocfg" >"$T/file.inspect" 2>&1
head -1 "$T/file.inspect" | grep -q "nemotron_omni names (adapter_file)"
ok $? "adapter_file= names the family" || diag "$T/file.inspect"

# The example tables rename nothing a LoRA key holds: names kept, as the
# reference (no renames for qwen3_moe and mixtral, spec §8) says.
for ex in qwen3_moe mixtral; do
	mount_copy "$T/v4" "ex-$ex" -o adapter_file="$REPO/examples/adapters/$ex.json"
	ok $? "$ex (example table): a v4 adapter mounts with it as native"
	$PREF check "$T/ex-$ex" "$T/v4" --family $ex >"$T/ex-$ex.check" 2>&1
	ok $? "$ex: equal to the reference" || diag "$T/ex-$ex.check"
done
done_testing
