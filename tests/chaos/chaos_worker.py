#!/usr/bin/python3
"""The worker of the chaos soak (tests/chaos/chaos_test.cc): vicreg_worker's run-directory contract
(progress.json, endpoints/, checkpoints/ + latest, result.json; --resume auto) in a few
milliseconds per step, plus what the soak's invariant needs:
  - each rank holds an exclusive flock on <run>/.chaos-rank<r>.lock while it runs: a rank that
    cannot take it runs at the same time as a rank of another attempt of the same job, and appends
    a line to <run>/chaos-violations.log (the soak fails on any such line);
  - a checkpoint is JSON {"job", "step", "digest": sha256("<job>:<step>")} so that the soak can
    check it is whole and at the planned step;
  - SIGTERM is answered like vicreg_worker does: result.json {"status": "failed", "reason":
    "terminated by SIGTERM"} and exit 1.
Steps: train.max_steps (a multiple of 5; a checkpoint every 5 steps), 0.04 s each. Any error
(ENOSPC while the soak fills the disk, a torn file) ends the rank with exit 1: the coordinator
restarts the attempt.
"""
import argparse
import fcntl
import hashlib
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
        f.flush()
    os.replace(tmp, path)


def digest(job, step):
    return hashlib.sha256(f"{job}:{step}".encode()).hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--job", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--resume", default="auto")
    p.add_argument("--job-id", default="")
    a = p.parse_args()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMIX_RANK", "0")))
    run = a.run_dir
    text = open(a.job).read()
    m = re.search(r"^\s+max_steps:\s*(\d+)", text, re.M)
    total = int(m.group(1)) if m and int(m.group(1)) > 0 else 20
    lock = open(f"{run}/.chaos-rank{rank}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        with open(f"{run}/chaos-violations.log", "a") as f:
            f.write(f"{time.time():.3f} rank {rank} pid {os.getpid()}: another attempt's rank {rank} is alive\n")
        # Wait for it (so that the run stays consistent) but the violation is recorded.
        fcntl.flock(lock, fcntl.LOCK_EX)

    def on_term(signum, frame):
        if rank == 0:
            try:
                atomic_write(f"{run}/result.json", json.dumps(
                    {"status": "failed", "reason": "terminated by SIGTERM", "step": 0, "epoch": 0}))
            except OSError:
                pass
        os._exit(1)

    signal.signal(signal.SIGTERM, on_term)
    os.makedirs(f"{run}/endpoints", exist_ok=True)
    os.makedirs(f"{run}/checkpoints", exist_ok=True)
    atomic_write(f"{run}/endpoints/rank-{rank}.json",
                 json.dumps({"rank": rank, "local_rank": rank, "pid": os.getpid(), "host": "127.0.0.1",
                             "metrics": ""}))
    start = 0
    latest = f"{run}/checkpoints/latest"
    if os.path.exists(latest):
        name = open(latest).read().strip()
        ck = json.load(open(f"{run}/checkpoints/{name}"))
        if ck.get("digest") != digest(a.job_id, ck.get("step")):
            print(f"rank {rank}: checkpoint {name} is corrupt", file=sys.stderr, flush=True)
            return 1
        start = int(ck["step"])
    print(f"chaos worker rank {rank} job {a.job_id} pid {os.getpid()} from step {start} of {total}", flush=True)
    for step in range(start + 1, total + 1):
        time.sleep(0.04)
        if rank == 0:
            atomic_write(f"{run}/progress.json", json.dumps(
                {"step": step, "total_steps": total, "epoch": (step - 1) // 5 + 1, "num_epochs": total // 5,
                 "loss": 10.0 / step, "images_per_s": 100.0, "time": time.time()}))
            if step % 5 == 0:
                name = f"epoch_{step // 5:04d}.pt"
                atomic_write(f"{run}/checkpoints/{name}",
                             json.dumps({"job": a.job_id, "step": step, "digest": digest(a.job_id, step)}))
                atomic_write(latest, name + "\n")
    if rank == 0:
        atomic_write(f"{run}/result.json", json.dumps({"status": "succeeded", "reason": "completed",
                                                        "step": total, "epoch": total // 5}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # ENOSPC, a torn file: this rank fails, the coordinator restarts the attempt
        print(f"chaos worker failed: {e!r}", file=sys.stderr, flush=True)
        sys.exit(1)
