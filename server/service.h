// The vicreg.v1.Coordinator gRPC service: a thin layer converting proto <-> domain, checking the
// bearer token, mapping ServiceError codes to gRPC status codes and counting RPCs.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/job_manager.h"
#include "server/store.h"
#include "vicreg/v1/coordinator.grpc.pb.h"

namespace vicreg::metrics {
class CoordinatorMetrics;
}

namespace vicreg::server {

struct ServiceOptions {
  std::string token;  // "" = no authentication (only allowed on loopback)
  int default_page_size = 100;
  int max_page_size = 1000;
  int log_chunk_bytes = 64 * 1024;
  double log_poll_interval_s = 0.25;
  int max_streams = 256;            // concurrent WatchJob + StreamLogs calls (more: RESOURCE_EXHAUSTED)
  int max_streams_per_client = 32;  // ... from one client address (ServerContext::peer without the port)
  std::string runs_root;            // <state_dir>/runs: the only place run dirs are read from
  std::string export_binary;        // vicreg_eval for ExportEncoder ("" = exports refused)
  double export_timeout_s = 600;
  int export_chunk_bytes = 1 << 20;
};

// Counts the open streams, in total and per client; a stream over either limit is refused.
// Thread-safe.
class StreamLimiter {
 public:
  StreamLimiter(int max_total, int max_per_client) : max_total_(max_total), max_per_client_(max_per_client) {}
  class Slot {
   public:
    Slot(StreamLimiter* owner, std::string client) : owner_(owner), client_(std::move(client)) {}
    ~Slot() { owner_->Release(client_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    StreamLimiter* owner_;
    std::string client_;
  };
  // Throws ServiceError(kResourceExhausted) naming the limit that was reached.
  std::unique_ptr<Slot> Acquire(const std::string& client);
  int open() const;
  // "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1", "ipv6:[::1]:5555" -> "ipv6:[::1]", "unix:/p" unchanged.
  static std::string ClientOf(const std::string& peer);

 private:
  void Release(const std::string& client);
  const int max_total_, max_per_client_;
  mutable std::mutex mu_;
  int total_ = 0;
  std::map<std::string, int> per_client_;
};

class CoordinatorService final : public vicreg::v1::Coordinator::Service {
 public:
  CoordinatorService(ServiceOptions options, JobStore& store, JobManager& manager,
                     metrics::CoordinatorMetrics* metrics);

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                         v1::SubmitJobResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req, v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                          grpc::ServerWriter<v1::LogChunk>* writer) override;
  grpc::Status ListEvals(grpc::ServerContext* ctx, const v1::ListEvalsRequest* req,
                         v1::ListEvalsResponse* resp) override;
  grpc::Status GetEval(grpc::ServerContext* ctx, const v1::GetEvalRequest* req, v1::EvalTask* resp) override;
  grpc::Status ListCheckpoints(grpc::ServerContext* ctx, const v1::ListCheckpointsRequest* req,
                               v1::ListCheckpointsResponse* resp) override;
  grpc::Status ExportEncoder(grpc::ServerContext* ctx, const v1::ExportEncoderRequest* req,
                             grpc::ServerWriter<v1::ExportChunk>* writer) override;

  // Page tokens: opaque to clients; encode the state filter and the last seq of the page.
  static std::string EncodePageToken(JobState filter, int64_t before_seq);
  // Throws ServiceError(kInvalidArgument) for a token that was not issued for this filter.
  static int64_t DecodePageToken(const std::string& token, JobState filter);

 private:
  template <typename F>
  grpc::Status Guard(const char* method, grpc::ServerContext* ctx, F&& body);
  void Authorize(grpc::ServerContext* ctx) const;
  JobRecord RequireJob(const std::string& id, bool with_spec);
  // The job's run dir, refused unless it is <runs_root>/<id> (a stored path never leads elsewhere).
  std::string RunDirOf(const JobRecord& job) const;

  ServiceOptions options_;
  StreamLimiter streams_;
  JobStore& store_;
  JobManager& manager_;
  metrics::CoordinatorMetrics* metrics_;
};

// Constant-time comparison (time depends only on the expected token's length).
bool TokenEquals(const std::string& given, const std::string& expected);
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace vicreg::server
