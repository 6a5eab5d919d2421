#!/usr/bin/env python3
"""Export parity against the real timm (run where timm is installed, e.g. the GPU machine).

  timm_parity.py BUILD_DIR OUT_DIR

1. trains vit_small_patch16_224 at 96 px for 2 steps with vicreg_worker (CUDA if available) on a
   synthetic CIFAR-10 file, so the checkpoint holds non-initial weights;
2. `vicreg_eval export` -> encoder.safetensors; `vicreg_eval extract` on a 16-image tensor cache;
3. timm.create_model('vit_small_patch16_224', img_size=96, num_classes=0, pretrained=True,
   pretrained_cfg_overlay=dict(file=encoder.safetensors)) must load it (timm loads strictly), and
   its features on the same normalized images must equal vicreg_eval's to 1e-4.
Exit 0 on success.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch


def run(argv):
    print("+", " ".join(argv), flush=True)
    r = subprocess.run(argv, capture_output=True, text=True)
    print(r.stdout[-2000:], r.stderr[-2000:], flush=True)
    if r.returncode != 0:
        sys.exit("command failed: %s" % argv[0])


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        dt = {torch.uint8: "U8", torch.int64: "I64", torch.float32: "F32"}[t.dtype]
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    build, out = sys.argv[1], sys.argv[2]
    work = os.path.join(out, "parity")
    os.makedirs(work, exist_ok=True)
    import timm  # noqa: F401  (fail early where timm is missing)
    from safetensors.torch import load_file

    rng = np.random.default_rng(0)
    with open(os.path.join(work, "data_batch_1.bin"), "wb") as f:
        for i in range(64):
            f.write(bytes([i % 10]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes())
    for b in range(2, 6):
        with open(os.path.join(work, "data_batch_%d.bin" % b), "wb") as f:
            f.write(bytes([0]) + bytes(3072))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with open(os.path.join(work, "job.yaml"), "w") as f:
        f.write("name: timm_parity\nresources: {ranks: 1, device: %s}\n" % device +
                "data: {dataset: cifar10, data_dir: %s, limit: 64, num_workers: 1}\n" % work +
                "model: {backbone_name: vit_small_patch16_224, image_size: 96}\n"
                "train: {batch_size: 32, num_epochs: 1, warmup_epochs: 0, learning_rate: 0.01, log_every: 1}\n"
                "metrics: {enabled: false}\n")
    run([os.path.join(build, "worker/vicreg_worker"), "--job", os.path.join(work, "job.yaml"),
         "--run-dir", os.path.join(work, "run")])
    ckpt = os.path.join(work, "run/checkpoints/epoch_0001.pt")
    enc = os.path.join(work, "encoder.safetensors")
    run([os.path.join(build, "worker/eval/vicreg_eval"), "export", "--checkpoint", ckpt, "--out", enc])

    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, 96, 96), dtype=torch.uint8, generator=g)
    mean, std = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]
    cache = os.path.join(work, "cache.safetensors")
    write_safetensors(cache, {"images": images, "labels": torch.arange(16) % 4},
                      {"format": "vicreg-tensor-cache-v1", "layout": "NCHW", "num_classes": "4",
                       "mean": json.dumps(mean), "std": json.dumps(std)})
    feats = os.path.join(work, "features.safetensors")
    run([os.path.join(build, "worker/eval/vicreg_eval"), "extract", "--checkpoint", ckpt, "--dataset",
         "tensor_cache", "--data-dir", cache, "--split", "train", "--out", feats, "--quiet"])

    # timm's own loader (custom_load=False: the augreg config would otherwise expect a JAX .npz) ...
    model = timm.create_model("vit_small_patch16_224", img_size=96, num_classes=0, pretrained=True,
                              pretrained_cfg_overlay=dict(file=enc, custom_load=False))
    sd = load_file(enc)
    model.load_state_dict(sd, strict=True)  # ... and an explicit strict load: any missing/unexpected/mis-shaped key raises
    model.eval()
    x = images.float() / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model(x)
    ours = load_file(feats)["features"]
    diff = (ref - ours).abs().max().item()
    print("timm features", tuple(ref.shape), "vicreg_eval features", tuple(ours.shape), "max |diff| = %.3g" % diff)
    print("timm loaded %d tensors strictly" % len(sd))
    sys.exit(0 if diff < 1e-4 else 1)


if __name__ == "__main__":
    main()
