#!/usr/bin/python3
"""Python (PyTorch) twin of `vicreg_bench train`: the same model, loss, optimizer step and
diagnostics, written the way the seed pipeline / timm / facebookresearch write them, with the same
flags and the same JSON line ("impl": "python"). Run with /usr/bin/python3 (Debian python3-torch).

The encoder is timm's VisionTransformer when timm is importable (`--encoder auto`, the default:
timm.create_model('vit_small_patch16_224', img_size=S, num_classes=0) for the presets), else the
VisionTransformer copy in this file (same modules, parameter names and math); the JSON line says
which ("encoder", and "encoder_note" when timm did not import).
`--compile` runs the forward + loss through torch.compile (torch >= 2.0; the backward follows through
AOTAutograd; clip, AdamW and diagnostics stay eager, as in the C++ bench); the first warm-up step
includes the compilation ("first_step_s").

  /usr/bin/python3 worker/bench/reference_train.py --model vit_small --image-size 96 --batch-size 32 --steps 5 --threads 1
  python3 worker/bench/reference_train.py --device cuda --precision bf16 --batch-size 256 --steps 30 --warmup-steps 5 --compile
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "vit_tiny": (16, 192, 12, 3),
    "vit_small": (16, 384, 12, 6),
    "vit_base": (16, 768, 12, 12),
}


# ---- timm VisionTransformer (num_classes=0, global_pool='token') ------------------------------
class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if hasattr(F, "scaled_dot_product_attention"):   # timm's fused_attn path (torch >= 2.0)
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(dim=-1)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img_size, patch, dim, depth, heads, in_chans=3):
        super().__init__()
        n = (img_size // patch) ** 2
        self.patch_embed = PatchEmbed(patch, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return x[:, 0]


def build_encoder(kind, model, image_size, patch, dim, depth, heads):
    """(module, description, note): timm's ViT (kind 'timm', or 'auto' when timm imports) or our copy ('own').
    Both return the class-token feature after the final norm (timm: num_classes=0, global_pool='token')."""
    note = ""
    if kind in ("auto", "timm"):
        try:
            import timm
            from timm.models.vision_transformer import VisionTransformer as TimmVit
        except Exception as e:  # noqa: BLE001 (any import failure: fall back and say why)
            if kind == "timm":
                raise SystemExit(f"--encoder timm: timm is not importable ({type(e).__name__}: {e})")
            note = f"timm not importable ({type(e).__name__}: {e}); own ViT copy"
        else:
            name = model.replace("_patch16_224", "")
            if name in PRESETS:
                timm_name = f"{name}_patch16_224"
                enc = timm.create_model(timm_name, pretrained=False, img_size=image_size, num_classes=0)
                return enc, f"timm {timm.__version__} {timm_name}(img_size={image_size})", note
            enc = TimmVit(img_size=image_size, patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads,
                          num_classes=0)
            return enc, f"timm {timm.__version__} VisionTransformer(P{patch} D{dim} L{depth} H{heads})", note
    return VisionTransformer(image_size, patch, dim, depth, heads), "own", note


def projector(embedding, hidden, out):
    # facebookresearch/vicreg Projector with mlp = f"{hidden}-{hidden}-{out}"
    f = [embedding, hidden, hidden, out]
    layers = []
    for i in range(len(f) - 2):
        layers += [nn.Linear(f[i], f[i + 1]), nn.BatchNorm1d(f[i + 1]), nn.ReLU(True)]
    layers.append(nn.Linear(f[-2], f[-1], bias=False))
    return nn.Sequential(*layers)


def off_diagonal(x):
    n, m = x.shape
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(x, y, lam=25.0, mu=25.0, nu=1.0):
    # facebookresearch/vicreg VICReg.forward (one process: no gather)
    repr_loss = F.mse_loss(x, y)
    n, d = x.shape
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (n - 1)
    cov_y = (y.T @ y) / (n - 1)
    cov_loss = off_diagonal(cov_x).pow_(2).sum().div(d) + off_diagonal(cov_y).pow_(2).sum().div(d)
    return lam * repr_loss + mu * std_loss + nu * cov_loss


@torch.no_grad()
def diagnostics(z, feats):
    # The seed's collapse diagnostics + RankMe, as in the C++ worker/train/diagnostics.cc.
    z = z.detach().float()
    std = z.std(dim=0)
    zn = F.normalize(z, dim=1)
    sim = zn @ zn.T
    n = z.shape[0]
    pairwise = (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))
    zc = z - z.mean(0)
    cov = zc.T @ zc / (n - 1)
    cov_off = off_diagonal(cov).pow(2).mean()
    collapsed = (std < 0.01).float().mean()
    s = torch.linalg.svdvals(feats.detach().float())
    p = s / s.sum() + 1e-7
    rankme = torch.exp(-(p * p.log()).sum())
    return [std.min().item(), std.mean().item(), std.max().item(), pairwise.item(), cov_off.item(),
            collapsed.item(), rankme.item()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit_small")
    ap.add_argument("--patch-size", type=int, default=16)
    ap.add_argument("--embed-dim", type=int, default=384)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--proj-dim", type=int, default=2048)
    ap.add_argument("--proj-hidden-dim", type=int, default=2048)
    ap.add_argument("--no-diagnostics", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="", help="write a chrome://tracing trace of the measured steps")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="bf16/fp16: torch.autocast forward on CUDA (GradScaler for fp16), loss in fp32")
    ap.add_argument("--encoder", default="auto", choices=["auto", "timm", "own"],
                    help="auto: timm's VisionTransformer when timm is importable, else the copy in this file")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the forward + loss (torch >= 2.0); needs --warmup-steps >= 1")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode (default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs)")
    a = ap.parse_args()
    if a.precision != "fp32" and not a.device.startswith("cuda"):
        print("--precision bf16/fp16 needs --device cuda", file=sys.stderr)
        return 2
    if a.compile and not hasattr(torch, "compile"):
        print(f"--compile needs torch.compile (PyTorch >= 2.0); this is torch {torch.__version__}", file=sys.stderr)
        return 2
    if a.compile and a.warmup_steps < 1:
        print("--compile needs --warmup-steps >= 1 (the first step compiles)", file=sys.stderr)
        return 2
    name = a.model.replace("_patch16_224", "")
    if name in PRESETS:
        patch, dim, depth, heads = PRESETS[name]
    elif name in ("custom", "vit_custom"):
        patch, dim, depth, heads = a.patch_size, a.embed_dim, a.depth, a.heads
    else:
        print(f"--model: unknown model '{a.model}'; valid: vit_tiny, vit_small, vit_base, custom", file=sys.stderr)
        return 2
    if a.image_size % patch != 0 or dim % heads != 0 or a.batch_size < 2 or a.steps < 1:
        print("invalid geometry/batch/steps", file=sys.stderr)
        return 2
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    encoder, encoder_desc, encoder_note = build_encoder(a.encoder, a.model, a.image_size, patch, dim, depth, heads)
    if encoder_note:
        print(f"reference_train.py: {encoder_note}", file=sys.stderr)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.projector = projector(dim, a.proj_hidden_dim, a.proj_dim)

    dev = torch.device(a.device)
    net = Net().to(dev).train()
    decay, no_decay = [], []
    for n_, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or n_.endswith("pos_embed") or n_.endswith("cls_token") else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    B, S = a.batch_size, a.image_size
    xa = torch.randn(B, 3, S, S).to(dev)
    xb = torch.randn(B, 3, S, S).to(dev)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    scaler = torch.cuda.amp.GradScaler() if a.precision == "fp16" else None

    def forward_loss(xa, xb):
        with torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None):
            fa = net.encoder(xa)
            fb = net.encoder(xb)
            za = net.projector(fa)
            zb = net.projector(fb)
        return vicreg_loss(za.float(), zb.float()), za, fa

    step_fn = torch.compile(forward_loss, mode=a.compile_mode) if a.compile else forward_loss
    times, cpu_times = [], []
    loss_first = loss_last = 0.0
    first_step_s = 0.0
    prof = None
    for s in range(a.warmup_steps + a.steps):
        if s == a.warmup_steps and a.profile:
            prof = torch.autograd.profiler.profile()
            prof.__enter__()
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss, za, fa = step_fn(xa, xb)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if not a.no_diagnostics:
            diagnostics(za, fa)
        lv = loss.item()
        t1, c1 = time.perf_counter(), time.process_time()
        if s == 0:
            loss_first = lv
            first_step_s = t1 - t0
        loss_last = lv
        if s >= a.warmup_steps:
            times.append(t1 - t0)
            cpu_times.append(c1 - c0)
    if prof is not None:
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(a.profile)
    mean_s = sum(times) / len(times)
    print(json.dumps({
        "bench": "train", "impl": "python", "model": a.model, "patch_size": patch, "embed_dim": dim,
        "depth": depth, "heads": heads, "image_size": S, "batch_size": B, "proj_dim": a.proj_dim,
        "proj_hidden_dim": a.proj_hidden_dim, "diagnostics": not a.no_diagnostics, "steps": a.steps,
        "threads": torch.get_num_threads(), "device": a.device, "precision": a.precision, "params": sum(p.numel() for p in net.parameters()),
        "encoder": encoder_desc, "encoder_note": encoder_note or None, "compile": a.compile, "compile_mode": a.compile_mode if a.compile else None,
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "first_step_s": first_step_s,
        "images_per_s": B / mean_s, "step_ms": mean_s * 1e3, "step_ms_min": min(times) * 1e3,
        "cpu_ms": sum(cpu_times) / len(cpu_times) * 1e3,
        "loss_first": loss_first, "loss_last": loss_last}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
