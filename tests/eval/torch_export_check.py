#!/usr/bin/python3
"""Continues a `vicreg_eval export --format torch` file in PyTorch, as docs/CHECKPOINTS.md tells a user to.

Usage: /usr/bin/python3 tests/eval/torch_export_check.py EXPORT.pt
Loads it with torch.load, builds the two parameter groups from param_names (parameters from the
exported state_dict), loads the optimizer state into torch.optim.AdamW, checks every state tensor sits
on a parameter of its shape, takes one AdamW step and checks it against AdamW's update written out by
hand from the loaded state. Prints one JSON line (group settings, state counts, the step, and a
checksum of exp_avg per parameter name) for the C++ test to compare with the checkpoint it exported.
"""
import json
import sys

import torch

ck = torch.load(sys.argv[1])
assert ck["format"] == "vicreg-torch-export-v1", ck["format"]
params = {n: torch.nn.Parameter(t.detach().clone().float()) for n, t in ck["model"].items()}
groups = [{"params": [params[n] for n in names]} for names in ck["param_names"]]
opt = torch.optim.AdamW(groups, lr=123.0)  # every setting comes from the state dict
opt.load_state_dict(ck["optimizer"])

flat = [n for names in ck["param_names"] for n in names]
out = {"groups": [], "with_state": 0, "steps": set(), "exp_avg_sum": {}}
for g in opt.param_groups:
    out["groups"].append({"lr": g["lr"], "weight_decay": g["weight_decay"], "betas": list(g["betas"]),
                          "eps": g["eps"], "params": len(g["params"])})
for i, name in enumerate(flat):
    p = params[name]
    s = opt.state.get(p)
    if not s:
        continue
    assert s["exp_avg"].shape == p.shape and s["exp_avg_sq"].shape == p.shape, name
    out["with_state"] += 1
    out["steps"].add(int(s["step"]))
    out["exp_avg_sum"][name] = float(s["exp_avg"].double().sum())
out["steps"] = sorted(out["steps"])

# One step with a fixed gradient, against AdamW's update written out from the loaded state (at lr 1e-3:
# the loaded rate may be 0 early in the warmup, which would hide a swapped moment).
expect = {}
for g in opt.param_groups:
    g["lr"] = 1e-3
    b1, b2 = g["betas"]
    for p in g["params"]:
        p.grad = torch.full_like(p, 0.01)
        s = opt.state.get(p)
        if not s:
            continue
        t = float(s["step"]) + 1
        m = b1 * s["exp_avg"] + (1 - b1) * p.grad
        v = b2 * s["exp_avg_sq"] + (1 - b2) * p.grad * p.grad
        denom = (v.sqrt() / (1 - b2 ** t) ** 0.5) + g["eps"]
        expect[p] = p.detach() * (1 - g["lr"] * g["weight_decay"]) - g["lr"] / (1 - b1 ** t) * m / denom
opt.step()
worst = max(float((p.detach() - e).abs().max() / (e.abs().max() + 1e-12)) for p, e in expect.items())
assert worst < 1e-5, worst
out["step_rel_err"] = worst
print(json.dumps(out))
