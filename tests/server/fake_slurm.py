#!/usr/bin/python3 -S
"""A stand-in for Slurm's client commands, for coordinator tests of the Slurm launcher that need
queue behaviour a single-node Slurm cannot be asked for on demand (a job held PENDING for as long
as the test wants, a controller that stops answering, sbatch replies that get lost). The real
Slurm is driven by tests/server/slurm_test.cc and the multi-node test bed (tests/cluster/).

Installed by symlinks named sbatch, squeue, scancel, sacct, srun and fake_slurm in <dir>/bin; the state lives
in <dir>/state (jobs.json under a lock) and every call is appended to <dir>/state/calls.jsonl as
{"cmd": ..., "argv": [...], "time": ...}. The test steers it with the same script:

  <dir>/bin/fake_slurm start ID|NAME   run the job's batch script now (RUNNING; it ends by itself)
  <dir>/bin/fake_slurm add NAME        put a PENDING job of that name in the queue (a stray)

and with files in <dir>/state: squeue_fail (squeue cannot reach the controller), sbatch_fail
(sbatch cannot), sbatch_lose_reply (one-shot: the job is accepted but sbatch reports a failure),
autostart (jobs start when submitted), reason (the PENDING reason, default Resources).
srun runs its program SLURM_NTASKS times with SLURM_PROCID set, like `srun` inside an allocation.
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

STATE = os.environ.get("FAKE_SLURM_STATE",
                       os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0]))), "state"))
BIN = os.path.join(os.path.dirname(STATE), "bin")
JOBS = os.path.join(STATE, "jobs.json")
SELF = os.path.realpath(__file__)


class Locked:
    def __enter__(self):
        os.makedirs(STATE, exist_ok=True)
        self.f = open(os.path.join(STATE, "lock"), "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        try:
            with open(JOBS) as f:
                self.db = json.load(f)
        except (OSError, ValueError):
            self.db = {"next_id": 100, "jobs": {}}
        return self.db

    def __exit__(self, *exc):
        tmp = JOBS + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.db, f)
        os.replace(tmp, JOBS)
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def flag(name):
    return os.path.exists(os.path.join(STATE, name))


def record(cmd, argv):
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"cmd": cmd, "argv": argv, "time": time.time()}) + "\n")


def option(argv, name, default=None):
    for a in argv:
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return default


def active(job):
    return job["state"] in ("PENDING", "RUNNING")


def sbatch(argv):
    if flag("sbatch_fail"):
        print("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
              file=sys.stderr)
        return 1
    script = argv[-1]
    with Locked() as db:
        jid = str(db["next_id"])
        db["next_id"] += 1
        reason = open(os.path.join(STATE, "reason")).read().strip() if flag("reason") else "Resources"
        db["jobs"][jid] = {"name": option(argv, "--job-name", "sbatch"), "state": "PENDING", "reason": reason,
                           "script": script, "ntasks": int(option(argv, "--ntasks", "1")),
                           "output": option(argv, "--output", "/dev/null"), "chdir": option(argv, "--chdir", "."),
                           "argv": argv, "submitted": time.time(), "pid": 0, "exit": None, "cancel": None}
    if flag("autostart"):
        start(jid)
    if flag("sbatch_lose_reply"):
        os.remove(os.path.join(STATE, "sbatch_lose_reply"))
        print("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", file=sys.stderr)
        return 1
    print(jid if "--parsable" in argv else "Submitted batch job " + jid)
    return 0


def squeue(argv):
    if flag("squeue_fail"):
        print("squeue: error: slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
              file=sys.stderr)
        return 1
    fmt = argv[argv.index("-o") + 1] if "-o" in argv else "%i %j %T %r"
    name = option(argv, "--name")
    with Locked() as db:
        jobs = dict(db["jobs"])
    every_state = "-t" in argv and argv[argv.index("-t") + 1] == "all"
    for jid, j in sorted(jobs.items(), key=lambda kv: int(kv[0])):
        if not (every_state or active(j)) or (name is not None and j["name"] != name):
            continue
        line = fmt.replace("%i", jid).replace("%j", j["name"]).replace("%T", j["state"])
        line = line.replace("%r", j["reason"] if j["state"] == "PENDING" else "None")
        print(line)
    return 0


def scancel(argv):
    sig = signal.SIGKILL if option(argv, "--signal") == "KILL" else signal.SIGTERM
    name = option(argv, "--name")
    ids = [a for a in argv if a.isdigit()]
    targets = []
    with Locked() as db:
        for jid, j in db["jobs"].items():
            if (jid in ids or (name is not None and j["name"] == name)) and active(j):
                if j["state"] == "PENDING":
                    j["state"] = "CANCELLED"
                    j["exit"] = "0:0"
                else:
                    j["cancel"] = "CANCELLED"
                    targets.append(j["pid"])
    for pid in targets:
        try:
            os.killpg(pid, sig)
        except OSError:
            pass
    return 0


def sacct(argv):
    fmt = option(argv, "-o") or (argv[argv.index("-o") + 1] if "-o" in argv else "JobID,State,ExitCode")
    name = option(argv, "--name")
    ids = []
    if "-j" in argv:
        ids = argv[argv.index("-j") + 1].split(",")
    with Locked() as db:
        jobs = dict(db["jobs"])
    for jid, j in sorted(jobs.items(), key=lambda kv: int(kv[0])):
        if (ids and jid not in ids) or (name is not None and j["name"] != name):
            continue
        if not ids and name is None:
            continue
        values = {"JobID": jid, "State": j["state"], "ExitCode": j["exit"] or "0:0"}
        print("|".join(values[k] for k in fmt.split(",")))
    return 0


def srun(argv):
    # srun [--mpi=X] [options] PROGRAM ARGS...: the program once per task of the allocation.
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1
    prog = argv[i:]
    n = int(os.environ.get("SLURM_NTASKS", "1"))
    procs = []
    for r in range(n):
        env = dict(os.environ, SLURM_PROCID=str(r), SLURM_LOCALID=str(r))
        procs.append(subprocess.Popen(prog, env=env))

    def forward(sig, _frame):
        for p in procs:
            try:
                p.send_signal(sig)
            except OSError:
                pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCONT):
        signal.signal(s, forward)
    code = 0
    for p in procs:
        rc = p.wait()
        if rc != 0 and code == 0:
            code = rc if rc > 0 else 128 - rc
    return code


def start(key):
    with Locked() as db:
        jid = key if key in db["jobs"] else next(
            (i for i, j in db["jobs"].items() if j["name"] == key and j["state"] == "PENDING"), None)
        if jid is None or db["jobs"][jid]["state"] != "PENDING":
            print("fake_slurm: no pending job " + key, file=sys.stderr)
            return 1
        db["jobs"][jid]["state"] = "RUNNING"
        db["jobs"][jid]["reason"] = "None"
    subprocess.Popen([SELF, "run", jid], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, FAKE_SLURM_STATE=STATE))
    return 0


def run(jid):
    with Locked() as db:
        j = db["jobs"][jid]
    env = dict(os.environ, SLURM_JOB_ID=jid, SLURM_JOB_NAME=j["name"], SLURM_NTASKS=str(j["ntasks"]),
               PATH=BIN + ":" + os.environ.get("PATH", ""))
    with open(j["output"], "a") as out:
        p = subprocess.Popen(["/bin/bash", j["script"]], cwd=j["chdir"], env=env, stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        with Locked() as db:
            db["jobs"][jid]["pid"] = p.pid
        rc = p.wait()
    with Locked() as db:
        j = db["jobs"][jid]
        j["exit"] = "%d:%d" % (rc, 0) if rc >= 0 else "0:%d" % -rc
        j["state"] = j["cancel"] or ("COMPLETED" if rc == 0 else "FAILED")
    return 0


def add(name):
    with Locked() as db:
        jid = str(db["next_id"])
        db["next_id"] += 1
        db["jobs"][jid] = {"name": name, "state": "PENDING", "reason": "Priority", "script": "", "ntasks": 1,
                           "output": "/dev/null", "chdir": ".", "argv": [], "submitted": time.time(), "pid": 0,
                           "exit": None, "cancel": None}
    print(jid)
    return 0


def main():
    cmd = os.path.basename(sys.argv[0])
    argv = sys.argv[1:]
    if cmd in ("sbatch", "squeue", "scancel", "sacct", "srun"):
        record(cmd, argv)
        return {"sbatch": sbatch, "squeue": squeue, "scancel": scancel, "sacct": sacct, "srun": srun}[cmd](argv)
    if argv and argv[0] == "start":
        return start(argv[1])
    if argv and argv[0] == "run":
        return run(argv[1])
    if argv and argv[0] == "add":
        return add(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
