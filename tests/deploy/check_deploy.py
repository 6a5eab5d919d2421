#!/usr/bin/python3
"""Static checks of the deployment kit (docker/, deploy/k8s, deploy/slurm, deploy/systemd).

Nothing here needs a Docker engine, a Kubernetes cluster, Slurm or systemd as PID 1: the files are
parsed and checked against the project's conventions. Each subcommand prints one line per problem
("FILE:LINE: message") and exits 1 if there is any, 0 otherwise (2 for bad usage).

  check_deploy.py dockerfile FILE [--context DIR] [--require-healthcheck]
  check_deploy.py dockerignore FILE
  check_deploy.py k8s DIR
  check_deploy.py slurm DIR
  check_deploy.py systemd UNIT --exec DIR        (runs systemd-analyze verify/security when present)
  check_deploy.py libtorch-pin DOCKERFILE PINFILE (the CUDA image builds the LibTorch/CUDA/NCCL line the
                                                  GPU kit tested, tests/gpu/LIBTORCH_TESTED)
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, msg):
        self.items.append(f"{where}: {msg}")

    def finish(self, what):
        for p in self.items:
            print(p)
        if not self.items:
            print(f"ok: {what}")
        return 1 if self.items else 0


# ---- Dockerfiles -------------------------------------------------------------------------------

def dockerfile_instructions(path):
    """[(line_no, INSTRUCTION, args)] with continuation lines joined and comments dropped."""
    out, buf, start = [], "", 0
    with open(path) as f:
        lines = f.read().split("\n")
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment inside a continued instruction
        if not buf:
            start = i
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, args = buf.partition(" ")
        out.append((start, word, args.strip()))
        buf = ""
    if buf:
        out.append((start, "<unterminated>", buf))
    return out


def substitute(text, args):
    def rep(m):
        name = m.group(1) or m.group(2)
        return args.get(name, m.group(0))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", rep, text)


def check_dockerfile(path, context, require_healthcheck):
    p = Problems()
    ins = dockerfile_instructions(path)
    global_args, stages, stage = {}, [], None
    for line, word, args in ins:
        where = f"{path}:{line}"
        if word != word.upper() or word not in INSTRUCTIONS:
            p.add(where, f"unknown or non-uppercase instruction '{word}'")
            continue
        if word == "ARG":
            name, _, default = args.partition("=")
            default = default.strip().strip('"')
            if stage is None:
                global_args[name.strip()] = substitute(default, global_args)
            else:
                stage["args"][name.strip()] = default or global_args.get(name.strip(), "")
            if re.search(r"_(VERSION|TAG|IMAGE)$", name.strip()) and not default and name.strip() not in global_args:
                p.add(where, f"ARG {name.strip()} has no pinned default")
            continue
        if word == "FROM":
            m = re.match(r"(--platform=\S+\s+)?(\S+)(\s+AS\s+(\S+))?\s*$", args, re.IGNORECASE)
            if not m:
                p.add(where, f"cannot parse FROM '{args}'")
                continue
            image = substitute(m.group(2), global_args)
            name = m.group(4)
            stage = {"line": line, "image": image, "name": name, "user": None, "healthcheck": None,
                     "args": {}, "cmd": False}
            stages.append(stage)
            known = [s["name"] for s in stages[:-1] if s["name"]]
            if image in known:
                continue  # FROM an earlier stage
            if "$" in image:
                p.add(where, f"FROM {m.group(2)}: unresolved variable (give the ARG a default)")
            elif "@sha256:" in image:
                pass
            else:
                last = image.rsplit("/", 1)[-1]
                if ":" not in last:
                    p.add(where, f"FROM {image}: no tag (pin a version)")
                elif last.endswith(":latest"):
                    p.add(where, f"FROM {image}: ':latest' is not pinned")
            continue
        if stage is None:
            p.add(where, f"{word} before the first FROM")
            continue
        if word == "USER":
            stage["user"] = (line, args.split(":")[0].strip())
        elif word == "HEALTHCHECK":
            stage["healthcheck"] = (line, args)
            if args.strip().upper() != "NONE" and not re.search(r"\bCMD\s+\S", args):
                p.add(where, "HEALTHCHECK without a CMD")
        elif word in ("CMD", "ENTRYPOINT"):
            stage["cmd"] = True
        elif word in ("COPY", "ADD"):
            toks = shlex.split(args)
            from_stage = [t for t in toks if t.startswith("--from=")]
            srcs = [t for t in toks if not t.startswith("--")][:-1]
            if word == "ADD" and any(s.startswith(("http://", "https://")) for s in srcs):
                p.add(where, "ADD of a URL: download with a checksum in RUN instead")
            if from_stage:
                ref = from_stage[0].split("=", 1)[1]
                if ref not in [s["name"] for s in stages[:-1]] and not ref.isdigit():
                    p.add(where, f"COPY --from={ref}: no earlier stage has that name")
            elif context:
                for src in srcs:
                    if not glob.glob(os.path.join(context, src)):
                        p.add(where, f"{word} source '{src}' does not exist in the build context {context}")
        elif word == "RUN":
            if re.search(r"apt-get\s+(-\S+\s+)*install", args):
                if "--no-install-recommends" not in args:
                    p.add(where, "apt-get install without --no-install-recommends")
                if not re.search(r"(-y\b|--yes\b|--assume-yes\b)", args):
                    p.add(where, "apt-get install without -y")
                if "rm -rf /var/lib/apt/lists" not in args:
                    p.add(where, "apt-get install without removing /var/lib/apt/lists in the same RUN")
            if re.search(r"(curl|wget)\s[^|;&]*https?://", args) and "sha256sum" not in args and "git clone" not in args:
                p.add(where, "download without a checksum check (sha256sum -c)")
            if re.search(r"\b(pip|pip3) install\b(?![^;&]*==)", args):
                p.add(where, "pip install without pinned versions")
            # .dockerignore drops .git: the revision --version reports must come in as a build argument.
            if re.search(r"\bcmake\s+-S\s+\.(\s|$)", args):
                if not re.search(r"-DVICREG_GIT_REVISION=\"?\$\{?VICREG_GIT_REVISION\b", args):
                    p.add(where, "cmake configure without -DVICREG_GIT_REVISION=\"${VICREG_GIT_REVISION}\" "
                                 "(the context has no .git: --version would say 'unknown')")
                if "VICREG_GIT_REVISION" not in stage["args"]:
                    p.add(where, "cmake configure in a stage without ARG VICREG_GIT_REVISION")
    if len(stages) < 2:
        p.add(path, f"single-stage build ({len(stages)} FROM); use a build stage and a runtime stage")
    if stages:
        final = stages[-1]
        if final["user"] is None:
            p.add(path, "the final stage never sets USER (runs as root)")
        elif final["user"][1] in ("root", "0"):
            p.add(f"{path}:{final['user'][0]}", "the final stage runs as root")
        if require_healthcheck:
            hc = final["healthcheck"]
            if hc is None:
                p.add(path, "no HEALTHCHECK in the final stage")
            elif hc[1].strip().upper() == "NONE":
                p.add(f"{path}:{hc[0]}", "HEALTHCHECK NONE where a health check is required")
        if not final["cmd"]:
            p.add(path, "the final stage has no CMD or ENTRYPOINT")
    return p.finish(path)


def check_dockerignore(path):
    p = Problems()
    if not os.path.isfile(path):
        p.add(path, "missing")
        return p.finish(path)
    pats = [l.strip() for l in open(path) if l.strip() and not l.strip().startswith("#")]
    for need in (".git", "build"):
        if not any(x == need or x == need + "/" or x.startswith(need) for x in pats):
            p.add(path, f"does not exclude {need}")
    return p.finish(path)


# ---- Kubernetes --------------------------------------------------------------------------------

def walk_pod_specs(doc):
    """Yields (name, pod_spec) for every pod template in a manifest."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield kind, (spec.get("template") or {}).get("spec") or {}
    elif kind == "MPIJob":
        for role, rs in (spec.get("mpiReplicaSpecs") or {}).items():
            yield f"MPIJob {role}", (rs.get("template") or {}).get("spec") or {}
    elif kind == "Pod":
        yield kind, spec


