#!/usr/bin/python3
"""A stand-in for vicreg_eval with the command line the coordinator's EvalRunner uses:
  fake_eval.py --job J --checkpoint_dir D --epochs E --dataset NAME [--data-dir X] --probe all
               [--device D] [--threads N] --out F
Writes {"dataset","epoch","rows":[{model, probe, epoch, top1, top5}]} to F for the three models and
two probes (top1 = 0.5 + E/100 for vicreg). Dataset "mnist" always fails (exit 1), to exercise
retries. Fails (exit 2) when the checkpoint file of epoch E is missing.
"""
import argparse
import json
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("--job", required=True)
p.add_argument("--checkpoint_dir", required=True)
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--dataset", required=True)
p.add_argument("--data-dir", default="")
p.add_argument("--probe", default="all")
p.add_argument("--device", default="cpu")
p.add_argument("--threads", type=int, default=0)
p.add_argument("--out", required=True)
a = p.parse_args()
ckpt = os.path.join(a.checkpoint_dir, f"epoch_{a.epochs:04d}.pt")
if not os.path.exists(ckpt):
    print(f"missing checkpoint {ckpt}", file=sys.stderr)
    sys.exit(2)
if a.dataset == "mnist":
    print("fake eval: mnist always fails", file=sys.stderr)
    sys.exit(1)
rows = []
for model, base in (("vicreg", 0.5 + a.epochs / 100), ("random_init", 0.2), ("raw_pixels", 0.3)):
    for probe, delta in (("linear", 0.0), ("knn", -0.05)):
        # Like vicreg_eval: the reference rows carry epoch 0.
        rows.append({"model": model, "epoch": a.epochs if model == "vicreg" else 0, "probe": probe,
                     "top1": base + delta, "top5": 0.99})
with open(a.out, "w") as f:
    json.dump({"dataset": a.dataset, "epoch": a.epochs, "rows": rows}, f)
print(f"fake eval epoch {a.epochs} on {a.dataset}: {len(rows)} rows, device {a.device}, threads {a.threads}, "
      f"host {os.uname().nodename}, slurm job {os.environ.get('SLURM_JOB_ID', '-')}")
