#!/usr/bin/python3
"""The evaluation of the chaos soak: vicreg_eval's command line and output format (as
tests/server/fake_eval.py), taking about a second so that the soak can kill it while it runs.
It holds an exclusive flock on <out>.lock while it runs; a second evaluation of the same task
running at the same time appends a line to <run>/eval/chaos-eval-violations.log (reported by the
soak: duplicated evaluations across a coordinator restart, issue 17).
"""
import argparse
import fcntl
import json
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--job", required=True)
p.add_argument("--checkpoint_dir", required=True)
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--dataset", required=True)
p.add_argument("--data-dir", default="")
p.add_argument("--probe", default="all")
p.add_argument("--out", required=True)
a = p.parse_args()
lock = open(a.out + ".lock", "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    with open(os.path.join(os.path.dirname(a.out), "chaos-eval-violations.log"), "a") as f:
        f.write(f"{time.time():.3f} {os.path.basename(a.out)}: pid {os.getpid()} runs next to another evaluation\n")
    fcntl.flock(lock, fcntl.LOCK_EX)
ckpt = os.path.join(a.checkpoint_dir, f"epoch_{a.epochs:04d}.pt")
if not os.path.exists(ckpt):
    print(f"missing checkpoint {ckpt}", file=sys.stderr)
    sys.exit(2)
time.sleep(1.0)
rows = [{"model": m, "probe": pr, "epoch": a.epochs, "top1": t, "top5": min(1.0, t + 0.2)}
        for m, t in (("vicreg", 0.5), ("random_init", 0.2), ("raw_pixels", 0.3)) for pr in ("linear", "knn")]
tmp = a.out + f".tmp.{os.getpid()}"
with open(tmp, "w") as f:
    json.dump({"dataset": a.dataset, "epoch": a.epochs, "rows": rows}, f)
os.replace(tmp, a.out)
