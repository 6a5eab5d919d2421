#!/usr/bin/python3
"""An encoder fetched with `vicregctl export` checked independently of the C++ code:

  export_load_check.py ENCODER.safetensors SHA256 IMG_SIZE

1. its SHA-256 (hashlib) is the one the coordinator announced;
2. the metadata carries the geometry, img_size and the normalization mean/std (3 values each, std > 0);
3. it loads with strict=True into the independent ViT of tests/eval/export_parity.py (timm's
   architecture written out in PyTorch; the file parsed by hand) and gives finite features.
Exit 0 when everything holds, 1 otherwise.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eval"))
import torch  # noqa: E402
from export_parity import VisionTransformer, read_safetensors, timm_keys  # noqa: E402


def main():
    path, want_sha, img = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ok = True

    def check(cond, what):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        ok = ok and bool(cond)

    with open(path, "rb") as f:
        got_sha = hashlib.sha256(f.read()).hexdigest()
    check(got_sha == want_sha, f"sha256 {got_sha} is the coordinator's")
    enc, meta = read_safetensors(path)
    patch, dim, depth, heads = (int(meta[k]) for k in ("patch_size", "embed_dim", "depth", "num_heads"))
    check(meta.get("img_size") == str(img), f"metadata img_size {meta.get('img_size')}")
    mean, std = json.loads(meta.get("mean", "null")), json.loads(meta.get("std", "null"))
    check(isinstance(mean, list) and len(mean) == 3 and isinstance(std, list) and len(std) == 3 and
          all(s > 0 for s in std), f"metadata mean {mean} std {std} ({meta.get('normalization_source')})")
    want = sorted(timm_keys(patch, dim, depth, img))
    got = sorted((k, list(t.shape)) for k, (_, t) in enc.items())
    check(got == want, f"{len(got)} tensors with exactly timm's keys and shapes")
    model = VisionTransformer(img, patch, dim, depth, heads)
    model.load_state_dict({k: t for k, (_, t) in enc.items()}, strict=True)
    model.eval()
    x = (torch.rand(4, 3, img, img) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        y = model(x)
    check(list(y.shape) == [4, dim] and torch.isfinite(y).all().item(), f"strict load + forward: features {list(y.shape)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
