#!/usr/bin/python3
"""Writes CIFAR-10 in torchvision's Python layout, as `torchvision.datasets.CIFAR10(root, download=True)`
leaves it: ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}, each a pickle (protocol 2,
what the official cifar-10-python.tar.gz holds) of a dict with bytes keys: b"data" uint8 [N, 3072]
(R, G, B planes of 32x32), b"labels" list of int, b"filenames", b"batch_label".

Usage: /usr/bin/python3 tests/eval/write_cifar_python.py ROOT TRAIN_PER_BATCH TEST
Image i of a split has label i % 10 and a bright horizontal band at rows 3*label..3*label+2 over noise,
so that a linear probe on raw pixels separates the classes.
"""
import os
import pickle
import sys

import numpy as np

root, per_batch, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = os.path.join(root, "cifar-10-batches-py")
os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(7)
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def batch(first, n, batch_label):
    labels = [(first + k) % 10 for k in range(n)]
    img = rng.integers(0, 90, size=(n, 3, 32, 32), dtype=np.uint8)
    for k, lb in enumerate(labels):
        img[k, :, 3 * lb:3 * lb + 3, :] += 160
    return {b"batch_label": batch_label.encode(), b"labels": labels, b"data": img.reshape(n, 3072),
            b"filenames": [b"img_%05d.png" % (first + k) for k in range(n)]}


def dump(obj, name):
    with open(os.path.join(d, name), "wb") as f:
        pickle.dump(obj, f, protocol=2)


for b in range(5):
    dump(batch(b * per_batch, per_batch, "training batch %d of 5" % (b + 1)), "data_batch_%d" % (b + 1))
dump(batch(0, n_test, "testing batch 1 of 1"), "test_batch")
dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch, b"num_vis": 3072},
     "batches.meta")
