#!/usr/bin/python3
"""A stand-in for vicreg_worker that follows the run-dir contract (docs/ARCHITECTURE.md) in
milliseconds, for coordinator tests that need behaviour the real worker cannot be asked for
(a hang, a chosen exit code). Behaviour is chosen by substrings of the job's `name`:

  exit2      every rank exits 2 at once (invalid input)
  failonce   rank 1 exits 1 at step 3 of the first attempt only
  hang       rank 0 stops making progress at step 3 (sleeps until killed)
  slow       0.3 s per step instead of 0.05 s
  stubborn   every rank ignores SIGTERM (only SIGKILL ends it) and steps every 0.3 s

Steps: train.max_steps from job.yaml (default 20). Rank 0 writes progress.json, metrics.jsonl,
checkpoints (epoch_XXXX.pt every 5 steps, 'latest'), result.json; every rank writes
endpoints/rank-<r>.json. A restart resumes from checkpoints/latest (--resume auto).
"""
import argparse
import json
import os
import re
import signal
import sys
import time


def atomic_write(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--job", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--resume", default="auto")
    p.add_argument("--job-id", default="")
    a = p.parse_args()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMIX_RANK", os.environ.get("SLURM_PROCID", "0"))))
    text = open(a.job).read()
    name = re.search(r"^name:\s*(\S+)", text, re.M).group(1).strip("'\"")
    m = re.search(r"^\s+max_steps:\s*(\d+)", text, re.M)
    total = int(m.group(1)) if m and int(m.group(1)) > 0 else 20
    run = a.run_dir
    print(f"fake worker rank {rank} job {a.job_id} name {name} pid {os.getpid()} "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}", flush=True)
    if "stubborn" in name:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "exit2" in name:
        print("error: invalid input (fake)", file=sys.stderr, flush=True)
        sys.exit(2)
    os.makedirs(f"{run}/endpoints", exist_ok=True)
    os.makedirs(f"{run}/checkpoints", exist_ok=True)
    atomic_write(f"{run}/endpoints/rank-{rank}.json",
                 json.dumps({"rank": rank, "local_rank": rank, "pid": os.getpid(), "host": "127.0.0.1",
                             "metrics": f"127.0.0.1:{19000 + rank}"}))
    start = 0
    latest = f"{run}/checkpoints/latest"
    if os.path.exists(latest):
        start = int(open(latest).read().strip().split("_")[1].split(".")[0]) * 5
        print(f"rank {rank} resumed at step {start}", flush=True)
    first_attempt = not os.path.exists(f"{run}/.failed_once")
    delay = 0.3 if "slow" in name or "stubborn" in name else 0.05
    for step in range(start + 1, total + 1):
        time.sleep(delay)
        if "failonce" in name and rank == 1 and step == 3 and first_attempt:
            open(f"{run}/.failed_once", "w").close()
            print("rank 1 failing on purpose at step 3", flush=True)
            sys.exit(1)
        if "hang" in name and rank == 0 and step == 3:
            print("rank 0 hanging on purpose", flush=True)
            while True:
                time.sleep(1)
        if rank == 0:
            epoch = (step - 1) // 5 + 1
            atomic_write(f"{run}/progress.json", json.dumps(
                {"step": step, "total_steps": total, "epoch": epoch, "num_epochs": (total + 4) // 5,
                 "loss": 10.0 / step, "images_per_s": 100.0, "time": time.time()}))
            with open(f"{run}/metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "epoch": epoch, "loss": 10.0 / step}) + "\n")
            if step % 5 == 0:
                atomic_write(f"{run}/checkpoints/epoch_{step // 5:04d}.pt", "fake")
                atomic_write(latest, f"epoch_{step // 5:04d}.pt\n")
        print(f"rank {rank} step {step}", flush=True)
    if rank == 0:
        atomic_write(f"{run}/result.json", json.dumps({"status": "succeeded", "reason": "completed",
                                                        "step": total, "epoch": (total + 4) // 5}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
