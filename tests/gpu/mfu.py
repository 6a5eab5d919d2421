#!/usr/bin/env python3
"""Model FLOPs utilization (MFU) for the VICReg train benchmark: the one place where the model's
FLOP count is written down, a bf16 matmul peak measurement, and the benchmark table of a GPU run.

  mfu.py flops [--model vit_small --image-size 96 --proj-hidden-dim 2048 --proj-dim 2048 ...]
      FLOPs per training image (JSON, with the breakdown).
  mfu.py peak [--device cuda --dtype bf16 --sizes 4096,8192,16384]
      square torch.matmul timed with CUDA events; prints {"peak_tflops": ..., ...} (best size).
  mfu.py self-test
      checks the formula against a hand calculation and against the FLOPs that the model's
      forward/backward actually dispatch (torch.utils.flop_counter where present, torch >= 2.1;
      an equivalent TorchDispatchMode counter of mm/addmm/bmm/convolution otherwise, torch 1.13).
  mfu.py table BENCH_DIR
      markdown table of the *.json bench lines in BENCH_DIR (peak.json = the matmul peak).

FLOP convention (the usual MFU one, e.g. PaLM appendix B): only matrix multiplications, 2 FLOPs per
multiply-add; one training image = two views, each through encoder + projector; training =
3 x forward (the backward pass does two matmuls per forward matmul: input and weight gradients).
Not counted: the VICReg loss (covariance matmuls, ~0.5% of the total at 2048-d), the collapse
diagnostics, norms, softmax, GELU, optimizer. The patch embedding's input gradient is never computed
(the input needs no gradient), so the exact dispatched fwd+bwd is 3 x forward - patch embed (2.99x
for vit_small at 96 px); the self-test checks both numbers.
"""
import argparse
import contextlib
import glob
import importlib.util
import json
import os
import sys
import time

PRESETS = {  # name: (patch, embed_dim, depth, heads); the same table as reference_train.py / VitOptions
    "vit_tiny": (16, 192, 12, 3),
    "vit_small": (16, 384, 12, 6),
    "vit_base": (16, 768, 12, 12),
}


def forward_flops_per_view(image_size, patch, dim, depth, heads, proj_hidden=2048, proj_dim=2048,
                           proj_layers=3, mlp_ratio=4.0, in_chans=3, class_token=True):
    """Matmul FLOPs of one image (one view) through the ViT encoder and the projector, forward only.
    Returns a dict of the parts and their sum under 'forward'."""
    assert image_size % patch == 0 and dim % heads == 0
    n_patches = (image_size // patch) ** 2
    n = n_patches + (1 if class_token else 0)          # tokens in every block
    hidden = int(dim * mlp_ratio)
    f = {}
    f["patch_embed"] = 2 * n_patches * (in_chans * patch * patch) * dim   # conv P x P stride P = one matmul
    f["qkv"] = depth * 2 * n * dim * (3 * dim)
    f["attn_scores"] = depth * 2 * n * n * dim       # heads x (n x hd) @ (hd x n), hd = dim / heads
    f["attn_pv"] = depth * 2 * n * n * dim           # heads x (n x n) @ (n x hd)
    f["attn_proj"] = depth * 2 * n * dim * dim
    f["mlp"] = depth * 2 * (2 * n * dim * hidden)   # fc1 and fc2
    widths = [dim] + [proj_hidden] * (proj_layers - 1) + [proj_dim]   # facebookresearch Projector
    f["projector"] = sum(2 * widths[i] * widths[i + 1] for i in range(len(widths) - 1))
    f["forward"] = sum(f.values())
    return f


def train_flops_per_image(image_size, patch, dim, depth, heads, proj_hidden=2048, proj_dim=2048, views=2, **kw):
    """Model FLOPs of one training image: views x (forward + backward) = views x 3 x forward."""
    return views * 3 * forward_flops_per_view(image_size, patch, dim, depth, heads, proj_hidden, proj_dim, **kw)["forward"]


def flops_from_bench(j):
    """FLOPs per training image for one bench JSON line (vicreg_bench train or reference_train.py)."""
    return train_flops_per_image(j["image_size"], j["patch_size"], j["embed_dim"], j["depth"], j["heads"],
                                 j.get("proj_hidden_dim", 2048), j.get("proj_dim", 2048))


# ---- bf16 matmul peak ---------------------------------------------------------------------------
def matmul_peak(device="cuda", dtype="bf16", sizes=(4096, 8192, 16384), seconds=0.5):
    import torch
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    out = {"bench": "matmul_peak", "device": device, "dtype": dtype, "torch": torch.__version__, "sizes": {}}
    if cuda:
        out["gpu"] = torch.cuda.get_device_name(dev)
    for n in sizes:
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)
        flop = 2.0 * n * n * n

        def timed(iters):
            if cuda:
                torch.cuda.synchronize(dev)
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                for _ in range(iters):
                    torch.matmul(a, b)
                e1.record()
                e1.synchronize()
                return e0.elapsed_time(e1) / 1e3
            t0 = time.perf_counter()
            for _ in range(iters):
                torch.matmul(a, b)
            return time.perf_counter() - t0

        t = timed(3)                                     # warm up (cuBLAS heuristics, clocks)
        iters = max(3, min(200, int(seconds / max(t / 3, 1e-6))))
        t = min(timed(iters) for _ in range(3))          # best of 3 runs
        out["sizes"][str(n)] = flop * iters / t / 1e12
    best = max(out["sizes"], key=lambda k: out["sizes"][k])
    out["peak_tflops"] = out["sizes"][best]
    out["peak_size"] = int(best)
    return out


