// gRPC request messages into the service handlers (server/service.cc), in process: one
// JobStore (SQLite in a scratch folder) + JobManager (launcher none: nothing is started) +
// CoordinatorService for the whole run. Each input is a sequence of calls: one byte picks the
// unary RPC, then the request is built field by field from the input through protobuf reflection
// (structured random messages: Debian has no libprotobuf-mutator), with some string fields drawn
// from plausible values (job ids of submitted jobs, a valid job file) so the handlers get past
// their first checks. Promises checked: no handler fails with INTERNAL or UNKNOWN (bad input is
// INVALID_ARGUMENT / NOT_FOUND / ...), and nothing crashes. The streaming RPCs (WatchJob,
// StreamLogs) need a live call and are covered by tests/server/coordinator_test.cc instead.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "server/eval_runner.h"
#include "server/job_manager.h"
#include "server/launcher.h"
#include "server/scheduler.h"
#include "server/service.h"
#include "server/store.h"
#include "tests/fuzz/fuzz_util.h"

namespace fz = vicreg::fuzz;
namespace srv = vicreg::server;
namespace v1 = vicreg::v1;
namespace pb = google::protobuf;

namespace {

const char* kValidJob = R"(name: fuzz
resources: {ranks: 1, device: cpu}
data: {dataset: fashion_mnist, data_dir: /usr/share/datasets/fashion-mnist, limit: 64}
model: {backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}
train: {batch_size: 8, num_epochs: 1, warmup_epochs: 0}
)";

struct Service {
  std::unique_ptr<srv::JobStore> store;
  std::unique_ptr<srv::Launcher> launcher;  // "none": starts nothing
  std::unique_ptr<srv::EvalRunner> evals;
  std::unique_ptr<srv::JobManager> manager;
  std::unique_ptr<srv::CoordinatorService> service;
  std::vector<std::string> job_ids{"job-000001"};
};

Service& Get() {
  static Service* s = [] {
    auto* s = new Service;
    const std::string dir = fz::ScratchDir();
    srv::JobStore::Options so;
    so.path = dir + "/coordinator.db";
    so.runs_root = dir + "/runs";
    so.checkpoint_interval_s = 0;
    s->store = std::make_unique<srv::JobStore>(so);
    srv::LauncherOptions lo;
    lo.kind = "none";
    s->launcher = srv::MakeLauncher(lo);
    srv::EvalRunnerOptions eo;  // eval_binary "": scheduled evaluation disabled
    s->evals = std::make_unique<srv::EvalRunner>(eo, *s->store, *s->launcher, nullptr,
                                                 [](const std::string&, const std::string&) {});
    srv::JobManagerOptions mo;
    mo.runs_root = dir + "/runs";
    mo.workdir = dir;
    mo.launch_enabled = false;
    mo.max_ranks_per_job = 4;
    srv::SchedulerOptions sched;
    sched.slots = {0, 1};
    s->manager =
        std::make_unique<srv::JobManager>(mo, *s->store, srv::Scheduler(sched), *s->launcher, nullptr, s->evals.get());
    srv::ServiceOptions svc;
    svc.max_page_size = 50;
    s->service = std::make_unique<srv::CoordinatorService>(svc, *s->store, *s->manager, nullptr);
    return s;
  }();
  return *s;
}

std::string FuzzString(fz::Bytes& in, const Service& s) {
  switch (in.U8() % 6) {
    case 0: return std::string(in.Take(in.U8()));
    case 1: return s.job_ids[in.U8() % s.job_ids.size()];
    case 2: return kValidJob;
    case 3: return std::string(kValidJob) + std::string(in.Take(in.U8()));
    case 4: return "job-" + std::string(in.Take(in.U8() % 12));
    default: return std::string(in.Chunk());
  }
}

// Fills `m` field by field: one byte per field decides whether (and how often) it is set.
void Fill(pb::Message* m, fz::Bytes& in, const Service& s, int depth = 0) {
  const pb::Descriptor* d = m->GetDescriptor();
  const pb::Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count() && !in.empty(); ++i) {
    const pb::FieldDescriptor* f = d->field(i);
    uint8_t how = in.U8();
    if (how % 3 == 0) continue;
    int count = f->is_repeated() ? how % 5 : 1;
    for (int k = 0; k < count; ++k) {
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_STRING: {
          std::string v = FuzzString(in, s);
          f->is_repeated() ? r->AddString(m, f, v) : r->SetString(m, f, v);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_INT32: {
          int32_t v = static_cast<int32_t>(in.U32());
          if (how & 8) v %= 8;
          f->is_repeated() ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_INT64: {
          int64_t v = static_cast<int64_t>(in.U64());
          if (how & 8) v %= 64;
          f->is_repeated() ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, in.U32()); break;
        case pb::FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, in.U64()); break;
        case pb::FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, in.U8() & 1); break;
        case pb::FieldDescriptor::CPPTYPE_DOUBLE: {
          uint64_t bits = in.U64();
          double v;
          std::memcpy(&v, &bits, sizeof v);
          r->SetDouble(m, f, v);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, static_cast<float>(in.U16())); break;
        case pb::FieldDescriptor::CPPTYPE_ENUM: {
          int v = static_cast<int8_t>(in.U8());  // also values the enum does not define
          f->is_repeated() ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
          break;
        }
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 3) Fill(f->is_repeated() ? r->AddMessage(m, f) : r->MutableMessage(m, f), in, s, depth + 1);
          break;
      }
    }
  }
}

void Check(const char* rpc, const grpc::Status& st, const pb::Message& req) {
  if (st.error_code() == grpc::StatusCode::INTERNAL || st.error_code() == grpc::StatusCode::UNKNOWN)
    VICREG_FUZZ_FINDING(std::string(rpc) + " answered " + srv::GrpcCodeName(st.error_code()) + ": " +
                        st.error_message() + "\nrequest: " + req.ShortDebugString().substr(0, 2000));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Service& s = Get();
  fz::Bytes in(data, size);
  for (int call = 0; call < 8 && !in.empty(); ++call) {
    grpc::ServerContext ctx;
    switch (in.U8() % 6) {
      case 0: {
        v1::SubmitJobRequest req;
        v1::SubmitJobResponse resp;
        Fill(&req, in, s);
        grpc::Status st = s.service->SubmitJob(&ctx, &req, &resp);
        Check("SubmitJob", st, req);
        if (st.ok() && s.job_ids.size() < 64) s.job_ids.push_back(resp.job_id());
        break;
      }
      case 1: {
        v1::GetJobRequest req;
        v1::Job resp;
        Fill(&req, in, s);
        Check("GetJob", s.service->GetJob(&ctx, &req, &resp), req);
        break;
      }
      case 2: {
        v1::ListJobsRequest req;
        v1::ListJobsResponse resp;
        Fill(&req, in, s);
        Check("ListJobs", s.service->ListJobs(&ctx, &req, &resp), req);
        break;
      }
      case 3: {
        v1::CancelJobRequest req;
        v1::Job resp;
        Fill(&req, in, s);
        Check("CancelJob", s.service->CancelJob(&ctx, &req, &resp), req);
        break;
      }
      case 4: {
        v1::ListEvalsRequest req;
        v1::ListEvalsResponse resp;
        Fill(&req, in, s);
        Check("ListEvals", s.service->ListEvals(&ctx, &req, &resp), req);
        break;
      }
      default: {
        v1::GetEvalRequest req;
        v1::EvalTask resp;
        Fill(&req, in, s);
        Check("GetEval", s.service->GetEval(&ctx, &req, &resp), req);
        break;
      }
    }
  }
  return 0;
}
