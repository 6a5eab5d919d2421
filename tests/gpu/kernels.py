#!/usr/bin/env python3
"""Top GPU kernels of a training-step benchmark by GPU time: what keeps the step from the matmul peak.

  kernels.py --out DIR [--top 15] -- vicreg_bench train --device cuda ... [--cuda-graphs on]

With NVIDIA Nsight Systems (`nsys` on PATH): profiles the command itself (CUDA trace, graph launches
traced per node) and summarizes its kernels (`nsys stats` cuda_gpu_kern_sum). Without it: runs
worker/bench/reference_train.py -- the Python twin with the same flags, model and shapes -- under
torch.profiler and summarizes its CUDA kernels instead (the table says which). Writes DIR/kernels.md
(markdown: share of GPU time, total ms, calls, mean us, kernel) and prints it plus one JSON line
{"bench": "kernels", "source": ..., "top": [...]}. Exit 1 when nothing could be profiled.
"""
import argparse
import csv
import glob
import io
import json
import os
import runpy
import shutil
import subprocess
import sys


def nsys_kernels(cmd, out):
    rep = os.path.join(out, "prof")
    prof = ["nsys", "profile", "--force-overwrite=true", "--trace=cuda", "--sample=none", "--cpuctxsw=none",
            "--cuda-graph-trace=node", "-o", rep] + cmd
    r = subprocess.run(prof, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(r.stdout[-3000:])
    if r.returncode != 0:
        return None, f"nsys profile exited {r.returncode}"
    files = glob.glob(rep + ".nsys-rep") or glob.glob(rep + ".qdrep")
    if not files:
        return None, "nsys wrote no report"
    for report in ("cuda_gpu_kern_sum", "gpukernsum"):  # the name changed in nsys 2023
        s = subprocess.run(["nsys", "stats", "--report", report, "--format", "csv", files[0]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = s.stdout.splitlines()
        start = next((i for i, ln in enumerate(lines) if "Name" in ln and "Total Time" in ln), None)
        if s.returncode == 0 and start is not None:
            rows = []
            for rec in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
                try:
                    total_ns = float(rec.get("Total Time (ns)") or rec.get("Total Time"))
                    calls = int(float(rec.get("Instances") or rec.get("Count") or 0))
                except (TypeError, ValueError):
                    continue
                rows.append({"name": rec["Name"], "total_ms": total_ns / 1e6, "calls": calls})
            return rows, "nsys (" + " ".join(os.path.basename(c) for c in cmd[:2]) + ")"
    return None, "nsys stats found no kernel summary"


def torch_profiler_kernels(cmd):
    import torch
    from torch.profiler import ProfilerActivity, profile
    if not torch.cuda.is_available():
        return None, "no CUDA device for torch.profiler"
    args = []
    skip = False
    for a in cmd[2:]:  # drop the binary and the `train` subcommand; keep the shared flags
        if skip:
            skip = False
            continue
        if a == "--cuda-graphs":
            skip = True
            continue
        args.append(a)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "worker", "bench",
                          "reference_train.py")
    sys.argv = [script] + args
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit:
            pass
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None)
        if t is None:
            t = getattr(e, "self_cuda_time_total", 0)
        if t > 0:
            rows.append({"name": e.key, "total_ms": t / 1e3, "calls": e.count})
    return rows, "torch.profiler on worker/bench/reference_train.py (Python eager twin: same model and shapes)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("give the benchmark command after --")
    os.makedirs(a.out, exist_ok=True)
    rows, source = (None, "nsys not installed")
    if shutil.which("nsys"):
        rows, source = nsys_kernels(cmd, a.out)
    if not rows:
        print(f"kernels: {source}; falling back to torch.profiler")
        rows, source = torch_profiler_kernels(cmd)
    if not rows:
        print(f"kernels: nothing profiled ({source})")
        return 1
    rows.sort(key=lambda r: -r["total_ms"])
    total = sum(r["total_ms"] for r in rows)
    top = rows[:a.top]
    md = [f"Top {len(top)} GPU kernels by time, from {source}; {total:.1f} ms of kernel time in all "
          f"({len(rows)} distinct kernels).", "",
          "| share | total ms | calls | mean us | kernel |", "|---:|---:|---:|---:|---|"]
    for r in top:
        name = r["name"].replace("|", "\\|")
        name = name if len(name) <= 110 else name[:107] + "..."
        mean_us = 1e3 * r["total_ms"] / max(1, r["calls"])
        md.append(f"| {100 * r['total_ms'] / total:.1f}% | {r['total_ms']:.1f} | {r['calls']} | {mean_us:.1f} | "
                  f"`{name}` |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "kernels.md"), "w") as fh:
        fh.write(text)
    print(text)
    print(json.dumps({"bench": "kernels", "source": source, "kernel_ms_total": total,
                      "top": [{k: r[k] for k in ("name", "total_ms", "calls")} for r in top]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
