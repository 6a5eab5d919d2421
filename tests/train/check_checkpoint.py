"""Opens a vicreg checkpoint with torch.load (what users' Python scripts do) and checks the documented keys.

usage: check_checkpoint.py PATH GLOBAL_STEP EPOCH [--model-key KEY ...]
Prints OK and exits 0, or prints the problem and exits 1.
"""
import sys

import torch

KEYS = {
    "format": str, "model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "epoch": int,
    "global_step": int, "batch_in_epoch": int, "epoch_complete": bool, "rng": dict, "config": str,
    "world_size": int, "global_batch": int, "nonfinite_total": int,
}


def main():
    path, step, epoch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    want_model_keys = sys.argv[5::2] if len(sys.argv) > 4 and sys.argv[4] == "--model-key" else []
    ck = torch.load(path, map_location="cpu")
    problems = []
    for k, t in KEYS.items():
        if k not in ck:
            problems.append(f"missing key {k}")
        elif not isinstance(ck[k], t):
            problems.append(f"{k} is {type(ck[k]).__name__}, expected {t.__name__}")
    if problems:
        print("; ".join(problems))
        return 1
    if ck["format"] != "vicreg-checkpoint-v1":
        problems.append(f"format {ck['format']}")
    if ck["global_step"] != step or ck["epoch"] != epoch:
        problems.append(f"global_step/epoch {ck['global_step']}/{ck['epoch']} != {step}/{epoch}")
    if ck["scheduler"].get("step") != step:
        problems.append(f"scheduler.step {ck['scheduler']}")
    if set(ck["scaler"]) != {"enabled", "scale", "growth_tracker"}:
        problems.append(f"scaler keys {sorted(ck['scaler'])}")
    if not isinstance(ck["rng"].get("torch_cpu"), torch.Tensor) or ck["rng"]["torch_cpu"].dtype != torch.uint8:
        problems.append("rng.torch_cpu is not a uint8 tensor")
    model = ck["model"]
    if not model or not all(isinstance(v, torch.Tensor) for v in model.values()):
        problems.append("model is not a non-empty dict of tensors")
    for k in want_model_keys:
        if k not in model:
            problems.append(f"model lacks {k}")
    for k, v in model.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            problems.append(f"model[{k}] is not finite")
    if problems:
        print("; ".join(problems))
        return 1
    print(f"OK {len(model)} model tensors, step {step}, epoch {epoch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
