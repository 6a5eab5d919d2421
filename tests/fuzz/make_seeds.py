#!/usr/bin/python3
"""Writes the seed inputs of tests/fuzz/corpus/<fuzzer>/seed_* (run once; the seeds are checked in).

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py   (needs Debian's python3-torch and python3-pil)
Crash inputs found later live beside the seeds as crash_<what> and are never regenerated here.
"""
import gzip
import io
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(fuzzer, name, data):
    d = os.path.join(CORPUS, fuzzer)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def chunk(b):
    return struct.pack("<H", len(b)) + b


def safetensors(tensors, metadata=None):
    header, buf = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buf), len(buf) + len(raw)]}
        buf += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + buf


def png(w, h, gray=False):
    raw = b"".join(b"\0" + bytes((x * 40 + y * 7 + c * 90) % 256 for x in range(w) for c in range(1 if gray else 3))
                   for y in range(h))
    def blk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + blk(b"IHDR", ihdr) + blk(b"IDAT", zlib.compress(raw)) + blk(b"IEND", b"")


def jpeg(w, h):
    from PIL import Image
    img = Image.new("RGB", (w, h), (120, 30, 200))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=50)
    return out.getvalue()


def main():
    # Job files: the shipped configs plus --set overrides.
    for name in ("tiny_cpu.yaml", "quickstart.yaml", "data_config.yaml", "model_config_vicreg.yaml"):
        put("config_yaml", name, open(os.path.join(ROOT, "configs", name), "rb").read())
    tiny = open(os.path.join(ROOT, "configs", "tiny_cpu.yaml")).read()
    put("config_yaml", "overrides", tiny + "\n#--set\ntrain.learning_rate=0.01\nresources.ranks=2\neval.probes=[knn]\n")
    put("config_yaml", "anchors", "name: &n x\ndata: {dataset: cifar10}\ntrain: {batch_size: 8}\neval: {probes: [linear, knn]}\n")

    # Coordinator config files.
    put("coordinator_config", "systemd", open(os.path.join(ROOT, "deploy", "systemd", "coordinator.yaml"), "rb").read())
    put("coordinator_config", "full",
        "listen: 127.0.0.1:0\nstate_dir: /tmp/x\nslots: 2\nmetrics_listen: 127.0.0.1:0\nlauncher: none\n"
        "mpirun_args: [--mca, btl, self]\nslurm: {partition: p, srun_mpi: pmix, sbatch_args: [-t, '10']}\n"
        "poll_interval_s: 0.5\nstop_grace_s: 3\nmax_page_size: 10\nstore_synchronous: full\nlog_level: warn\n")

    # safetensors headers.
    put("safetensors", "u8", safetensors({"images": ("U8", [2, 3, 2, 2], bytes(24)),
                                          "labels": ("I64", [2], struct.pack("<qq", 0, 1))},
                                         {"num_classes": "2"}))
    put("safetensors", "f32", safetensors({"w": ("F32", [2, 2], bytes(16)), "b": ("BF16", [3], bytes(6))}))
    put("safetensors", "empty", safetensors({}))

    # Metrics HTTP requests.
    put("metrics_http", "get", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n")
    put("metrics_http", "head_sd", "HEAD /sd?x=1 HTTP/1.0\r\n\r\n")
    put("metrics_http", "post", "POST /sd HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    put("metrics_http", "lf_only", "GET /nothing HTTP/1.1\n\n")

    # gRPC service: call selector + per-field bytes (see fuzz_grpc_service.cc).
    put("grpc_service", "submit_get_list", bytes([0, 1, 2, 1, 2, 0, 1, 1, 1, 2, 1, 1, 0, 0]))
    put("grpc_service", "cancel", bytes([0, 1, 2, 1, 2, 3, 1, 1, 0, 1, 0, 4]) + b"stop")
    put("grpc_service", "evals", bytes([4, 1, 1, 5, 1, 1, 1, 7, 0, 0, 0, 1, 0, 3]) + b"abc")

    # Dataset readers: mode byte, then the files (see fuzz_dataset.cc).
    put("data_cifar", "cifar10", bytes([0]) + bytes([3]) + bytes(range(256)) * 12)
    put("data_cifar", "cifar100", bytes([1]) + bytes([1, 42]) + bytes(range(256)) * 12)
    stl = bytes((i * 7) % 256 for i in range(96 * 96 * 3))
    put("data_stl10", "test", bytes([0]) + chunk(bytes([3])) + stl)
    put("data_stl10", "unlabeled", bytes([1]) + chunk(b"") + stl)
    labels = struct.pack(">II", 2049, 2) + bytes([1, 9])
    images = struct.pack(">IIII", 2051, 2, 4, 4) + bytes(range(32))
    put("data_idx", "plain", bytes([0]) + chunk(labels) + images)
    put("data_idx", "gz", bytes([3]) + chunk(gzip.compress(labels)) + gzip.compress(images))
    put("data_image_folder", "png_jpg",
        bytes([0]) + bytes([2]) + chunk(png(4, 4)) + bytes([3]) + chunk(png(4, 4, gray=True)) + bytes([0]) +
        chunk(jpeg(4, 4)))
    put("data_image_folder", "resize", bytes([1]) + bytes([2]) + chunk(png(6, 3)) + bytes([1]) + chunk(jpeg(5, 7)))
    put("data_tensor_cache", "nchw",
        bytes([0]) + safetensors({"images": ("U8", [2, 3, 4, 4], bytes(range(96))),
                                  "labels": ("I64", [2], struct.pack("<qq", 0, 1))},
                                 {"num_classes": "2", "classes": json.dumps(["a", "b"]),
                                  "mean": "[0.5, 0.5, 0.5]", "std": "[0.2, 0.2, 0.2]"}))
    put("data_tensor_cache", "nhwc_gray",
        bytes([0]) + safetensors({"images": ("U8", [3, 4, 4], bytes(48))}, {"layout": "NHWC"}))

    # torchvision's CIFAR Python version (cifar_python): mode bit 0 = cifar100, bit 1 = a meta file chunk first.
    import pickle
    import numpy as np

    class Py2Pickler(pickle._Pickler):  # bytes as Python 2 str, as in the official files
        dispatch = dict(pickle._Pickler.dispatch)

        def save_str2(self, obj):
            obj = obj.encode("latin1") if isinstance(obj, str) else obj
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj if len(obj) < 256
                       else pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
            self.memoize(obj)
        dispatch[bytes] = dispatch[str] = save_str2

    def py2(obj):
        out = io.BytesIO()
        Py2Pickler(out, protocol=2).dump(obj)
        return out.getvalue()

    img = np.arange(3072, dtype=np.uint32).astype(np.uint8).reshape(1, 3072)
    c10 = {b"batch_label": b"testing batch 1 of 1", b"labels": [3], b"data": img, b"filenames": [b"a.png"]}
    c100 = {b"filenames": [b"a"], b"batch_label": b"test", b"fine_labels": [42], b"coarse_labels": [7], b"data": img}
    put("data_cifar_python", "cifar10_py2", bytes([0]) + py2(c10))
    put("data_cifar_python", "cifar10_meta_p4",
        bytes([2]) + chunk(pickle.dumps({b"label_names": [b"n%d" % k for k in range(10)]}, protocol=4)) +
        pickle.dumps(c10, protocol=4))
    put("data_cifar_python", "cifar100_p5", bytes([1]) + pickle.dumps(c100, protocol=5))
    put("data_cifar_python", "cifar100_meta_p2",
        bytes([3]) + chunk(pickle.dumps({"fine_label_names": ["c%d" % k for k in range(100)]}, protocol=2)) +
        pickle.dumps(c100, protocol=2))

    # torch.save'd caches (torch_cache): mode byte, then the .pt archive.
    import torch
    for name, obj in {
        "nhwc_u8": {"images": torch.arange(96, dtype=torch.uint8).reshape(2, 4, 4, 3), "labels": torch.tensor([0, 1])},
        "nchw_float": {"images": torch.rand(2, 3, 4, 4), "labels": torch.tensor([1, -1]), "classes": ["a", "b"]},
        "gray_int32": {"images": torch.zeros(3, 4, 4, dtype=torch.uint8), "labels": torch.tensor([0, 1, 2]).int(),
                       "num_classes": 5},
    }.items():
        out = io.BytesIO()
        torch.save(obj, out)
        put("data_torch_cache", name, bytes([0]) + out.getvalue())

    # Checkpoints: an archive written by torch.save (the format torch::pickle_load reads).
    import torch
    payload = {
        "format": "vicreg-checkpoint-v1",
        "model": {"w": torch.ones(2, 2)},
        "optimizer": {"kind": "adamw"},
        "scheduler": {"step": 3},
        "scaler": {"enabled": False, "scale": 1.0, "growth_tracker": 0},
        "epoch": 1, "global_step": 3, "batch_in_epoch": 0, "epoch_complete": True,
        "rng": {"torch_cpu": torch.zeros(4, dtype=torch.uint8), "torch_cuda": []},
        "config": "name: x\n", "world_size": 1, "global_batch": 8, "nonfinite_total": 0,
    }
    out = io.BytesIO()
    torch.save(payload, out)
    archive = out.getvalue()
    put("checkpoint", "valid", bytes([1]) + chunk(b"") + archive)
    put("checkpoint", "resume", bytes([5]) + chunk(b"") + archive)
    manifest = json.dumps({"file": "epoch_0001.pt", "bytes": len(archive), "crc32": zlib.crc32(archive),
                           "epoch": 1, "global_step": 3, "kind": "epoch"}).encode()
    put("checkpoint", "manifest", bytes([0]) + chunk(manifest) + archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
