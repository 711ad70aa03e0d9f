#!/usr/bin/python3
"""A view read by the real consumers of safetensors, against the reference.

  real_clients.py tensors VIEWDIR SRCDIR [--direction from_hf|to_hf]
      every tensor of every view file through safetensors.safe_open(..., "pt"),
      compared bit for bit (dtype, shape, bytes) with tests/ref's conversion
      of SRCDIR; prints one line per difference, exits 0 when there is none
  real_clients.py logits VIEWDIR SRCDIR
      transformers' AutoModelForCausalLM from both directories, one forward
      pass on the same tokens: the logits must be identical

Needs torch, safetensors and transformers (31-real-clients.t skips without
them); tests/ref supplies the expected bytes, independently of sdafs.
"""
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import automodel_ref as ref  # noqa: E402

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

TORCH_NAMES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
    torch.int32: "I32", torch.int64: "I64", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
}


def raw_bytes(t):
    """A tensor's bytes as stored (little-endian, row-major)."""
    t = t.contiguous()
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def tensors(viewdir, srcdir, direction):
    want = ref.expected_tensors(srcdir, direction=direction)
    seen, bad = set(), 0
    for path in sorted(glob.glob(os.path.join(viewdir, "*.safetensors"))):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                seen.add(name)
                t = f.get_tensor(name)
                if name not in want:
                    print("%s: %s is not in the reference" % (os.path.basename(path), name))
                    bad += 1
                    continue
                w = want[name]
                got = (TORCH_NAMES.get(t.dtype, str(t.dtype)), tuple(t.shape))
                if got != (w.dtype, tuple(w.shape)):
                    print("%s: %s is %s, expected %s" % (os.path.basename(path), name, got,
                                                         (w.dtype, tuple(w.shape))))
                    bad += 1
                elif raw_bytes(t) != w.tobytes():
                    print("%s: %s: bytes differ" % (os.path.basename(path), name))
                    bad += 1
    for name in sorted(set(want) - seen):
        print("%s is missing from the view" % name)
        bad += 1
    print("%d tensors read through safetensors, %d differences" % (len(seen), bad))
    return bad == 0


def logits(viewdir, srcdir):
    from transformers import AutoModelForCausalLM
    out = []
    for d in (srcdir, viewdir):
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
        model.eval()
        vocab = model.config.vocab_size
        ids = torch.arange(0, 16, dtype=torch.long).remainder(vocab).unsqueeze(0)
        with torch.no_grad():
            out.append(model(ids).logits)
    same = torch.equal(out[0], out[1])
    print("logits %s (max abs difference %g)" % ("identical" if same else "DIFFER",
                                                  (out[0] - out[1]).abs().max().item()))
    return same


def main(argv):
    if len(argv) >= 3 and argv[0] == "tensors":
        direction = argv[4] if len(argv) > 4 and argv[3] == "--direction" else "from_hf"
        return 0 if tensors(argv[1], argv[2], direction) else 1
    if len(argv) == 3 and argv[0] == "logits":
        return 0 if logits(argv[1], argv[2]) else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
