#!/usr/bin/python3
"""Writes the Python-side dataset files the reader tests read (tests/data/python_formats_test.cc).

Usage: /usr/bin/python3 tests/data/write_python_formats.py OUT_DIR MARKER [PART ...]
(needs Debian's python3-numpy; python3-torch for the part `pt`). MARKER is the path that the
malicious files would create (`touch MARKER`) if anything ever ran them. PART is any of cifar, evil,
bad, pt (default: all). The `pt` files (torch.save, which needs `import torch`: seconds per test
process) are checked in as tests/data/pt/, written by
  /usr/bin/python3 tests/data/write_python_formats.py /tmp/out /tmp/vicreg_torch_cache_evil_EXECUTED pt
  cp /tmp/out/pt/*.pt tests/data/pt/
(python3-torch 1.13.1); the tests write the other parts at run time.

OUT_DIR/<style>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}   2 images per batch,
OUT_DIR/<style>/cifar-100-python/{train,test,meta}                              3 and 2 images,
  for style py2 (bytes written as Python 2 `str`, SHORT_BINSTRING/BINSTRING: what the official
  cifar-10-python.tar.gz holds) and protocols 2, 3, 4, 5 of Python 3's pickle (numpy arrays as
  numpy.ndarray via _reconstruct/BUILD, or _frombuffer at protocol 5; bytes via _codecs.encode at 2).
  Pixel (image i, channel c, row y, column x) = (i*7 + c*3 + y*5 + x) % 256 with i counted over the
  split; CIFAR-10 labels i % 10 (train), (i + 3) % 10 (test); CIFAR-100 fine (i*37) % 100,
  coarse i % 20.
OUT_DIR/evil/<name>: pickles that run `touch MARKER` when Python's pickle.load reads them (reduce_p2,
  reduce_p4, eval_p3, inst, obj), or use opcodes/globals outside the data subset (newobj, numpy_other).
OUT_DIR/bad/<name>: pickles of data in the wrong shape (see BAD below).
OUT_DIR/pt/<name>.pt: torch.save files (see write_pt).
"""
import io
import os
import pickle
import sys

import numpy as np

