// The vicreg.v1.Coordinator gRPC service: a thin layer converting proto <-> domain, checking the
// bearer token, mapping ServiceError codes to gRPC status codes and counting RPCs.
#pragma once

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

  // Page tokens: opaque to clients; encode the state filter and the last seq of the page.
  static std::string EncodePageToken(JobState filter, int64_t before_seq);
  // Throws ServiceError(kInvalidArgument) for a token that was not issued for this filter.
  static int64_t DecodePageToken(const std::string& token, JobState filter);

 private:
  template <typename F>
  grpc::Status Guard(const char* method, grpc::ServerContext* ctx, F&& body);
  void Authorize(grpc::ServerContext* ctx) const;
  JobRecord RequireJob(const std::string& id, bool with_spec);

  ServiceOptions options_;
  JobStore& store_;
  JobManager& manager_;
  metrics::CoordinatorMetrics* metrics_;
};

// Constant-time comparison (time depends only on the expected token's length).
bool TokenEquals(const std::string& given, const std::string& expected);
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace vicreg::server
