#!/usr/bin/python3
"""Reference for `vicreg_bench augment`: torchvision's transforms pipeline (facebookresearch/vicreg
asymmetric two-view recipe) over 32x32 uint8 CIFAR-like images, through a DataLoader.

Run with Debian's interpreter (it sees python3-torch / python3-torchvision):
    /usr/bin/python3 worker/bench/reference_augment.py --batch-size 256 --workers 2 --iters 8

Prints one JSON object: images_per_s counts source images turned into two views (per second);
images_per_cpu_s divides by the CPU time of the main process and the workers instead (robust when
other jobs share the machine).
"""
import os
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


def view_transform(args, blur_p, solarize_p, mean, std):
    blur_kernel = int(round(args.blur_kernel_fraction * args.image_size))
    if blur_kernel % 2 == 0:
        blur_kernel += 1
    blur_kernel = max(blur_kernel, 3)
    return T.Compose([
        T.RandomResizedCrop(args.image_size, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(blur_kernel, sigma=(0.1, 2.0))], p=blur_p),
        T.RandomSolarize(threshold=128, p=solarize_p),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


class TwoViewImages(Dataset):
    """Random uint8 HWC images of one size (the same kind as the C++ benchmark's sources)."""

    def __init__(self, n, size, t1, t2, seed):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
        self.t1, self.t2 = t1, t2

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return self.t1(img), self.t2(img)


def cpu_seconds(pids):
    """utime + stime of the given processes (Linux /proc), in seconds."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            pass
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--source-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--iters", type=int, default=8, help="timed batches (after one warm-up batch)")
    p.add_argument("--blur-kernel-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.batch_size < 1 or args.iters < 2 or args.workers < 0:
        p.error("--batch-size must be >= 1, --iters >= 2, --workers >= 0")

    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    t1 = view_transform(args, blur_p=1.0, solarize_p=0.0, mean=mean, std=std)
    t2 = view_transform(args, blur_p=0.1, solarize_p=0.2, mean=mean, std=std)
    n = args.batch_size * (args.iters + 1)
    ds = TwoViewImages(n, args.source_size, t1, t2, args.seed)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        drop_last=True, persistent_workers=False)
    it = iter(loader)
    v1, v2 = next(it)  # warm-up: worker start-up and the first batch are not timed
    assert v1.shape == (args.batch_size, 3, args.image_size, args.image_size), v1.shape
    pids = [os.getpid()] + [w.pid for w in getattr(it, "_workers", [])]
    c0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    images = 0
    for i, (v1, v2) in enumerate(it):
        images += v1.shape[0]
        if i == args.iters - 2:  # workers are still alive: read their CPU time before the last batch
            cpu = cpu_seconds(pids) - c0
            cpu_images = images
    dt = time.perf_counter() - t0
    print(json.dumps({
        "benchmark": "augment_reference_torchvision",
        "batch_size": args.batch_size, "source_size": args.source_size, "image_size": args.image_size,
        "workers": args.workers, "iters": images // args.batch_size, "torch_threads": torch.get_num_threads(),
        "seconds": round(dt, 4), "images_per_s": round(images / dt, 1),
        "cpu_seconds": round(cpu, 3), "images_per_cpu_s": round(cpu_images / cpu, 1),
        "views_per_s": round(2 * images / dt, 1),
    }))


if __name__ == "__main__":
    main()