OUT, MARKER = sys.argv[1], sys.argv[2]
PARTS = sys.argv[3:] or ["cifar", "evil", "bad", "pt"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pixels(first, n):
    i = np.arange(first, first + n).reshape(-1, 1, 1, 1)
    c = np.arange(3).reshape(1, 3, 1, 1)
    y = np.arange(32).reshape(1, 1, 32, 1)
    x = np.arange(32).reshape(1, 1, 1, 32)
    return ((i * 7 + c * 3 + y * 5 + x) % 256).astype(np.uint8).reshape(n, 3072)


class Py2Pickler(pickle._Pickler):
    """Python 2's cPickle at protocol 2: every bytes/str is a Python 2 `str` (SHORT_BINSTRING/BINSTRING)."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + n.to_bytes(4, "little")) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def dump(obj, path, style):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        if style == "py2":
            Py2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=int(style))


def write_cifar(root, style):
    d = os.path.join(root, "cifar-10-batches-py")
    per = 2
    for b in range(1, 6):
        first = (b - 1) * per
        dump({b"batch_label": b"training batch %d of 5" % b, b"labels": [(first + k) % 10 for k in range(per)],
              b"data": pixels(first, per), b"filenames": [b"img_%d.png" % (first + k) for k in range(per)]},
             os.path.join(d, "data_batch_%d" % b), style)
    dump({b"batch_label": b"testing batch 1 of 1", b"labels": [(k + 3) % 10 for k in range(2)],
          b"data": pixels(0, 2), b"filenames": [b"t0.png", b"t1.png"]}, os.path.join(d, "test_batch"), style)
    dump({b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per, b"num_vis": 3072},
         os.path.join(d, "batches.meta"), style)
    d = os.path.join(root, "cifar-100-python")
    for split, n in (("train", 3), ("test", 2)):
        dump({b"filenames": [b"f%d" % k for k in range(n)], b"batch_label": split.encode(),
              b"fine_labels": [(k * 37) % 100 for k in range(n)], b"coarse_labels": [k % 20 for k in range(n)],
              b"data": pixels(0, n)}, os.path.join(d, split), style)
    dump({b"fine_label_names": [b"class%02d" % k for k in range(100)],
          b"coarse_label_names": [b"super%02d" % k for k in range(20)]}, os.path.join(d, "meta"), style)


class RunsCode:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def batch_with(data):
    return {b"batch_label": b"x", b"labels": [1, 2], b"data": data, b"filenames": [b"a", b"b"]}


def write_evil(d):
    os.makedirs(d, exist_ok=True)
    cmd = "touch " + MARKER
    files = {
        # GLOBAL posix.system + REDUCE, inside an otherwise valid batch (protocol 2 and 4: STACK_GLOBAL)
        "reduce_p2": pickle.dumps(batch_with(RunsCode(os.system, cmd)), protocol=2),
        "reduce_p4": pickle.dumps(batch_with(RunsCode(os.system, cmd)), protocol=4),
        # builtins.eval / builtins.exec
        "eval_p3": pickle.dumps(batch_with(RunsCode(eval, "__import__('os').system(%r)" % cmd)), protocol=3),
        # hand-made: INST, OBJ, NEWOBJ (Python's pickler no longer writes them, pickle.load still runs them)
        "inst": b"(U" + bytes([len(cmd)]) + cmd.encode() + b"ios\nsystem\n.",
        "obj": b"\x80\x02(cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd.encode() + b"o.",
        "newobj": b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd.encode() + b"\x85\x81.",
        # a numpy global that is not one of the three numpy arrays pickle through
        "numpy_other": b"\x80\x02cnumpy\nload\nX\x01\x00\x00\x00x\x85R.",
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def write_bad(d):
    os.makedirs(d, exist_ok=True)
    good = batch_with(pixels(0, 2))
    cases = {
        "list_top": [1, 2, 3],
        "no_labels": {b"data": pixels(0, 2)},
        "data_int64": batch_with(pixels(0, 2).astype(np.int64)),
        "data_1024": batch_with(np.zeros((2, 1024), np.uint8)),
        "data_fortran": batch_with(np.asfortranarray(pixels(0, 2))),
        "labels_count": {**good, b"labels": [1]},
        "label_10": {**good, b"labels": [1, 10]},
        "labels_str": {**good, b"labels": [b"cat", b"dog"]},
    }
    for name, obj in cases.items():
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump(obj, f, protocol=2)
    full = pickle.dumps(good, protocol=2)
    with open(os.path.join(d, "truncated"), "wb") as f:
        f.write(full[: len(full) // 2])
    with open(os.path.join(d, "no_stop"), "wb") as f:
        f.write(full[:-1])


def write_pt(d):
    import torch
    os.makedirs(d, exist_ok=True)
    nchw = torch.from_numpy(pixels(0, 4).reshape(4, 3, 32, 32).copy())
    labels = torch.tensor([0, 1, 2, 9], dtype=torch.int64)
    torch.save({"images": nchw, "labels": labels}, os.path.join(d, "nchw.pt"))
    torch.save({"images": nchw.permute(0, 2, 3, 1).contiguous(), "labels": labels}, os.path.join(d, "nhwc.pt"))
    torch.save({"images": nchw.permute(0, 2, 3, 1), "labels": labels}, os.path.join(d, "nhwc_view.pt"))
    torch.save({"images": nchw.float() / 255, "labels": labels, "classes": [str(k) for k in range(10)]},
               os.path.join(d, "float.pt"))
    torch.save({"images": nchw[1:3], "labels": labels[1:3], "num_classes": 10}, os.path.join(d, "slice.pt"))
    torch.save({"images": nchw[:, 0], "labels": labels.int()}, os.path.join(d, "gray.pt"))
    torch.save({"images": nchw.float() * 2, "labels": labels}, os.path.join(d, "float_255.pt"))
    torch.save({"images": nchw, "labels": labels[:3]}, os.path.join(d, "labels_count.pt"))
    torch.save({"images": nchw, "labels": labels.float()}, os.path.join(d, "labels_float.pt"))
    torch.save({"data": nchw, "targets": labels}, os.path.join(d, "other_keys.pt"))
    torch.save([nchw, labels], os.path.join(d, "list.pt"))
    torch.save({"images": nchw, "labels": labels}, os.path.join(d, "legacy.pt"), _use_new_zipfile_serialization=False)
    import collections
    torch.save(collections.OrderedDict(images=nchw, labels=labels), os.path.join(d, "odict.pt"))
    torch.save({"images": nchw, "labels": labels, "np": np.zeros(3)}, os.path.join(d, "numpy.pt"))
    torch.save({"images": nchw, "labels": labels, "x": RunsCode(os.system, "touch " + MARKER)},
               os.path.join(d, "evil.pt"))
    buf = io.BytesIO()
    torch.save({"images": nchw, "labels": labels}, buf)
    with open(os.path.join(d, "truncated.pt"), "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])


if "cifar" in PARTS:
    for style in ("py2", "2", "3", "4", "5"):
        write_cifar(os.path.join(OUT, style), style)
if "evil" in PARTS:
    write_evil(os.path.join(OUT, "evil"))
if "bad" in PARTS:
    write_bad(os.path.join(OUT, "bad"))
if "pt" in PARTS:
    write_pt(os.path.join(OUT, "pt"))
