#!/usr/bin/python3
"""An independent client of vicreg.v1.Coordinator: Python grpcio (Debian python3-grpcio) with
stubs generated here from proto/vicreg/v1/coordinator.proto by protoc + grpc_python_plugin, and
the standard health and reflection services (protos from Debian grpc-proto).

  /usr/bin/python3 grpc_client_check.py --server HOST:PORT --source-dir REPO --job FILE --gen-dir DIR

Checks: health SERVING, reflection lists the service, submit (idempotent retry), get, watch to
SUCCEEDED with increasing sequence numbers, watch resumed from a sequence, list, logs, an error
code. Exit 0 when every check passed; prints what failed otherwise.
"""
import argparse
import os
import sys
import time

import grpc_py_util

GRPC_PROTO = "/usr/share/grpc-proto"


def generate(source_dir, gen_dir):
    grpc_py_util.generate(gen_dir, [
        (os.path.join(source_dir, "proto"), "vicreg/v1/coordinator.proto"),
        # Top-level modules (health_pb2, reflection_pb2): a gen/grpc/ package would shadow grpcio.
        (f"{GRPC_PROTO}/grpc/health/v1", "health.proto"),
        (f"{GRPC_PROTO}/grpc/reflection/v1alpha", "reflection.proto"),
    ])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--gen-dir", required=True)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    generate(a.source_dir, a.gen_dir)

    import grpc
    import health_pb2
    import health_pb2_grpc
    import reflection_pb2
    import reflection_pb2_grpc
    from vicreg.v1 import coordinator_pb2 as pb
    from vicreg.v1 import coordinator_pb2_grpc as rpc

    check = grpc_py_util.Checks()

    ch = grpc.insecure_channel(a.server)
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "vicreg.v1.Coordinator"):
        r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        check(r.status == health_pb2.HealthCheckResponse.SERVING, f"health({service!r}) is SERVING")

    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in resp.list_services_response.service}
    check("vicreg.v1.Coordinator" in names, f"reflection lists vicreg.v1.Coordinator ({sorted(names)})")

    stub = rpc.CoordinatorStub(ch)
    yaml_text = open(a.job).read()
    req = pb.SubmitJobRequest(job_yaml=yaml_text, client_request_id="python-check-1",
                              overrides=["resources.ranks=2", "name=python_client"])
    sub = stub.SubmitJob(req, timeout=30)
    check(sub.job_id.startswith("job-") and not sub.duplicate, f"submit -> {sub.job_id}")
    again = stub.SubmitJob(req, timeout=30)
    check(again.job_id == sub.job_id and again.duplicate, "the same client_request_id returns the same job")

    job = stub.GetJob(pb.GetJobRequest(job_id=sub.job_id), timeout=10)
    check(job.name == "python_client" and job.ranks == 2, f"get: name {job.name}, ranks {job.ranks}")
    check("ranks: 2" in job.spec_yaml, "get returns the resolved spec")

    seqs, states, final = [], [], None
    deadline = time.time() + a.timeout
    for ev in stub.WatchJob(pb.WatchJobRequest(job_id=sub.job_id), timeout=a.timeout):
        seqs.append(ev.sequence)
        if ev.kind == pb.JobEvent.STATE:
            states.append(pb.JobState.Name(ev.state))
        final = ev
        if time.time() > deadline:
            break
    check(all(x < y for x, y in zip(seqs, seqs[1:])), f"watch: {len(seqs)} events in increasing sequence order")
    check(final is not None and final.state == pb.SUCCEEDED, f"watch ends with SUCCEEDED (states {states})")
    check(states[:2] == ["QUEUED", "STARTING"] and "RUNNING" in states, "QUEUED -> STARTING -> RUNNING -> SUCCEEDED")

    mid = seqs[len(seqs) // 2]
    rest = [ev.sequence for ev in stub.WatchJob(pb.WatchJobRequest(job_id=sub.job_id, from_sequence=mid), timeout=30)]
    check(rest == [s for s in seqs if s > mid], f"watch resumed after sequence {mid} sends only the later events")

    listed = stub.ListJobs(pb.ListJobsRequest(state=pb.SUCCEEDED, page_size=10), timeout=10)
    check(any(j.id == sub.job_id for j in listed.jobs), "list (state SUCCEEDED) contains the job")

    data = b"".join(c.data for c in stub.StreamLogs(pb.StreamLogsRequest(job_id=sub.job_id, rank=1), timeout=30))
    check(b"rank 1" in data, f"logs of rank 1 ({len(data)} bytes)")

    try:
        stub.GetJob(pb.GetJobRequest(job_id="job-999999"), timeout=10)
        check(False, "unknown job is NOT_FOUND")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown job is NOT_FOUND ({e.code()})")

    return check.exit_status()


if __name__ == "__main__":
    sys.exit(main())
