#!/usr/bin/python3
"""Reads the coordinator's error details the way any gRPC client does: google.rpc.Status from the
trailer grpc-status-details-bin, with google.rpc.BadRequest packed in its details. Python grpcio
(Debian python3-grpcio) with stubs generated here by protoc from proto/ (vicreg/v1 and the
google/rpc messages). Debian packages no grpcio-status, so rpc_status.from_call is spelled out
(status_from_call below does exactly what grpcio-status does).

  /usr/bin/python3 grpc_error_details_check.py --server HOST:PORT --source-dir REPO --gen-dir DIR

Exit 0 when every check passed; prints what failed otherwise.
"""
import argparse
import os
import sys

import grpc_py_util

GRPC_DETAILS_METADATA_KEY = "grpc-status-details-bin"


def generate(source_dir, gen_dir):
    proto = os.path.join(source_dir, "proto")
    grpc_py_util.generate(gen_dir, [(proto, p) for p in ("vicreg/v1/coordinator.proto", "google/rpc/status.proto",
                                                         "google/rpc/error_details.proto")])


def status_from_call(call):
    """grpc_status.rpc_status.from_call: the google.rpc.Status of a failed call, or None."""
    from google.rpc import status_pb2
    for key, value in call.trailing_metadata() or ():
        if key == GRPC_DETAILS_METADATA_KEY:
            st = status_pb2.Status.FromString(value)
            if call.code().value[0] != st.code:
                raise ValueError(f"code in the status proto ({st.code}) != the call's code ({call.code()})")
            if call.details() != st.message:
                raise ValueError(f"message in the status proto ({st.message!r}) != the call's ({call.details()!r})")
            return st
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--gen-dir", required=True)
    a = p.parse_args()
    generate(a.source_dir, a.gen_dir)

    import grpc
    from google.rpc import error_details_pb2
    from vicreg.v1 import coordinator_pb2 as pb
    from vicreg.v1 import coordinator_pb2_grpc as rpc

    check = grpc_py_util.Checks()

    def bad_request_of(fn):
        try:
            fn()
        except grpc.RpcError as e:
            st = status_from_call(e)
            if st is None:
                return e.code(), None, []
            fields = []
            for any_msg in st.details:
                if any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    br = error_details_pb2.BadRequest()
                    any_msg.Unpack(br)
                    fields += [(v.field, v.description) for v in br.field_violations]
            return e.code(), st, fields
        return grpc.StatusCode.OK, None, []

    stub = rpc.CoordinatorStub(grpc.insecure_channel(a.server))
    bad_yaml = "name: x\ntrain: {batch_size: -1}\ntrian: {epochs: 2}\n"
    code, st, fields = bad_request_of(lambda: stub.SubmitJob(pb.SubmitJobRequest(job_yaml=bad_yaml), timeout=10))
    check(code == grpc.StatusCode.INVALID_ARGUMENT, f"invalid spec is INVALID_ARGUMENT ({code})")
    check(st is not None and st.code == 3, "the trailer carries a google.rpc.Status with code 3")
    names = [f for f, _ in fields]
    print(f"     field violations: {fields}", flush=True)
    check("train.batch_size" in names, "BadRequest names train.batch_size")
    check("trian" in names, "BadRequest names the unknown key trian")
    desc = dict(fields)
    check("-1" in desc.get("train.batch_size", ""), "the description carries the bad value -1")
    check("train" in desc.get("trian", ""), "the unknown key's description suggests train")

    code, st, fields = bad_request_of(lambda: stub.SubmitJob(pb.SubmitJobRequest(job_yaml="name: x\n",
                                                                                 overrides=["train.lr=0.1"]),
                                                                timeout=10))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and any(f.startswith("train.lr") for f, _ in fields),
          f"a bad override is named ({fields})")

    code, st, fields = bad_request_of(lambda: stub.GetJob(pb.GetJobRequest(job_id="../etc"), timeout=10))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and [f for f, _ in fields] == ["job_id"],
          f"a bad job id names job_id ({fields})")

    code, st, fields = bad_request_of(lambda: stub.GetJob(pb.GetJobRequest(job_id="job-000404"), timeout=10))
    check(code == grpc.StatusCode.NOT_FOUND and st is not None and st.code == 5 and not fields,
          "NOT_FOUND carries a status without field violations")

    dry = stub.SubmitJob(pb.SubmitJobRequest(job_yaml="name: dry\n", dry_run=True), timeout=10)
    check(dry.dry_run and not dry.job_id and not dry.would_start and dry.reason.startswith("would queue: not scheduled"),
          f"dry run on a --launcher none coordinator: {dry.reason!r}")
    check(stub.ListJobs(pb.ListJobsRequest(), timeout=10).total_size == 0, "the dry run stored nothing")
    code, st, fields = bad_request_of(lambda: stub.SubmitJob(pb.SubmitJobRequest(job_yaml="name: a/b\n", dry_run=True),
                                                                timeout=10))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and [f for f, _ in fields] == ["name"],
          f"a dry run is validated like a submit ({fields})")

    ok = stub.SubmitJob(pb.SubmitJobRequest(job_yaml="name: ts\n"), timeout=10)
    job = stub.GetJob(pb.GetJobRequest(job_id=ok.job_id), timeout=10)
    created = job.created_time.seconds + job.created_time.nanos * 1e-9
    check(job.HasField("created_time") and abs(created - job.created_unix) < 1e-3,
          f"created_time (Timestamp) equals the deprecated created_unix ({created} vs {job.created_unix})")
    check(not job.HasField("finished_time") and job.finished_unix == 0,
          f"finished_time is unset while queued ({pb.JobState.Name(job.state)}, {job.finished_unix})")

    return check.exit_status()


if __name__ == "__main__":
    sys.exit(main())