def check_k8s(directory):
    p = Problems()
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")))
    if not files:
        p.add(directory, "no *.yaml files")
    kinds = {}
    names = {}
    for f in files:
        try:
            docs = [d for d in yaml.safe_load_all(open(f)) if d is not None]
        except yaml.YAMLError as e:
            p.add(f, f"YAML does not parse: {e}")
            continue
        for d in docs:
            where = f"{f}: {d.get('kind', '?')}/{(d.get('metadata') or {}).get('name', '?')}"
            for key in ("apiVersion", "kind", "metadata"):
                if key not in d:
                    p.add(where, f"missing {key}")
            if "name" not in (d.get("metadata") or {}):
                p.add(where, "missing metadata.name")
                continue
            kinds.setdefault(d["kind"], []).append((f, d))
            names[(d["kind"], d["metadata"]["name"])] = d
            for role, pod in walk_pod_specs(d):
                psc = pod.get("securityContext") or {}
                if not psc.get("runAsNonRoot"):
                    p.add(where, f"{role}: pod securityContext.runAsNonRoot is not true")
                if psc.get("runAsUser", 1) == 0:
                    p.add(where, f"{role}: runAsUser 0")
                for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                    csc = c.get("securityContext") or {}
                    if csc.get("allowPrivilegeEscalation") is not False:
                        p.add(where, f"{role} container {c.get('name')}: allowPrivilegeEscalation is not false")
                    if csc.get("privileged"):
                        p.add(where, f"{role} container {c.get('name')}: privileged")
                    img = str(c.get("image", ""))
                    if not img or img.endswith(":latest") or ":" not in img.rsplit("/", 1)[-1]:
                        p.add(where, f"{role} container {c.get('name')}: image '{img}' is not pinned to a tag")
                vols = {v.get("name") for v in pod.get("volumes") or []}
                for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                    for vm in c.get("volumeMounts") or []:
                        if vm.get("name") not in vols:
                            p.add(where, f"{role} container {c.get('name')}: volumeMount '{vm.get('name')}' has no volume")
    # The product's contract for Kubernetes.
    deps = kinds.get("Deployment", [])
    if not deps:
        p.add(directory, "no coordinator Deployment")
    for f, d in deps:
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        if not any(x.get("grpc") or x.get("httpGet") for x in (c.get("livenessProbe"), c.get("readinessProbe")) if x):
            p.add(f, "coordinator container has no liveness/readiness probe")
        sel = d["spec"].get("selector", {}).get("matchLabels", {})
        svc = [s for _, s in kinds.get("Service", []) if s["spec"].get("selector") == sel]
        if not svc:
            p.add(f, f"no Service selects the Deployment's labels {sel}")
        for v in pod.get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and ("PersistentVolumeClaim", claim) not in names:
                p.add(f, f"volume {v['name']} uses PVC '{claim}' that no manifest defines")
            cm = (v.get("configMap") or {}).get("name")
            if cm and ("ConfigMap", cm) not in names:
                p.add(f, f"volume {v['name']} uses ConfigMap '{cm}' that no manifest defines")
    if not kinds.get("PersistentVolumeClaim"):
        p.add(directory, "no PersistentVolumeClaim for the state and run directories")
    cms = kinds.get("ConfigMap", [])
    for f, cm in cms:
        for key, text in (cm.get("data") or {}).items():
            if key.endswith((".yaml", ".yml")):
                try:
                    yaml.safe_load(text)
                except yaml.YAMLError as e:
                    p.add(f, f"ConfigMap {cm['metadata']['name']} key {key}: YAML does not parse: {e}")
    mpijobs = kinds.get("MPIJob", [])
    if not mpijobs:
        p.add(directory, "no MPIJob for the workers")
    for f, j in mpijobs:
        if j.get("apiVersion") != "kubeflow.org/v2beta1":
            p.add(f, f"MPIJob apiVersion is {j.get('apiVersion')}, expected kubeflow.org/v2beta1")
        specs = j["spec"].get("mpiReplicaSpecs") or {}
        if set(specs) != {"Launcher", "Worker"}:
            p.add(f, f"mpiReplicaSpecs has {sorted(specs)}, expected Launcher and Worker")
            continue
        slots = j["spec"].get("slotsPerWorker", 1)
        workers = specs["Worker"].get("replicas", 1)
        wc = specs["Worker"]["template"]["spec"]["containers"][0]
        gpus = ((wc.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu")
        if gpus is None:
            p.add(f, "Worker container has no nvidia.com/gpu limit")
        elif int(gpus) != int(slots):
            p.add(f, f"Worker requests {gpus} GPUs but slotsPerWorker is {slots}")
        lc = specs["Launcher"]["template"]["spec"]["containers"][0]
        argv = [str(x) for x in (lc.get("command") or []) + (lc.get("args") or [])]
        if "mpirun" not in argv[0] or "vicreg_worker" not in argv:
            p.add(f, "Launcher does not run mpirun ... vicreg_worker")
        elif "-np" in argv:
            np_ = int(argv[argv.index("-np") + 1])
            if np_ != workers * slots:
                p.add(f, f"mpirun -np {np_} != Worker replicas {workers} x slotsPerWorker {slots}")
            if f"resources.ranks={np_}" not in argv:
                p.add(f, f"the Launcher does not --set resources.ranks={np_}")
        # Metrics: rank r of a pod listens on metrics.port + local rank; the annotation, the container
        # ports and a PodMonitor must name exactly those ports.
        port = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("metrics.port=")), None)
        if port is None or port == 0:
            p.add(f, "the Launcher does not --set metrics.port=N (the default 0 is a random port: nothing can "
                     "scrape it)")
            continue
        wmeta = specs["Worker"]["template"].get("metadata") or {}
        ann = (wmeta.get("annotations") or {}).get("prometheus.io/port")
        if ann is not None and str(ann) != str(port):
            p.add(f, f"Worker annotation prometheus.io/port {ann} != metrics.port {port} (local rank 0's port)")
        declared = {int(x["containerPort"]): x.get("name") for x in wc.get("ports") or []}
        want = {port + r for r in range(int(slots))}
        for q in sorted(want - set(declared)):
            p.add(f, f"Worker container does not declare port {q} (metrics.port {port} + local rank {q - port})")
        names_wanted = {declared[q] for q in want if q in declared}
        labels = wmeta.get("labels") or {}
        monitors = [m for _, m in kinds.get("PodMonitor", [])
                    if all(labels.get(k) == v for k, v in
                           (((m.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())]
        if not monitors:
            p.add(f, "no PodMonitor selects the Worker pods' labels")
        for m in monitors:
            eps = {e.get("port") for e in (m.get("spec") or {}).get("podMetricsEndpoints") or []}
            for n in sorted(x for x in names_wanted - eps if x):
                p.add(f, f"PodMonitor {m['metadata']['name']} does not scrape port {n}")
            for n in sorted(x for x in eps - names_wanted if x):
                p.add(f, f"PodMonitor {m['metadata']['name']} scrapes port {n}, which no rank listens on")
    return p.finish(directory)


# ---- Slurm -------------------------------------------------------------------------------------

def check_slurm(directory):
    p = Problems()
    scripts = sorted(glob.glob(os.path.join(directory, "*.sbatch")) + glob.glob(os.path.join(directory, "*.sh")))
    if not scripts:
        p.add(directory, "no sbatch template")
    for s in scripts:
        r = subprocess.run(["bash", "-n", s], capture_output=True, text=True)
        if r.returncode != 0:
            p.add(s, f"bash -n: {r.stderr.strip()}")
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", "-S", "warning", s], capture_output=True, text=True)
            if r.returncode != 0:
                p.add(s, "shellcheck:\n" + r.stdout.strip())
        else:
            print(f"note: shellcheck not installed; {s} only checked with bash -n")
        text = open(s).read()
        directives = re.findall(r"^#SBATCH\s+(--[a-z-]+)", text, re.MULTILINE)
        if s.endswith(".sbatch"):
            for need in ("--nodes", "--ntasks-per-node"):
                if need not in directives:
                    p.add(s, f"no #SBATCH {need}")
            if "--gpus-per-task" not in directives and "--gres" not in directives:
                p.add(s, "no #SBATCH --gpus-per-task or --gres")
            if not re.search(r"^\s*srun\s+--mpi=pmix\b.*", text, re.MULTILINE):
                p.add(s, "no 'srun --mpi=pmix' line")
            if "vicreg_worker" not in text or "--job" not in text:
                p.add(s, "does not run vicreg_worker --job")
            first_cmd = re.search(r"^[^#\s].*$", text, re.MULTILINE)
            last_sbatch = max((m.start() for m in re.finditer(r"^#SBATCH", text, re.MULTILINE)), default=-1)
            if first_cmd and last_sbatch > first_cmd.start():
                p.add(s, "#SBATCH directives after the first command are ignored by sbatch")
    for y in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        try:
            doc = yaml.safe_load(open(y))
        except yaml.YAMLError as e:
            p.add(y, f"YAML does not parse: {e}")
            continue
        if not isinstance(doc, dict):
            p.add(y, "not a mapping")
        elif doc.get("launcher") != "slurm":
            p.add(y, "coordinator config does not select launcher: slurm")
    return p.finish(directory)


# ---- systemd -----------------------------------------------------------------------------------

HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
             "RestrictAddressFamilies=", "ReadWritePaths=", "ProtectKernelTunables=yes",
             "ProtectControlGroups=yes", "CapabilityBoundingSet=", "SystemCallFilter="]


def check_systemd(unit, exec_dir, max_exposure):
    p = Problems()
    text = open(unit).read()
    for h in HARDENING:
        if not re.search(r"^" + re.escape(h), text, re.MULTILINE):
            p.add(unit, f"missing hardening option {h}")
    if not re.search(r"^User=(?!root)\S+", text, re.MULTILINE):
        p.add(unit, "no non-root User=")
    if not re.search(r"^EnvironmentFile=", text, re.MULTILINE):
        p.add(unit, "no EnvironmentFile=")
    m = re.search(r"^ExecStart=(\S+)(.*)$", text, re.MULTILINE)
    if not m:
        p.add(unit, "no ExecStart=")
        return p.finish(unit)
    if "--config" not in m.group(2):
        p.add(unit, "ExecStart does not pass --config")
    tool = shutil.which("systemd-analyze")
    if not tool:
        print(f"SKIP: systemd-analyze is not installed; {unit} checked statically only")
        return p.finish(unit)
    # systemd-analyze verify needs the ExecStart binary to exist: point it at the built one.
    exe = os.path.join(os.path.abspath(exec_dir), os.path.basename(m.group(1)))
    if not os.access(exe, os.X_OK):
        p.add(unit, f"{exe} is not built; cannot run systemd-analyze verify")
        return p.finish(unit)
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, os.path.basename(unit))
        with open(copy, "w") as f:
            f.write(text.replace(m.group(1), exe))
        r = subprocess.run([tool, "verify", copy], capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        mine = [l for l in out.splitlines() if os.path.basename(unit) in l or "ignoring" in l.lower()]
        if r.returncode != 0 or mine:
            p.add(unit, "systemd-analyze verify:\n" + out)
        else:
            print(f"systemd-analyze verify: clean ({tool})")
        r = subprocess.run([tool, "security", "--offline=true", copy], capture_output=True, text=True)
        m2 = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        if m2:
            level = float(m2.group(1))
            print(f"systemd-analyze security: exposure {level}")
            if level > max_exposure:
                p.add(unit, f"systemd-analyze security: exposure {level} > {max_exposure}")
        else:
            print("note: systemd-analyze security --offline is not supported here; exposure not measured")
    return p.finish(unit)


# ---- LibTorch line of the CUDA image vs the one the GPU kit tested ------------------------------

def check_libtorch_pin(dockerfile, pinfile):
    """ARG LIBTORCH_VERSION/LIBTORCH_CUDA/CUDA_VERSION/NCCL_VERSION defaults vs 'torch X+cuNNN' and
    'nccl A.B.C' in the pin file: same torch version and CUDA tag, CUDA_VERSION of that tag (cu130 ->
    13.0.x), NCCL_VERSION 'A.B.C-*+cudaMM.m' of the tested NCCL and that CUDA."""
    p = Problems()
    args = {}
    for line, word, rest in dockerfile_instructions(dockerfile):
        if word == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args.setdefault(name.strip(), (line, default.strip().strip('"')))
    pin = {}
    with open(pinfile) as fh:
        for raw in fh:
            raw = raw.split("#", 1)[0].strip()
            if raw:
                key, _, value = raw.partition(" ")
                pin[key] = value.strip()
    m = re.fullmatch(r"(\d+\.\d+\.\d+)\+(cu(\d+))", pin.get("torch", ""))
    if not m:
        p.add(pinfile, f"no 'torch X.Y.Z+cuNNN' line (got '{pin.get('torch', '')}')")
        return p.finish(dockerfile)
    version, tag, digits = m.group(1), m.group(2), m.group(3)
    cuda = f"{digits[:-1]}.{digits[-1]}"  # cu130 -> 13.0, cu128 -> 12.8

    def want(name, ok, expected):
        if name not in args:
            p.add(dockerfile, f"no ARG {name}=... default")
        elif not ok(args[name][1]):
            p.add(f"{dockerfile}:{args[name][0]}", f"ARG {name}={args[name][1]}, but the GPU kit tested {expected} "
                                                  f"({pinfile})")
    want("LIBTORCH_VERSION", lambda v: v == version, version)
    want("LIBTORCH_CUDA", lambda v: v == tag, tag)
    want("CUDA_VERSION", lambda v: v == cuda or v.startswith(cuda + "."), f"CUDA {cuda} ({tag})")
    if "nccl" in pin:
        want("NCCL_VERSION", lambda v: v.startswith(pin["nccl"] + "-") and v.endswith("+cuda" + cuda),
             f"NCCL {pin['nccl']} for CUDA {cuda}")
    return p.finish(dockerfile)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dockerfile")
    d.add_argument("file")
    d.add_argument("--context", default="")
    d.add_argument("--require-healthcheck", action="store_true")
    di = sub.add_parser("dockerignore")
    di.add_argument("file")
    k = sub.add_parser("k8s")
    k.add_argument("dir")
    s = sub.add_parser("slurm")
    s.add_argument("dir")
    u = sub.add_parser("systemd")
    u.add_argument("unit")
    u.add_argument("--exec", required=True, dest="exec_dir")
    u.add_argument("--max-exposure", type=float, default=4.0)
    lp = sub.add_parser("libtorch-pin")
    lp.add_argument("dockerfile")
    lp.add_argument("pinfile")
    a = ap.parse_args()
    if a.cmd == "dockerfile":
        return check_dockerfile(a.file, a.context, a.require_healthcheck)
    if a.cmd == "dockerignore":
        return check_dockerignore(a.file)
    if a.cmd == "k8s":
        return check_k8s(a.dir)
    if a.cmd == "slurm":
        return check_slurm(a.dir)
    if a.cmd == "libtorch-pin":
        return check_libtorch_pin(a.dockerfile, a.pinfile)
    return check_systemd(a.unit, a.exec_dir, a.max_exposure)


if __name__ == "__main__":
    sys.exit(main())
