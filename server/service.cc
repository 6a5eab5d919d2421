#include "server/service.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include "common/fs.h"
#include "common/metrics.h"
#include "common/run_contract.h"
#include "common/sha256.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/checkpoint_files.h"
#include "server/service_error.h"

namespace vicreg::server {
namespace {

// The domain enums are stored and sent by number: they must stay equal to the proto's.
static_assert(static_cast<int>(AttemptPhase::kNone) == v1::ATTEMPT_PHASE_UNSPECIFIED);
static_assert(static_cast<int>(AttemptPhase::kLaunching) == v1::ATTEMPT_LAUNCHING);
static_assert(static_cast<int>(AttemptPhase::kQueued) == v1::ATTEMPT_QUEUED);
static_assert(static_cast<int>(AttemptPhase::kRunning) == v1::ATTEMPT_RUNNING);
static_assert(static_cast<int>(AttemptPhase::kEnded) == v1::ATTEMPT_ENDED);
static_assert(static_cast<int>(JobState::kCancelled) == v1::CANCELLED);

// Seconds since the epoch as a Timestamp (callers leave the field unset for 0 = never: calling
// mutable_x() alone would set it).
void SetTime(double unix_s, google::protobuf::Timestamp* out) {
  double whole = std::floor(unix_s);
  out->set_seconds(static_cast<int64_t>(whole));
  out->set_nanos(std::min(999999999, static_cast<int>(std::lround((unix_s - whole) * 1e9))));
}

// The deprecated *_unix doubles are still filled for old clients (the proto marks them deprecated).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

void ToProto(const JobProgress& p, v1::Progress* out) {
  out->set_step(p.step);
  out->set_total_steps(p.total_steps);
  out->set_epoch(p.epoch);
  out->set_num_epochs(p.num_epochs);
  out->set_loss(p.loss);
  out->set_images_per_s(p.images_per_s);
  out->set_steps_per_s(p.steps_per_s);
  out->set_eta_seconds(p.eta_seconds);
  out->set_updated_unix(p.updated_unix);
  if (p.updated_unix > 0) SetTime(p.updated_unix, out->mutable_updated_time());
}

void ToProto(const JobRecord& j, v1::Job* out) {
  out->set_id(j.id);
  out->set_name(j.name);
  out->set_state(static_cast<v1::JobState>(j.state));
  out->set_priority(j.priority);
  out->set_ranks(j.ranks);
  out->set_device(j.device);
  out->set_attempt(j.attempt);
  out->set_restarts(j.restarts);
  out->set_max_restarts(j.max_restarts);
  out->set_created_unix(j.created_unix);
  out->set_started_unix(j.started_unix);
  out->set_finished_unix(j.finished_unix);
  out->set_pending_reason(j.pending_reason);
  out->set_last_error(j.last_error);
  ToProto(j.progress, out->mutable_progress());
  out->set_run_dir(j.run_dir);
  out->set_placement(j.placement);
  out->set_client_request_id(j.client_request_id);
  out->set_spec_yaml(j.spec_yaml);
  out->set_last_sequence(j.last_sequence);
  out->set_result_reason(j.result_reason);
  out->set_attempt_phase(static_cast<v1::AttemptPhase>(j.attempt_phase));
  out->set_queue_state(j.queue_state);
  out->set_queue_reason(j.queue_reason);
  out->set_queued_since_unix(j.queued_since_unix);
  if (j.created_unix > 0) SetTime(j.created_unix, out->mutable_created_time());
  if (j.started_unix > 0) SetTime(j.started_unix, out->mutable_started_time());
  if (j.finished_unix > 0) SetTime(j.finished_unix, out->mutable_finished_time());
  if (j.queued_since_unix > 0) SetTime(j.queued_since_unix, out->mutable_queued_since_time());
}

void ToProto(const AttemptRecord& a, v1::Attempt* out) {
  out->set_number(a.number);
  out->set_placement(a.placement);
  out->set_launcher(a.launcher);
  out->set_handle(a.handle);
  out->set_started_unix(a.started_unix);
  out->set_ended_unix(a.ended_unix);
  out->set_exit_code(a.exit_code);
  out->set_cause(a.cause);
  out->set_restart_reason(RestartReasonName(a.restart_reason));
  out->set_start_step(a.start_step);
  out->set_phase(static_cast<v1::AttemptPhase>(a.phase));
  out->set_queue_state(a.queue_state);
  out->set_queue_reason(a.queue_reason);
  out->set_queued_unix(a.queued_unix);
  out->set_running_unix(a.running_unix);
  if (a.started_unix > 0) SetTime(a.started_unix, out->mutable_started_time());
  if (a.ended_unix > 0) SetTime(a.ended_unix, out->mutable_ended_time());
  if (a.queued_unix > 0) SetTime(a.queued_unix, out->mutable_queued_time());
  if (a.running_unix > 0) SetTime(a.running_unix, out->mutable_running_time());
}

void ToProto(const EventRecord& e, v1::JobEvent* out) {
  out->set_sequence(e.sequence);
  out->set_job_id(e.job_id);
  out->set_time_unix(e.time_unix);
  out->set_kind(static_cast<v1::JobEvent::Kind>(e.kind));
  out->set_state(static_cast<v1::JobState>(e.state));
  out->set_message(e.message);
  ToProto(e.progress, out->mutable_progress());
  out->set_attempt(e.attempt);
  if (e.time_unix > 0) SetTime(e.time_unix, out->mutable_time());
}

void ToProto(const EvalTaskRecord& t, v1::EvalTask* out) {
  out->set_job_id(t.job_id);
  out->set_epoch(t.epoch);
  out->set_dataset(t.dataset);
  out->set_state(static_cast<v1::EvalTask::State>(t.state));
  out->set_attempts(t.attempts);
  out->set_error(t.error);
  out->set_updated_unix(t.updated_unix);
  if (t.updated_unix > 0) SetTime(t.updated_unix, out->mutable_updated_time());
  out->set_output_path(t.output_path);
  if (t.state == EvalState::kRunning) out->set_handle(t.handle);
  for (const auto& r : t.rows) {
    v1::EvalRow* row = out->add_rows();
    row->set_epoch(r.epoch);
    row->set_dataset(r.dataset);
    row->set_probe(r.probe);
    row->set_model(r.model);
    row->set_top1(r.top1);
    row->set_top5(r.top5);
  }
}

#pragma GCC diagnostic pop

// The gRPC status of a domain error: the human text as the message, and as the binary details a
// google.rpc.Status (same code and message) carrying a google.rpc.BadRequest with one field
// violation per named field (the standard error model: clients in any language read the fields).
grpc::Status ToStatus(grpc::StatusCode code, const std::string& message, const std::vector<FieldViolation>& fields) {
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(code));
  details.set_message(message);
  if (!fields.empty()) {
    google::rpc::BadRequest bad;
    for (const auto& f : fields) {
      auto* v = bad.add_field_violations();
      v->set_field(f.field);
      v->set_description(f.description);
    }
    details.add_details()->PackFrom(bad);
  }
  return grpc::Status(code, message, details.SerializeAsString());
}

grpc::StatusCode ToGrpc(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case ErrorCode::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorCode::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
    case ErrorCode::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

// job ids are "job-NNNNNN": anything else is rejected before it reaches a path or the store.
void CheckJobId(const std::string& id) {
  if (id.empty()) throw ServiceError(ErrorCode::kInvalidArgument, "job_id is empty", {{"job_id", "is required"}});
  if (!ValidJobId(id)) {
    throw ServiceError(ErrorCode::kInvalidArgument,
                       "job_id '" + id.substr(0, 100) + "' is not a job id (expected job-NNNNNN, e.g. job-000042)",
                       {{"job_id", "invalid syntax"}});
  }
}

std::string B64Encode(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  // Unsigned, keeping only the bits not yet emitted: a signed int overflowed (UB) after 4 bytes.
  uint32_t val = 0;
  int bits = -6;
  for (unsigned char c : in) {
    val = ((val << 8) | c) & 0xFFFFu;
    bits += 8;
    while (bits >= 0) {
      out.push_back(k[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(k[((val << 8) >> (bits + 8)) & 0x3F]);
  return out;
}

bool B64Decode(const std::string& in, std::string* out) {
  uint32_t val = 0;
  int bits = -8;
  for (unsigned char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '-')
      d = 62;
    else if (c == '_')
      d = 63;
    else
      return false;
    val = ((val << 6) | static_cast<uint32_t>(d)) & 0xFFFFu;
    bits += 6;
    if (bits >= 0) {
      out->push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return true;
}

}  // namespace

bool TokenEquals(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() != expected.size() ? 1 : 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0 && !expected.empty();
}

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

CoordinatorService::CoordinatorService(ServiceOptions options, JobStore& store, JobManager& manager,
                                       metrics::CoordinatorMetrics* metrics)
    : options_(std::move(options)),
      streams_(options_.max_streams, options_.max_streams_per_client),
      store_(store),
      manager_(manager),
      metrics_(metrics) {}

std::unique_ptr<StreamLimiter::Slot> StreamLimiter::Acquire(const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (total_ >= max_total_) {
    throw ServiceError(ErrorCode::kResourceExhausted,
                       "too many open streams: this coordinator serves at most " + std::to_string(max_total_) +
                           " WatchJob/StreamLogs streams at once (--max-streams); retry later");
  }
  int& mine = per_client_[client];
  if (mine >= max_per_client_) {
    if (mine == 0) per_client_.erase(client);
    throw ServiceError(ErrorCode::kResourceExhausted,
                       "too many open streams from " + client.substr(0, 100) + ": at most " +
                           std::to_string(max_per_client_) +
                           " WatchJob/StreamLogs streams per client address (--max-streams-per-client); close one "
                           "or retry later");
  }
  ++mine;
  ++total_;
  return std::make_unique<Slot>(this, client);
}

void StreamLimiter::Release(const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  --total_;
  auto it = per_client_.find(client);
  if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
}

int StreamLimiter::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

std::string StreamLimiter::ClientOf(const std::string& peer) {
  if (peer.rfind("ipv4:", 0) == 0 || peer.rfind("ipv6:", 0) == 0) {
    auto colon = peer.rfind(':');
    auto bracket = peer.rfind(']');
    if (colon != std::string::npos && colon > 4 && (bracket == std::string::npos || colon > bracket))
      return peer.substr(0, colon);
  }
  return peer;
}

void CoordinatorService::Authorize(grpc::ServerContext* ctx) const {
  if (options_.token.empty()) return;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    throw ServiceError(ErrorCode::kUnauthenticated,
                       "missing bearer token: this coordinator requires the metadata 'authorization: Bearer <token>' "
                       "(vicregctl --token-file FILE or VICREG_TOKEN)");
  }
  std::string value(it->second.data(), it->second.size());
  const std::string prefix = "Bearer ";
  if (value.size() < prefix.size() || !std::equal(prefix.begin(), prefix.end(), value.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    throw ServiceError(ErrorCode::kUnauthenticated, "malformed authorization metadata: expected 'Bearer <token>'");
  }
  if (!TokenEquals(value.substr(prefix.size()), options_.token)) {
    throw ServiceError(ErrorCode::kUnauthenticated, "invalid bearer token");
  }
}

template <typename F>
grpc::Status CoordinatorService::Guard(const char* method, grpc::ServerContext* ctx, F&& body) {
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status status;
  try {
    Authorize(ctx);
    status = body();
  } catch (const ServiceError& e) {
    status = ToStatus(ToGrpc(e.code()), e.what(), e.fields());
  } catch (const std::exception& e) {
    status = grpc::Status(grpc::StatusCode::INTERNAL, std::string("internal error: ") + e.what());
  }
  if (metrics_) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    metrics_->OnRpc(method, GrpcCodeName(status.error_code()), s);
  }
  return status;
}

JobRecord CoordinatorService::RequireJob(const std::string& id, bool with_spec) {
  CheckJobId(id);
  auto rec = store_.GetJob(id, with_spec);
  if (!rec) throw ServiceError(ErrorCode::kNotFound, "job " + id + " not found");
  return *rec;
}

std::string CoordinatorService::EncodePageToken(JobState filter, int64_t before_seq) {
  return B64Encode("v1:" + std::to_string(static_cast<int>(filter)) + ":" + std::to_string(before_seq));
}

int64_t CoordinatorService::DecodePageToken(const std::string& token, JobState filter) {
  auto bad = [&]() {
    return ServiceError(
        ErrorCode::kInvalidArgument,
        "page_token '" + token.substr(0, 64) +
            "' was not returned by ListJobs (pass next_page_token unchanged, or \"\" for the first page)",
        {{"page_token", "invalid"}});
  };
  std::string text;
  if (token.size() > 64 || !B64Decode(token, &text)) throw bad();
  int state = -1;
  long long seq = -1;
  char tail = 0;
  if (std::sscanf(text.c_str(), "v1:%d:%lld%c", &state, &seq, &tail) != 2 || seq <= 0) throw bad();
  if (state != static_cast<int>(filter)) {
    throw ServiceError(ErrorCode::kInvalidArgument,
                       "page_token was issued for another state filter; keep the same filter while paging",
                       {{"page_token", "filter mismatch"}});
  }
  return seq;
}

grpc::Status CoordinatorService::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                                           v1::SubmitJobResponse* resp) {
  return Guard("SubmitJob", ctx, [&] {
    JobManager::SubmitRequest r;
    r.yaml = req->job_yaml();
    r.client_request_id = req->client_request_id();
    r.overrides.assign(req->overrides().begin(), req->overrides().end());
    if (req->dry_run()) {
      JobManager::DryRunResult dr = manager_.DryRun(r);
      resp->set_dry_run(true);
      resp->set_would_start(dr.would_start);
      resp->set_placement(dr.placement);
      resp->set_reason(dr.reason);
      resp->set_spec_yaml(dr.job.spec_yaml);
      resp->set_ranks(dr.job.ranks);
      resp->set_name(dr.job.name);
      return grpc::Status::OK;
    }
    auto res = manager_.Submit(r);
    resp->set_job_id(res.job.id);
    resp->set_duplicate(res.duplicate);
    resp->set_state(static_cast<v1::JobState>(res.job.state));
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::Job* resp) {
  return Guard("GetJob", ctx, [&] {
    JobRecord rec = RequireJob(req->job_id(), true);
    if (rec.state == JobState::kQueued) {
      if (std::string live = manager_.PendingReason(rec.id); !live.empty()) rec.pending_reason = live;
    }
    ToProto(rec, resp);
    for (const auto& a : store_.Attempts(rec.id)) ToProto(a, resp->add_attempts());
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                          v1::ListJobsResponse* resp) {
  return Guard("ListJobs", ctx, [&] {
    if (!v1::JobState_IsValid(req->state())) {
      throw ServiceError(ErrorCode::kInvalidArgument,
                         "state " + std::to_string(req->state()) + " is not a JobState (0..7)", {{"state", "invalid"}});
    }
    if (req->page_size() < 0) {
      throw ServiceError(ErrorCode::kInvalidArgument,
                         "page_size must be >= 0 (0 = default " + std::to_string(options_.default_page_size) +
                             "), got " + std::to_string(req->page_size()),
                         {{"page_size", "negative"}});
    }
    JobStore::ListQuery q;
    q.state = static_cast<JobState>(req->state());
    q.limit = req->page_size() == 0 ? options_.default_page_size : std::min(req->page_size(), options_.max_page_size);
    if (!req->page_token().empty()) q.before_seq = DecodePageToken(req->page_token(), q.state);
    JobStore::ListPage page = store_.ListJobs(q);
    for (auto& j : page.jobs) {
      if (j.state == JobState::kQueued) {
        if (std::string live = manager_.PendingReason(j.id); !live.empty()) j.pending_reason = live;
      }
      ToProto(j, resp->add_jobs());
    }
    if (page.more && !page.jobs.empty()) resp->set_next_page_token(EncodePageToken(q.state, page.jobs.back().seq));
    resp->set_total_size(page.total);
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::Job* resp) {
  return Guard("CancelJob", ctx, [&] {
    RequireJob(req->job_id(), false);
    JobRecord rec = manager_.Cancel(req->job_id(), req->reason());
    ToProto(rec, resp);
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                          grpc::ServerWriter<v1::JobEvent>* writer) {
  return Guard("WatchJob", ctx, [&]() -> grpc::Status {
    RequireJob(req->job_id(), false);
    if (req->from_sequence() < 0) {
      throw ServiceError(ErrorCode::kInvalidArgument, "from_sequence must be >= 0", {{"from_sequence", "negative"}});
    }
    auto slot = streams_.Acquire(StreamLimiter::ClientOf(ctx->peer()));
    int64_t seq = req->from_sequence();
    while (!ctx->IsCancelled()) {
      std::vector<EventRecord> events = store_.EventsAfter(req->job_id(), seq, 256);
      for (const auto& e : events) {
        v1::JobEvent ev;
        ToProto(e, &ev);
        if (!writer->Write(ev)) return grpc::Status::OK;  // the client went away
        seq = e.sequence;
      }
      if (!events.empty()) continue;
      auto job = store_.GetJob(req->job_id(), false);
      if (!job) return grpc::Status(grpc::StatusCode::NOT_FOUND, "job " + req->job_id() + " not found");
      if (IsTerminal(job->state) && job->last_sequence <= seq) return grpc::Status::OK;
      manager_.WaitForEvents(req->job_id(), seq, std::chrono::milliseconds(1000));
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the watch");
  });
}

grpc::Status CoordinatorService::StreamLogs(grpc::ServerContext* ctx, const v1::StreamLogsRequest* req,
                                            grpc::ServerWriter<v1::LogChunk>* writer) {
  return Guard("StreamLogs", ctx, [&]() -> grpc::Status {
    JobRecord job = RequireJob(req->job_id(), false);
    if (req->offset() < 0) {
      throw ServiceError(ErrorCode::kInvalidArgument, "offset must be >= 0, got " + std::to_string(req->offset()),
                         {{"offset", "negative"}});
    }
    if (req->has_rank() && (req->rank() < 0 || req->rank() >= job.ranks)) {
      throw ServiceError(ErrorCode::kInvalidArgument,
                         "rank " + std::to_string(req->rank()) + " is not a rank of job " + job.id + " (0.." +
                             std::to_string(job.ranks - 1) + ")",
                         {{"rank", "out of range"}});
    }
    auto slot = streams_.Acquire(StreamLimiter::ClientOf(ctx->peer()));
    const contract::RunPaths d(job.run_dir);
    struct Source {
      int rank;
      std::string path;
      int64_t offset;
    };
    std::vector<Source> sources;
    if (req->include_launcher()) sources.push_back({-1, d.launcher_log(), req->offset()});
    for (int r = 0; r < job.ranks; ++r) {
      if (req->has_rank() && r != req->rank()) continue;
      sources.push_back({r, d.rank_output(r), req->offset()});
    }
    std::vector<char> buf(static_cast<size_t>(options_.log_chunk_bytes));
    bool final_pass = false;
    while (!ctx->IsCancelled()) {
      bool ended = true;
      if (req->follow() && !final_pass) {
        auto now_job = store_.GetJob(job.id, false);
        ended = !now_job || IsTerminal(now_job->state);
      }
      bool sent_any = false;
      for (Source& s : sources) {
        // Read as much as is there now, in chunks of whole lines.
        while (true) {
          std::ifstream f(s.path, std::ios::binary);
          if (!f) break;
          f.seekg(s.offset);
          if (!f) break;
          f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
          std::streamsize n = f.gcount();
          if (n <= 0) break;
          std::streamsize take = n;
          if (!ended) {
            // While the job runs, hold back a partial last line (unless the chunk is full).
            std::streamsize nl = n - 1;
            while (nl >= 0 && buf[static_cast<size_t>(nl)] != '\n') --nl;
            if (nl < 0 && n < static_cast<std::streamsize>(buf.size())) break;
            if (nl >= 0) take = nl + 1;
          }
          v1::LogChunk chunk;
          chunk.set_rank(s.rank);
          chunk.set_offset(s.offset);
          chunk.set_data(buf.data(), static_cast<size_t>(take));
          if (!writer->Write(chunk)) return grpc::Status::OK;
          s.offset += take;
          sent_any = true;
          if (take < static_cast<std::streamsize>(buf.size())) break;
        }
      }
      if (!req->follow() || final_pass) return grpc::Status::OK;
      if (ended) {
        final_pass = true;  // one more pass to flush what the last writes left
        continue;
      }
      if (!sent_any) {
        std::this_thread::sleep_for(std::chrono::duration<double>(options_.log_poll_interval_s));
      }
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the log stream");
  });
}

grpc::Status CoordinatorService::ListEvals(grpc::ServerContext* ctx, const v1::ListEvalsRequest* req,
                                           v1::ListEvalsResponse* resp) {
  return Guard("ListEvals", ctx, [&] {
    RequireJob(req->job_id(), false);
    for (const auto& t : store_.EvalTasks(req->job_id())) ToProto(t, resp->add_tasks());
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::GetEval(grpc::ServerContext* ctx, const v1::GetEvalRequest* req, v1::EvalTask* resp) {
  return Guard("GetEval", ctx, [&] {
    RequireJob(req->job_id(), false);
    auto t = store_.GetEvalTask(req->job_id(), req->epoch(), req->dataset());
    if (!t) {
      throw ServiceError(ErrorCode::kNotFound, "job " + req->job_id() + " has no evaluation of epoch " +
                                                   std::to_string(req->epoch()) + " on '" +
                                                   req->dataset().substr(0, 64) + "'");
    }
    ToProto(*t, resp);
    return grpc::Status::OK;
  });
}

std::string CoordinatorService::RunDirOf(const JobRecord& job) const {
  if (options_.runs_root.empty() || job.run_dir != options_.runs_root + "/" + job.id) {
    throw ServiceError(ErrorCode::kFailedPrecondition,
                       "job " + job.id + "'s run dir is not under this coordinator's runs root; its files are not served");
  }
  return job.run_dir;
}

grpc::Status CoordinatorService::ListCheckpoints(grpc::ServerContext* ctx, const v1::ListCheckpointsRequest* req,
                                                 v1::ListCheckpointsResponse* resp) {
  return Guard("ListCheckpoints", ctx, [&] {
    JobRecord job = RequireJob(req->job_id(), false);
    const contract::RunPaths d(RunDirOf(job));
    std::map<int64_t, std::vector<const EvalRowRecord*>> rows_by_epoch;
    const auto tasks = store_.EvalTasks(job.id);
    for (const auto& t : tasks)
      for (const auto& r : t.rows) rows_by_epoch[r.epoch].push_back(&r);
    for (const CheckpointFile& c : ListCheckpointFiles(d.checkpoints_dir())) {
      v1::Checkpoint* out = resp->add_checkpoints();
      out->set_file(c.file);
      out->set_kind(c.kind);
      out->set_epoch(c.epoch);
      out->set_global_step(c.global_step);
      out->set_size_bytes(c.bytes);
      if (c.created_unix > 0) SetTime(c.created_unix, out->mutable_created_time());
      out->set_latest(c.latest);
      if (c.kind != "epoch") continue;
      for (const EvalRowRecord* r : rows_by_epoch[c.epoch]) {
        v1::EvalRow* row = out->add_evals();
        row->set_epoch(r->epoch);
        row->set_dataset(r->dataset);
        row->set_probe(r->probe);
        row->set_model(r->model);
        row->set_top1(r->top1);
        row->set_top5(r->top5);
      }
    }
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::ExportEncoder(grpc::ServerContext* ctx, const v1::ExportEncoderRequest* req,
                                               grpc::ServerWriter<v1::ExportChunk>* writer) {
  return Guard("ExportEncoder", ctx, [&]() -> grpc::Status {
    JobRecord job = RequireJob(req->job_id(), false);
    if (req->epoch() < 1) {
      throw ServiceError(ErrorCode::kInvalidArgument,
                         "epoch must be >= 1 (an epoch with a checkpoint), got " + std::to_string(req->epoch()),
                         {{"epoch", "must be >= 1, got " + std::to_string(req->epoch())}});
    }
    const contract::RunPaths d(RunDirOf(job));
    const auto files = ListCheckpointFiles(d.checkpoints_dir());
    std::string file, epochs;
    for (const auto& c : files) {
      if (c.kind != "epoch") continue;
      epochs += (epochs.empty() ? "" : ", ") + std::to_string(c.epoch);
      if (c.epoch == req->epoch()) file = c.file;
    }
    if (file.empty()) {
      throw ServiceError(ErrorCode::kNotFound,
                         "job " + job.id + " has no checkpoint of epoch " + std::to_string(req->epoch()) +
                             (epochs.empty() ? " (it has no epoch checkpoint yet)" : " (epochs with one: " + epochs + ")"),
                         {{"epoch", "no checkpoint of epoch " + std::to_string(req->epoch())}});
    }
    if (options_.export_binary.empty()) {
      throw ServiceError(ErrorCode::kFailedPrecondition,
                         "this coordinator has no vicreg_eval to export with (start it with --eval-binary PATH)");
    }
    auto slot = streams_.Acquire(StreamLimiter::ClientOf(ctx->peer()));
    // A private file under the run dir, removed whatever happens.
    const std::string dir = d.root() + "/export";
    fs::MakeDirs(dir);
    std::string tmpl = dir + "/.encoder-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = ::mkstemp(name.data());
    if (fd < 0) throw ServiceError(ErrorCode::kInternal, "cannot create a temporary file in " + dir);
    ::close(fd);
    const std::string tmp(name.data());
    struct Remove {
      std::string path;
      ~Remove() { std::remove(path.c_str()); }
    } remove{tmp};
    try {
      ExportEncoderFile(options_.export_binary, d.checkpoints_dir() + "/" + file, tmp, options_.export_timeout_s);
    } catch (const std::runtime_error& e) {
      throw ServiceError(ErrorCode::kInternal, "export of " + job.id + " " + file + " failed: " + e.what());
    }
    std::ifstream in(tmp, std::ios::binary);
    if (!in) throw ServiceError(ErrorCode::kInternal, "cannot read the exported file " + tmp);
    Sha256 sha;
    std::vector<char> buf(static_cast<size_t>(std::max(1, options_.export_chunk_bytes)));
    int64_t offset = 0;
    while (!ctx->IsCancelled()) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize n = in.gcount();
      if (n <= 0) break;
      sha.Update(buf.data(), static_cast<size_t>(n));
      v1::ExportChunk chunk;
      chunk.set_offset(offset);
      chunk.set_data(buf.data(), static_cast<size_t>(n));
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      offset += n;
    }
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the export");
    v1::ExportChunk last;
    last.set_offset(offset);
    last.set_last(true);
    last.set_total_bytes(offset);
    last.set_sha256(sha.HexDigest());
    char stem[64];
    std::snprintf(stem, sizeof stem, "-epoch_%04d-encoder.safetensors", req->epoch());
    last.set_file_name(job.id + stem);
    writer->Write(last);
    return grpc::Status::OK;
  });
}

}  // namespace vicreg::server
