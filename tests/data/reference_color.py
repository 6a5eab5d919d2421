#!/usr/bin/python3
"""Independent reference for tests/data/augment_test.cc: torchvision 0.14's functional ops
(torchvision.transforms.functional on float64 tensors) and RandomResizedCrop.get_params.

Usage: /usr/bin/python3 reference_color.py JOB.json
JOB.json: {"cases": [{"op": ..., "input": "in.f64", "shape": [N, C, H, W], "params": {...},
                      "output": "out.f64"}, ...]}
Inputs and outputs are raw little-endian float64 arrays (C order). Ops and their params:
  brightness | contrast | saturation   {"factors": [N floats]}          adjust_<op>(img[i], f[i])
  hue                                  {"factors": [N floats]}          adjust_hue(img[i], f[i])
  grayscale                            {}                               rgb_to_grayscale(img) -> [N,1,H,W]
  solarize                             {"threshold": t}                 solarize(img, t)
  blur                                 {"kernel": k, "sigmas": [N]}     gaussian_blur(img[i], [k,k], [s,s])
  resized_crop                         {"boxes": [[top,left,h,w]...], "size": S, "interpolation":
                                        "bicubic|bilinear|nearest", "antialias": bool}
  crop_params (no input)               {"n": n, "height": H, "width": W, "scale": [a,b], "ratio": [a,b],
                                        "seed": s}  -> [n, 4] (top, left, h, w) from get_params
"""
import json
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F

INTERP = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR,
          "nearest": T.InterpolationMode.NEAREST}


def load(case):
    a = np.fromfile(case["input"], dtype="<f8").reshape(case["shape"])
    return torch.from_numpy(a.copy())


def run(case):
    op, p = case["op"], case.get("params", {})
    if op == "crop_params":
        torch.manual_seed(p["seed"])
        img = torch.zeros(3, p["height"], p["width"])
        out = [T.RandomResizedCrop.get_params(img, p["scale"], p["ratio"]) for _ in range(p["n"])]
        return torch.tensor(out, dtype=torch.float64)
    x = load(case)
    if op in ("brightness", "contrast", "saturation", "hue"):
        fn = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
              "saturation": F.adjust_saturation, "hue": F.adjust_hue}[op]
        return torch.stack([fn(x[i], float(f)) for i, f in enumerate(p["factors"])])
    if op == "grayscale":
        return F.rgb_to_grayscale(x, num_output_channels=1)
    if op == "solarize":
        return F.solarize(x, float(p["threshold"]))
    if op == "blur":
        k = int(p["kernel"])
        return torch.stack([F.gaussian_blur(x[i], [k, k], [float(s), float(s)]) for i, s in enumerate(p["sigmas"])])
    if op == "resized_crop":
        mode = INTERP[p["interpolation"]]
        outs = []
        for i, (top, left, h, w) in enumerate(p["boxes"]):
            outs.append(F.resized_crop(x[i], int(top), int(left), int(h), int(w), [p["size"], p["size"]],
                                       interpolation=mode, antialias=bool(p["antialias"])))
        return torch.stack(outs)
    raise SystemExit(f"reference_color.py: unknown op {op!r}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job["cases"]:
        out = run(case).to(torch.float64).contiguous().numpy()
        out.astype("<f8").tofile(case["output"])
        with open(case["output"] + ".shape", "w") as f:
            f.write(" ".join(str(d) for d in out.shape))


if __name__ == "__main__":
    main()
