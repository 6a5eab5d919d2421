#!/usr/bin/python3
"""Compare two vicreg_worker run directories (used by tests/comm/comm_worker_test.cc).

  compare_runs.py REF OTHER [OTHER...] --steps N [--rtol 1e-5] [--bitwise] [--from-step K] [--max-abs-diff D]

Checks, for steps K..N of metrics.jsonl, that the loss components (loss, invariance, variance,
covariance) agree to a relative tolerance, and that the newest checkpoint of each run (the one
named by checkpoints/latest) holds the same model tensors:
  default:   max|a - b| <= rtol * max|a| + atol per tensor (parameters and BN buffers), rtol 1e-5 and
             atol 1e-6: relative to each tensor's scale, since BN running means and small biases are
             sums with cancellation whose elements can be far smaller than their rounding error
  --max-abs-diff D: instead, max|a - b| <= D for every model tensor element (absolute).
  --bitwise: identical loss values and identical model + optimizer tensors.
The summary line reports the worst loss-component relative difference and the worst absolute
parameter difference.
Prints one line per problem and exits 1 if there is any, 0 otherwise.
"""
import argparse
import json
import os
import sys

import torch

COMPONENTS = ("loss", "invariance", "variance", "covariance")


def metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    rows = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            rows[row["step"]] = row
    return rows


def latest_checkpoint(run_dir):
    ck = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(ck, "latest")) as f:
        name = f.read().strip()
    return torch.load(os.path.join(ck, name), map_location="cpu"), name


def flat_tensors(obj, prefix=""):
    """Every tensor inside nested dicts/lists, keyed by its path."""
    out = {}
    if torch.is_tensor(obj):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat_tensors(v, f"{prefix}[{i}]"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("others", nargs="+", metavar="other")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--from-step", type=int, default=1)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--max-abs-diff", type=float, default=None)
    ap.add_argument("--bitwise", action="store_true")
    a = ap.parse_args()
    failed = False
    for other in a.others:
        failed = compare(a, other) or failed
    return 1 if failed else 0


def compare(a, other):
    """Prints the summary line and one MISMATCH line per problem; True if there is any."""
    problems = []
    ma, mb = metrics(a.ref), metrics(other)
    worst = 0.0
    for step in range(a.from_step, a.steps + 1):
        if step not in ma or step not in mb:
            problems.append(f"step {step}: missing from metrics.jsonl of "
                            f"{a.ref if step not in ma else other}")
            continue
        for k in COMPONENTS:
            x, y = ma[step][k], mb[step][k]
            if a.bitwise:
                if x != y:
                    problems.append(f"step {step} {k}: {x!r} != {y!r} (bitwise)")
            else:
                rel = abs(x - y) / max(abs(x), 1e-12)
                worst = max(worst, rel)
                if rel > a.rtol:
                    problems.append(f"step {step} {k}: {x:.9g} vs {y:.9g} (rel {rel:.3g} > {a.rtol:g})")

    ca, name_a = latest_checkpoint(a.ref)
    cb, name_b = latest_checkpoint(other)
    if ca.get("global_step") != cb.get("global_step"):
        problems.append(f"checkpoints at different steps: {name_a} step {ca.get('global_step')} vs "
                        f"{name_b} step {cb.get('global_step')}")
    ta = flat_tensors({"model": ca["model"], "optimizer": ca.get("optimizer")} if a.bitwise else ca["model"])
    tb = flat_tensors({"model": cb["model"], "optimizer": cb.get("optimizer")} if a.bitwise else cb["model"])
    if set(ta) != set(tb):
        problems.append(f"different tensors: only in ref {sorted(set(ta) - set(tb))[:5]}, "
                        f"only in other {sorted(set(tb) - set(ta))[:5]}")
    worst_param = (0.0, "")
    worst_abs = (0.0, "")
    for k in sorted(set(ta) & set(tb)):
        x, y = ta[k], tb[k]
        if x.shape != y.shape:
            problems.append(f"{k}: shape {tuple(x.shape)} vs {tuple(y.shape)}")
            continue
        if a.bitwise:
            if not torch.equal(x, y):
                problems.append(f"{k}: differs (bitwise), max |diff| {(x.double() - y.double()).abs().max().item():.3g}")
            continue
        if not x.is_floating_point():
            if not torch.equal(x, y):
                problems.append(f"{k}: {x.tolist()} vs {y.tolist()}")
            continue
        x, y = x.double(), y.double()
        if not x.numel():
            continue
        diff = (x - y).abs().flatten()
        i = int(diff.argmax())
        worst_abs = max(worst_abs, (diff[i].item(), k))
        if a.max_abs_diff is not None:
            tol = a.max_abs_diff
            worst_param = max(worst_param, (diff[i].item() / tol, k))
            if diff[i].item() > tol:
                problems.append(f"{k}[{i}]: {x.flatten()[i].item():.9g} vs {y.flatten()[i].item():.9g}: |diff| "
                                f"{diff[i].item():.3g} > {tol:g}")
            continue
        tol = a.rtol * x.abs().max().item() + a.atol
        worst_param = max(worst_param, (diff[i].item() / tol, k))   # > 1: outside the tolerance
        if diff[i].item() > tol:
            problems.append(f"{k}[{i}]: {x.flatten()[i].item():.9g} vs {y.flatten()[i].item():.9g}: |diff| "
                            f"{diff[i].item():.3g} > {a.rtol:g} * max|ref| {x.abs().max().item():.3g} + {a.atol:g}")

    print(f"compared {a.ref} and {other}: steps {a.from_step}..{a.steps}, checkpoints {name_a} / {name_b}, "
          f"{len(ta)} tensors; worst loss-component rel diff {worst:.3g}, worst tensor {worst_param[1]} at "
          f"{worst_param[0]:.3g} x its tolerance, max |param diff| {worst_abs[0]:.3g} ({worst_abs[1] or '-'})" +
          (" (bitwise)" if a.bitwise else ""))
    for p in problems:
        print("MISMATCH " + p)
    return bool(problems)


if __name__ == "__main__":
    sys.exit(main())
