#!/usr/bin/env python3
"""Include rules of the source tree (docs/ARCHITECTURE.md "Layers"): dependencies point one way.

    include_rules.py [ROOT]          check ROOT (default: the repository); exit 1 listing every violation
    include_rules.py --self-test     plant violations in a temporary tree and check that each is caught

Rules, for every #include in the C++ sources (.h, .cc, .cpp, .in) under the folders below:
  * a project header ("common/...", "worker/...", "server/...", "vicreg/v1/...") may come only from the
    layers the including folder may use:
        common/        common
        worker/data/   common, data           worker/comm/   common, comm
        worker/model/  + data, comm, model    worker/train/  + train (no eval)
        worker/eval/   + eval                 worker/bench/, worker/*.cc   any worker folder
        server/        common, server, the generated API (vicreg/v1/)
    (worker/torch_compat.h, the LibTorch version shim, is open to every worker folder);
  * common/ includes no torch (<torch/...>, <ATen/...>, <c10/...>) and no gRPC/protobuf header;
    server/ includes no torch; worker/ includes no gRPC/protobuf header.
Only the standard library is used (any python3).
"""
import os
import re
import sys
import tempfile

SOURCE_EXT = (".h", ".hpp", ".cc", ".cpp", ".in")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')

WORKER_LAYERS = ["data", "comm", "model", "train", "eval", "bench"]
# folder -> the project include prefixes it may use
ALLOWED = {
    "common/": ["common/"],
    "worker/data/": ["common/", "worker/data/"],
    "worker/comm/": ["common/", "worker/comm/"],
    "worker/model/": ["common/", "worker/data/", "worker/comm/", "worker/model/"],
    "worker/train/": ["common/", "worker/data/", "worker/comm/", "worker/model/", "worker/train/"],
    "worker/eval/": ["common/", "worker/data/", "worker/comm/", "worker/model/", "worker/train/", "worker/eval/"],
    "worker/bench/": ["common/", "worker/"],
    "worker/": ["common/", "worker/"],  # worker_main.cc and the shared torch_compat.h
    "server/": ["common/", "server/", "vicreg/v1/"],
}
OPEN_TO_WORKER = ["worker/torch_compat.h"]
PROJECT_PREFIXES = ("common/", "worker/", "server/", "vicreg/v1/")
TORCH = ("torch/", "ATen/", "c10/")
GRPC = ("grpc/", "grpcpp/", "grpc++/", "google/protobuf/")
FORBIDDEN_SYSTEM = {
    "common/": (TORCH + GRPC, "common/ is torch- and gRPC-free"),
    "server/": (TORCH, "the coordinator does not link torch"),
    "worker/": (GRPC, "the worker does not speak gRPC"),
}


def folder_of(rel):
    """The rule key of a source path: the longest ALLOWED key it lies under."""
    best = None
    for key in ALLOWED:
        if rel.startswith(key) and (best is None or len(key) > len(best)):
            best = key
    return best


def violations(root):
    found = []
    for top in ("common", "worker", "server"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                key = folder_of(rel)
                if key is None:
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        kind, header = m.groups()
                        where = "%s:%d: #include %s%s%s" % (rel, lineno, kind, header, '"' if kind == '"' else ">")
                        if header.startswith(PROJECT_PREFIXES):
                            ok = any(header.startswith(p) for p in ALLOWED[key])
                            ok = ok or (key.startswith("worker/") and header in OPEN_TO_WORKER)
                            if not ok:
                                found.append("%s: %s may include only %s" % (where, key, ", ".join(ALLOWED[key])))
                        for top_key, (prefixes, why) in FORBIDDEN_SYSTEM.items():
                            if rel.startswith(top_key) and header.startswith(prefixes):
                                found.append("%s: %s" % (where, why))
    return found


def self_test():
    planted = {
        "worker/train/bad.cc": '#include "worker/eval/features.h"\n',
        "worker/model/bad.h": '#include "worker/train/loss.h"\n',
        "worker/data/bad.cc": '#include "worker/model/vit.h"\n',
        "worker/eval/bad.cc": '#include "worker/bench/bench.h"\n',
        "common/bad.h": "#include <torch/torch.h>\n",
        "common/bad2.cc": "#include <grpcpp/grpcpp.h>\n",
        "common/bad3.cc": '#include "worker/train/trainer.h"\n',
        "server/bad.cc": "#include <ATen/ATen.h>\n",
        "worker/comm/bad.cc": "#include <google/protobuf/message.h>\n",
    }
    fine = {
        "worker/eval/ok.cc": '#include "worker/train/checkpoint.h"\n#include "worker/torch_compat.h"\n',
        "worker/train/ok.cc": '#include "worker/model/vit.h"\n#include <ATen/ATen.h>\n',
        "worker/worker_main.cc": '#include "worker/eval/online_monitor.h"\n',
        "server/ok.cc": '#include "vicreg/v1/coordinator.grpc.pb.h"\n#include <grpcpp/grpcpp.h>\n',
        "common/ok.cc": "#include <yaml-cpp/yaml.h>\n// #include <torch/torch.h> in a comment is fine\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in list(planted.items()) + list(fine.items()):
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        found = violations(tmp)
    failures = []
    for rel in planted:
        if not any(v.startswith(rel + ":") for v in found):
            failures.append("not caught: " + rel)
    for rel in fine:
        failures += ["false alarm: " + v for v in found if v.startswith(rel + ":")]
    for f in failures:
        print(f)
    print("self-test: %d planted violations, %d caught, %d false alarms" %
          (len(planted), sum(1 for rel in planted if any(v.startswith(rel + ":") for v in found)),
           sum(1 for f in failures if f.startswith("false alarm"))))
    return 1 if failures else 0


def main(argv):
    if len(argv) > 1 and argv[1] == "--self-test":
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    found = violations(root)
    for v in found:
        print(v)
    print("include rules: %d violation(s)" % len(found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