# ---- self-test ----------------------------------------------------------------------------------
def _hand_vit_small_96():
    """vit_small (P 16, D 384, 12 blocks) at 96 px, projector 384-2048-2048-2048, worked by hand:
    36 patches + cls = 37 tokens.
      patch embed  2*36*768*384                      =    21,233,664
      per block    qkv 2*37*384*1152                 =    32,735,232
                   scores, PV 2 x 2*37*37*384        =     2,102,784
                   proj 2*37*384*384                 =    10,911,744
                   MLP 2 x 2*37*384*1536             =    87,293,952
                   block                             =   133,043,712   x 12 = 1,596,524,544
      projector    2*(384*2048 + 2048*2048 + 2048*2048) = 18,350,080
      forward, one view                              = 1,636,108,288
      training image = 2 views x 3                   = 9,816,649,728  (~9.82 GFLOP)"""
    return 1636108288, 9816649728


class _DispatchCounter:
    """Matmul FLOPs of the aten ops a region dispatches (torch 1.13 has no flop_counter).
    mm, addmm, bmm, baddbmm, convolution and convolution_backward (by output mask)."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        aten = torch.ops.aten
        counter = self
        self.total = 0

        def prod(xs):
            p = 1
            for x in xs:
                p *= int(x)
            return p

        def conv_flops(x_shape, w_shape, out_shape):
            # every output element: in_channels/groups * kernel multiply-adds
            return 2 * prod(out_shape) * prod(w_shape[1:])

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                p = func.overloadpacket
                if p is aten.mm:
                    (m, k), n = args[0].shape, args[1].shape[1]
                    counter.total += 2 * m * k * n
                elif p is aten.addmm:
                    (m, k), n = args[1].shape, args[2].shape[1]
                    counter.total += 2 * m * k * n
                elif p in (aten.bmm, aten.baddbmm):
                    a, b = (args[0], args[1]) if p is aten.bmm else (args[1], args[2])
                    counter.total += 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
                elif p is aten.convolution:
                    counter.total += conv_flops(args[0].shape, args[1].shape, out.shape)
                elif p is aten.convolution_backward:
                    grad_out, x, w = args[0], args[1], args[2]
                    mask = args[-1]
                    counter.total += conv_flops(x.shape, w.shape, grad_out.shape) * (int(mask[0]) + int(mask[1]))
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def _math_sdpa():
    """Attention through the math backend (two bmm): the counters may lack formulas for the fused
    CPU kernel (torch 2.7's flop_counter has none for _scaled_dot_product_flash_attention_for_cpu)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def _count(fn):
    """(flops, counter name) of fn()."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        c = _DispatchCounter()
        with _math_sdpa(), c:
            fn()
        return c.total, "TorchDispatchMode counter (mm/addmm/bmm/conv)"
    m = FlopCounterMode(display=False)
    with _math_sdpa(), m:
        fn()
    return m.get_total_flops(), "torch.utils.flop_counter"


def self_test():
    import torch
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "worker", "bench"))
    import reference_train as ref

    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + msg)
        ok = ok and cond

    fwd_hand, train_hand = _hand_vit_small_96()
    f = forward_flops_per_view(96, 16, 384, 12, 6, 2048, 2048)
    check(f["forward"] == fwd_hand, f"vit_small@96 forward per view {f['forward']:,} == hand {fwd_hand:,}")
    t = train_flops_per_image(96, 16, 384, 12, 6, 2048, 2048)
    check(t == train_hand, f"vit_small@96 training image {t:,} == hand {train_hand:,}")
    j = {"image_size": 96, "patch_size": 16, "embed_dim": 384, "depth": 12, "heads": 6, "proj_dim": 2048,
         "proj_hidden_dim": 2048}
    check(flops_from_bench(j) == train_hand, "flops_from_bench(bench JSON of vit_small@96) == hand")

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    # Configurations: a tiny custom ViT and vit_small at 96 px, through the models the benchmarks run.
    # (The preset goes through timm.create_model('vit_small_patch16_224', img_size=96) where timm imports.)
    configs = [("custom", "P8 D64 L2 H2 @32 proj 128", (32, 8, 64, 2, 2, 128, 128)),
               ("vit_small", "@96 proj 2048", (96, 16, 384, 12, 6, 2048, 2048))]
    for model, label, (S, P, D, L, H, PH, PO) in configs:
        for kind in ("own", "timm"):
            if kind == "timm" and importlib.util.find_spec("timm") is None:
                print(f"skip timm encoder ({label}): timm not importable")
                continue
            enc, desc, _ = ref.build_encoder(kind, model, S, P, D, L, H)
            net = torch.nn.ModuleDict({"encoder": enc, "projector": ref.projector(D, PH, PO)}).train()
            B = 2
            x = torch.randn(B, 3, S, S)

            def fwd():
                return net["projector"](net["encoder"](x))

            counted, how = _count(fwd)
            want = B * forward_flops_per_view(S, P, D, L, H, PH, PO)["forward"]
            check(counted == want, f"{desc} {label}: forward counted {counted:,} == formula {want:,} ({how})")

            def fwd_bwd():
                fwd().float().pow(2).mean().backward()

            counted, how = _count(fwd_bwd)
            fp = forward_flops_per_view(S, P, D, L, H, PH, PO)
            exact = B * (3 * fp["forward"] - fp["patch_embed"])   # no input gradient for the images
            check(counted == exact, f"{desc} {label}: fwd+bwd counted {counted:,} == 3 x forward - patch embed "
                  f"{exact:,} (ratio {counted / (B * fp['forward']):.4f} vs the 3.0 convention)")
    print("self-test: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


# ---- table --------------------------------------------------------------------------------------
def _impl(j):
    if j["impl"] == "cpp":
        return "C++ (vicreg_bench)"
    enc = j.get("encoder") or "own"
    return "Python " + ("torch.compile" if j.get("compile") else "eager") + \
        (" (timm ViT)" if enc.startswith("timm") else " (own ViT)")


def _key(j):
    return (j.get("device", ""), j["precision"], j["batch_size"], j["image_size"], j["model"])


def _train_rows(rows, peak):
    def ref_of(j, compiled):   # the Python run of the same device/precision/batch/size/model
        for r in rows:
            if r["impl"] == "python" and bool(r.get("compile")) == compiled and _key(r) == _key(j):
                return r
        return None

    out = ["| impl | model | precision | batch | images/s | step ms | vs Python eager | vs torch.compile | "
           "GFLOP/img | MFU % |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = {"cpp": 0, "python": 1}
    rows.sort(key=lambda r: (_key(r), order.get(r["impl"], 2), bool(r.get("compile"))))
    for j in rows:
        ips = j["images_per_s"]
        fl = flops_from_bench(j)
        cells = []
        for compiled in (False, True):
            r = ref_of(j, compiled)
            cells.append(f"{ips / r['images_per_s']:.2f}x" if r else "-")
        mfu = f"{100 * ips * fl / (peak['peak_tflops'] * 1e12):.1f}" if peak else "-"
        out.append(f"| {_impl(j)} | {j['model']}@{j['image_size']} | {j['precision']} | {j['batch_size']} | "
                   f"{ips:,.0f} | {j['step_ms']:.1f} | {cells[0]} | {cells[1]} | {fl / 1e9:.2f} | {mfu} |")
    out.append("")
    out.append("Images/s count training images (two views each); synthetic inputs, no data loading; each line is "
               "the mean over the measured steps after warm-up (compile time is in the warm-up: `first_step_s` in "
               "the JSON). MFU = images/s x model FLOPs per image / measured matmul peak (tests/gpu/mfu.py: matmul "
               "FLOPs only, 3 x forward, loss and diagnostics not counted); fp32 rows are also divided by the "
               f"{peak['dtype'] if peak else 'bf16'} peak.")
    return out


def table(bench_dir):
    rows, peak, other = [], None, []
    for path in sorted(glob.glob(os.path.join(bench_dir, "*.json"))):
        with open(path) as fh:
            lines = [ln for ln in fh.read().splitlines() if ln.startswith("{")]
        for ln in lines:
            try:
                j = json.loads(ln)
            except ValueError as e:
                print(f"<!-- {os.path.basename(path)}: unreadable line ({e}) -->")
                continue
            if j.get("bench") == "matmul_peak":
                peak = j
            elif j.get("bench") == "train":
                rows.append(j)
            else:
                other.append(j)
    out = []
    if peak:
        sizes = ", ".join(f"{k}: {v:.4g}" for k, v in peak["sizes"].items())
        out.append(f"Measured {peak['dtype']} matmul peak on {peak.get('gpu') or peak['device']}: "
                   f"**{peak['peak_tflops']:.4g} TFLOP/s** (n x n x n torch.matmul, TFLOP/s by n: {sizes}).")
    else:
        out.append("No matmul peak measured (bench/matmul_peak.json missing): MFU column empty.")
    out.append("")
    out += _train_rows(rows, peak) if rows else ["No train benchmark results."]
    for j in other:
        if j.get("bench") == "worker":
            ips = j.get("images_per_s_median")
            out += ["", f"End-to-end vicreg_worker ({j['device']} {j['precision']}, batch {j['batch_size']}, synthetic "
                        f"CIFAR-10 files, on-device augmentation where CUDA): {j['steps']} steps, median "
                        + (f"{ips:,.0f} img/s" if ips else "- img/s")
                        + f", data wait {100 * j['data_wait_frac']:.1f}%, loss {j['loss_first']:.3f} -> "
                        f"{j['loss_last']:.3f}, all finite: {j['all_finite']}, went down: {j['loss_went_down']}."]
        elif j.get("benchmark") == "augment":
            out += ["", f"Augmentation ({j['device']}, two views, {j['source_size']} -> {j['image_size']} px, batch "
                        f"{j['batch_size']}, order {j['order']}): {j['images_per_s']:,.0f} img/s."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flops", help="FLOPs per training image")
    f.add_argument("--model", default="vit_small")
    f.add_argument("--patch-size", type=int, default=16)
    f.add_argument("--embed-dim", type=int, default=384)
    f.add_argument("--depth", type=int, default=12)
    f.add_argument("--heads", type=int, default=6)
    f.add_argument("--image-size", type=int, default=96)
    f.add_argument("--proj-hidden-dim", type=int, default=2048)
    f.add_argument("--proj-dim", type=int, default=2048)
    p = sub.add_parser("peak", help="matmul peak TFLOP/s")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--sizes", default="4096,8192,16384")
    p.add_argument("--seconds", type=float, default=0.5, help="approximate time per timed run")
    sub.add_parser("self-test", help="check the FLOP formula")
    t = sub.add_parser("table", help="markdown table of a bench folder")
    t.add_argument("bench_dir")
    a = ap.parse_args()
    if a.cmd == "flops":
        name = a.model.replace("_patch16_224", "")
        P, D, L, H = PRESETS.get(name, (a.patch_size, a.embed_dim, a.depth, a.heads))
        parts = forward_flops_per_view(a.image_size, P, D, L, H, a.proj_hidden_dim, a.proj_dim)
        print(json.dumps({"model": a.model, "image_size": a.image_size, "patch_size": P, "embed_dim": D, "depth": L,
                          "heads": H, "forward_per_view": parts,
                          "train_flops_per_image": train_flops_per_image(a.image_size, P, D, L, H, a.proj_hidden_dim,
                                                                         a.proj_dim)}))
        return 0
    if a.cmd == "peak":
        print(json.dumps(matmul_peak(a.device, a.dtype, [int(s) for s in a.sizes.split(",")], a.seconds)))
        return 0
    if a.cmd == "self-test":
        return self_test()
    print(table(a.bench_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
