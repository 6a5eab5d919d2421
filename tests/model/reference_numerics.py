#!/usr/bin/python3
"""Independent float64 references for tests/model (numpy where possible, torch.optim for AdamW).

  reference_numerics.py loss IN OUT         VICReg terms of za, zb with numpy (np.var ddof=1, np.cov)
  reference_numerics.py diagnostics IN OUT  collapse diagnostics of z and RankMe of f with numpy
  reference_numerics.py adamw IN OUT        torch.optim.AdamW (two groups) over the given grads/lrs
  reference_numerics.py lars IN OUT         facebookresearch LARS update rule, numpy float64

Files are torch.load / torch.save dicts of tensors.
"""
import sys

import numpy as np
import torch


def np_of(d, k):
    return d[k].detach().double().numpy()


def offdiag(m):
    return m[~np.eye(m.shape[0], dtype=bool)]


def loss(d):
    za, zb = np_of(d, "za"), np_of(d, "zb")
    n, dim = za.shape
    inv = np.mean((za - zb) ** 2)
    hinge = lambda z: np.mean(np.maximum(0.0, 1.0 - np.sqrt(np.var(z, axis=0, ddof=1) + 1e-4)))
    var = (hinge(za) + hinge(zb)) / 2
    ca, cb = np.cov(za, rowvar=False), np.cov(zb, rowvar=False)   # unbiased, (N-1)
    paper = (offdiag(ca) ** 2).sum() / dim + (offdiag(cb) ** 2).sum() / dim
    seed = ((offdiag(ca) ** 2).mean() + (offdiag(cb) ** 2).mean()) / 2
    return {"invariance": inv, "variance": var, "covariance_paper": paper, "covariance_seed": seed}


def diagnostics(d):
    z, f = np_of(d, "z"), np_of(d, "f")
    n, p = z.shape
    std = z.std(axis=0, ddof=1)
    norms = np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    u = z / norms
    sim = u @ u.T
    pairwise = sim[~np.eye(n, dtype=bool)].mean()
    cov = np.cov(z, rowvar=False).reshape(p, p)
    cov_off = (offdiag(cov) ** 2).mean() if p > 1 else 0.0
    collapsed = (std < 0.01).mean()
    s = np.linalg.svd(f, compute_uv=False)
    if s.sum() > 0:
        q = s / s.sum() + 1e-7
        rankme = np.exp(-(q * np.log(q)).sum())
    else:
        rankme = 0.0
    return {"std_min": std.min(), "std_mean": std.mean(), "std_max": std.max(), "pairwise_sim": pairwise,
            "cov_offdiag_sq": cov_off, "collapsed_dims": collapsed, "rankme": rankme}


def adamw(d):
    # d: p0.<i>, p1.<i> initial params of groups 0 (decay) / 1 (no decay); g<s>.<group>.<i> grads of step s;
    # lr [steps], hp = [weight_decay, beta1, beta2, eps]
    steps = d["lr"].numel()
    wd, b1, b2, eps = [float(v) for v in d["hp"]]
    groups = []
    for gi in (0, 1):
        groups.append([d[k].clone() for k in sorted(k for k in d if k.startswith(f"p{gi}."))])
    params = [[torch.nn.Parameter(t.clone()) for t in g] for g in groups]
    opt = torch.optim.AdamW([{"params": params[0], "weight_decay": wd}, {"params": params[1], "weight_decay": 0.0}],
                            lr=1.0, betas=(b1, b2), eps=eps)
    for s in range(steps):
        for gi in (0, 1):
            for i, p in enumerate(params[gi]):
                p.grad = d[f"g{s}.{gi}.{i:03d}"].clone()
        for g in opt.param_groups:
            g["lr"] = float(d["lr"][s])
        opt.step()
    out = {}
    for gi in (0, 1):
        for i, p in enumerate(params[gi]):
            out[f"p{gi}.{i:03d}"] = p.detach()
    return out


def lars(d):
    # Same layout as adamw; hp = [weight_decay, momentum, eta]. Written from facebookresearch's LARS.step:
    #   dp = g (+ wd * p and trust ratio eta*|p|/|dp| unless excluded); mu = momentum*mu + dp; p -= lr*mu
    steps = d["lr"].numel()
    wd, momentum, eta = [float(v) for v in d["hp"]]
    out = {}
    for gi in (0, 1):
        keys = sorted(k for k in d if k.startswith(f"p{gi}."))
        for i, k in enumerate(keys):
            p = d[k].double().numpy().copy()
            mu = np.zeros_like(p)
            for s in range(steps):
                dp = d[f"g{s}.{gi}.{i:03d}"].double().numpy()
                if gi == 0:
                    dp = dp + wd * p
                    pn, un = np.linalg.norm(p), np.linalg.norm(dp)
                    q = eta * pn / un if (pn > 0 and un > 0) else 1.0
                    dp = dp * q
                mu = momentum * mu + dp
                p = p - float(d["lr"][s]) * mu
            out[k] = torch.from_numpy(p)
    return out


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("loss", "diagnostics", "adamw", "lars"):
        print(__doc__, file=sys.stderr)
        return 2
    d = torch.load(sys.argv[2])
    res = {"loss": loss, "diagnostics": diagnostics, "adamw": adamw, "lars": lars}[sys.argv[1]](d)
    torch.save({k: (v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64))
                for k, v in res.items()}, sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
