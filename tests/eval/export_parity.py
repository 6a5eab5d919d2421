#!/usr/bin/python3
"""Export parity for `vicreg_eval export` / `vicreg_eval extract` (issue 7), independent of the C++ code.

  export_parity.py ENCODER.safetensors FEATURES.safetensors CACHE.safetensors ARCH IMG_SIZE

1. Parses the safetensors files by hand (8-byte little-endian header length, JSON header, raw
   little-endian bytes): the `safetensors` package is not used.
2. Checks that the exported encoder has exactly timm's state_dict keys and shapes for
   timm.create_model(ARCH, img_size=IMG_SIZE, num_classes=0) (written out below from timm's
   published VisionTransformer, vision_transformer.py), all float32, and the metadata.
3. Builds a ViT written here from timm's architecture (PatchEmbed conv -> [cls; patches] + pos_embed
   -> pre-norm blocks: LN(eps 1e-6) -> fused-qkv attention (scale head_dim^-0.5) -> proj, LN ->
   fc1 -> exact GELU -> fc2 -> final LN -> token 0), loads the file with strict=True, runs the
   images of the tensor cache normalized with its metadata mean/std, and compares with the
   features `vicreg_eval extract` wrote.
Exit 0 when everything matches (max |diff| < 1e-4), 1 otherwise.
"""
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "I8": torch.int8, "BOOL": torch.bool}
ARCHS = {"vit_tiny_patch16_224": (16, 192, 12, 3), "vit_small_patch16_224": (16, 384, 12, 6),
         "vit_base_patch16_224": (16, 768, 12, 12)}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        buf = bytearray(data[b:e])
        t = torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]) if e > b else torch.empty(0, dtype=DTYPES[info["dtype"]])
        tensors[name] = (info["dtype"], t.reshape(info["shape"]).clone())
    return tensors, meta


def timm_keys(patch, dim, depth, img, in_chans=3, mlp_ratio=4.0):
    """timm VisionTransformer(num_classes=0, global_pool='token', class_token=True) state_dict."""
    hidden = int(dim * mlp_ratio)
    keys = [("cls_token", [1, 1, dim]), ("pos_embed", [1, 1 + (img // patch) ** 2, dim]),
            ("patch_embed.proj.weight", [dim, in_chans, patch, patch]), ("patch_embed.proj.bias", [dim])]
    for i in range(depth):
        p = "blocks.%d." % i
        keys += [(p + "norm1.weight", [dim]), (p + "norm1.bias", [dim]),
                 (p + "attn.qkv.weight", [3 * dim, dim]), (p + "attn.qkv.bias", [3 * dim]),
                 (p + "attn.proj.weight", [dim, dim]), (p + "attn.proj.bias", [dim]),
                 (p + "norm2.weight", [dim]), (p + "norm2.bias", [dim]),
                 (p + "mlp.fc1.weight", [hidden, dim]), (p + "mlp.fc1.bias", [hidden]),
                 (p + "mlp.fc2.weight", [dim, hidden]), (p + "mlp.fc2.bias", [dim])]
    keys += [("norm.weight", [dim]), ("norm.bias", [dim])]
    return keys


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # [B, N, D]
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd]
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):  # [B, C, S, S] -> [B, N, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img, patch, dim, depth, heads, in_chans=3, mlp_ratio=4.0):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim))
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads, int(dim * mlp_ratio)) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):  # [B, C, S, S] -> [B, D] normed CLS token
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


def main():
    enc_path, feat_path, cache_path, arch, img = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    ok = True
    enc, meta = read_safetensors(enc_path)
    patch, dim, depth, heads = ARCHS[arch]
    want = timm_keys(patch, dim, depth, img)
    got = [(k, list(t.shape)) for k, (_, t) in enc.items()]
    if sorted(got) != sorted(want):
        missing = sorted(set(k for k, _ in want) - set(k for k, _ in got))
        extra = sorted(set(k for k, _ in got) - set(k for k, _ in want))
        shapes = [(k, s, dict(want)[k]) for k, s in got if k in dict(want) and s != dict(want)[k]]
        print("key/shape mismatch with timm: missing %s extra %s shapes %s" % (missing[:5], extra[:5], shapes[:5]))
        ok = False
    else:
        print("keys: %d tensors, exactly timm's %s(img_size=%d, num_classes=0) state_dict" % (len(got), arch, img))
    bad = [k for k, (dt, _) in enc.items() if dt != "F32"]
    if bad:
        print("non-F32 tensors: %s" % bad[:5])
        ok = False
    for k, v in (("architecture", arch), ("img_size", str(img)), ("patch_size", str(patch)), ("num_classes", "0")):
        if meta.get(k) != v:
            print("metadata %s = %r, expected %r" % (k, meta.get(k), v))
            ok = False

    model = VisionTransformer(img, patch, dim, depth, heads)
    model.load_state_dict({k: t for k, (_, t) in enc.items()}, strict=True)
    model.eval()

    cache, cmeta = read_safetensors(cache_path)
    images = cache["images"][1]  # uint8 [N, 3, S, S]
    mean = torch.tensor(json.loads(cmeta["mean"]), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(json.loads(cmeta["std"]), dtype=torch.float32).view(1, -1, 1, 1)
    x = (images.float() / 255.0 - mean) / std
    with torch.no_grad():
        ref = model(x)
    feats, _ = read_safetensors(feat_path)
    got_f = feats["features"][1]
    labels = feats["labels"][1]
    if got_f.shape != ref.shape:
        print("features shape %s, reference %s" % (list(got_f.shape), list(ref.shape)))
        return 1
    diff = (got_f - ref).abs().max().item()
    print("features [%d, %d]: max |C++ - reference| = %.3g (feature scale %.3g)" %
          (ref.shape[0], ref.shape[1], diff, ref.abs().max().item()))
    if not diff < 1e-4:
        ok = False
    if not torch.equal(labels, cache["labels"][1]):
        print("labels differ from the cache's")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
