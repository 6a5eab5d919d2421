#!/usr/bin/python3
"""Independent PyTorch ViT written from timm's published VisionTransformer architecture
(timm/models/vision_transformer.py: PatchEmbed -> [cls ; patches] + pos_embed -> pre-norm Blocks
(Attention with fused qkv + bias, scale head_dim**-0.5; Mlp fc1 -> exact GELU -> fc2) -> LayerNorm(eps 1e-6)
-> token 0), with timm's module names so its state_dict keys are timm's (num_classes=0).

  reference_vit.py keys PRESET IMAGE_SIZE        print "name shape" per parameter in state_dict order
  reference_vit.py forward IN.pt OUT.pt          load C++ weights strictly, run, write outputs + grads

IN.pt (torch.load): cfg int64 [image, patch, in_chans, dim, depth, heads, mlp_hidden], x [B,C,S,S],
r [B,D] (objective sum(features * r)), w.<timm key> weights.
OUT.pt: features [B,D], tokens [B,1+N,D], grad.x, grad.<timm key> of the objective.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"vit_tiny": (16, 192, 12, 3), "vit_small": (16, 384, 12, 6), "vit_base": (16, 768, 12, 12)}


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):                       # [B,C,S,S] -> [B,N,D]
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):                       # [B,N,D]
        B, N, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).split(D, dim=-1)  # each [B,N,D]; head h = columns h*hd:(h+1)*hd
        q = q.view(B, N, self.heads, hd)
        k = k.view(B, N, self.heads, hd)
        v = v.view(B, N, self.heads, hd)
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) * hd ** -0.5
        a = torch.softmax(s, dim=-1)
        o = torch.einsum("bhqk,bkhd->bqhd", a, v).reshape(B, N, D)
        return self.proj(o)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="none"))


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


class VisionTransformer(nn.Module):
    def __init__(self, image, patch, in_chans, dim, depth, heads, hidden):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (image // patch) ** 2, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward_tokens(self, x):
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        return self.norm(self.blocks(t))

    def forward(self, x):
        return self.forward_tokens(x)[:, 0]


def keys(preset, image):
    patch, dim, depth, heads = PRESETS[preset]
    m = VisionTransformer(image, patch, 3, dim, depth, heads, 4 * dim)
    for name, t in m.state_dict().items():
        print(name, "x".join(str(s) for s in t.shape))
    return 0


def forward(inp, out):
    d = torch.load(inp)
    image, patch, in_chans, dim, depth, heads, hidden = [int(v) for v in d["cfg"]]
    m = VisionTransformer(image, patch, in_chans, dim, depth, heads, hidden).double()
    sd = {k[2:]: v.double() for k, v in d.items() if k.startswith("w.")}
    m.load_state_dict(sd, strict=True)          # names and shapes must be exactly timm's
    x = d["x"].double().requires_grad_(True)
    tokens = m.forward_tokens(x)
    feats = tokens[:, 0]
    (feats * d["r"].double()).sum().backward()
    res = {"features": feats.detach(), "tokens": tokens.detach(), "grad.x": x.grad}
    for n, p in m.named_parameters():
        res["grad." + n] = p.grad
    torch.save(res, out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "keys":
        sys.exit(keys(sys.argv[2], int(sys.argv[3])))
    if len(sys.argv) == 4 and sys.argv[1] == "forward":
        sys.exit(forward(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
