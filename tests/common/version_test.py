#!/usr/bin/env python3
"""`--version` of every vicreg binary (common/build_info.h), run as real processes.

usage: version_test.py SOURCE_DIR EXPECTED_REVISION_OVERRIDE BINARY...

Each binary must exit 0 and print "<name> <version> (<revision>)" and then "key: value" lines with at
least version, revision, build, libtorch, cuda, nccl, mpi, gloo. The revision must equal
`git rev-parse --short HEAD` of SOURCE_DIR when it is a git tree (or the -DVICREG_GIT_REVISION
override when one was given, passed as the second argument; "-" for none). Binaries that link LibTorch
(vicreg_worker, vicreg_eval, vicreg_bench) must report a LibTorch version; the others "not linked".
"""
import concurrent.futures
import os
import re
import subprocess
import sys

REQUIRED = ["version", "revision", "build", "libtorch", "cuda", "nccl", "mpi", "gloo"]
TORCH_BINARIES = {"vicreg_worker", "vicreg_eval", "vicreg_bench"}


def expected_revision(source_dir, override):
    if override not in ("", "-"):
        return override
    try:
        out = subprocess.run(["git", "-C", source_dir, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=30)
    except FileNotFoundError:
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def check(binary, revision):
    name = os.path.basename(binary)
    errors = []
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    if p.returncode != 0:
        return [f"{name} --version: exit {p.returncode}, stderr: {p.stderr.strip()}"]
    lines = p.stdout.rstrip("\n").split("\n")
    m = re.fullmatch(r"(\S+) (\d+\.\d+\.\d+) \((\S+)\)", lines[0])
    if not m or m.group(1) != name:
        errors.append(f"{name} --version: first line {lines[0]!r} is not '{name} X.Y.Z (revision)'")
    fields = {}
    for line in lines[1:]:
        k, sep, v = line.partition(": ")
        if not sep or not re.fullmatch(r"[a-z_]+", k) or not v:
            errors.append(f"{name} --version: line {line!r} is not 'key: value'")
            continue
        fields[k] = v
    for k in REQUIRED:
        if k not in fields:
            errors.append(f"{name} --version: no '{k}:' line in {p.stdout!r}")
    if m and fields.get("version") != m.group(2):
        errors.append(f"{name} --version: version field {fields.get('version')!r} != {m.group(2)!r} of the first line")
    if revision is not None and fields.get("revision") != revision:
        errors.append(f"{name} --version: revision {fields.get('revision')!r}, the source tree is at {revision!r} "
                      "(rebuild: configure re-runs when HEAD moves)")
    torch = fields.get("libtorch", "")
    if name in TORCH_BINARIES:
        if not re.match(r"\d+\.\d+", torch):
            errors.append(f"{name} links LibTorch but reports libtorch: {torch!r}")
    elif torch != "not linked":
        errors.append(f"{name} does not link LibTorch but reports libtorch: {torch!r}")
    for k in ("cuda", "nccl", "mpi", "gloo"):
        if k in fields and not re.match(r"(yes|no)\b", fields[k]):
            errors.append(f"{name} --version: {k}: {fields[k]!r} does not start with yes/no")
    return errors


def main():
    source_dir, override, binaries = sys.argv[1], sys.argv[2], sys.argv[3:]
    revision = expected_revision(source_dir, override)
    print(f"expected revision: {revision or '(not a git tree: not compared)'}")
    errors = []
    # In parallel: the LibTorch binaries take a second each to load their libraries.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(binaries) or 1) as pool:
        results = list(pool.map(lambda b: check(b, revision), binaries))
    for b, e in zip(binaries, results):
        print(f"{os.path.basename(b)}: {'ok' if not e else 'FAILED'}")
        errors += e
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
