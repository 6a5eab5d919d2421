#include "server/admission.h"

#include <cstdio>

#include "common/config_loader.h"
#include "common/errors.h"
#include "server/service_error.h"

namespace vicreg::server {

std::string SpecHash(const std::string& yaml, const std::vector<std::string>& overrides) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(yaml);
  for (const auto& o : overrides) mix(o);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool ValidClientRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == ':';
    if (!ok) return false;
  }
  return true;
}

bool ValidJobId(const std::string& id) {
  if (id.size() < 5 || id.size() > 24 || id.rfind("job-", 0) != 0) return false;
  return id.find_first_not_of("0123456789", 4) == std::string::npos;
}

Admitted Admit(const SubmitRequest& req, const AdmissionOptions& options, const Scheduler& scheduler) {
  if (req.yaml.size() > options.max_spec_bytes) {
    throw ServiceError(ErrorCode::kResourceExhausted, "job_yaml is " + std::to_string(req.yaml.size()) +
                                                          " bytes; this coordinator accepts at most " +
                                                          std::to_string(options.max_spec_bytes) + " bytes");
  }
  if (req.yaml.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ServiceError(ErrorCode::kInvalidArgument, "job_yaml is empty: send the text of a job file",
                       {{"job_yaml", "is empty"}});
  }
  if (!req.client_request_id.empty() && !ValidClientRequestId(req.client_request_id)) {
    throw ServiceError(ErrorCode::kInvalidArgument,
                       "client_request_id must be 1-128 characters from A-Z a-z 0-9 . _ : -, got '" +
                           req.client_request_id.substr(0, 200) + "'",
                       {{"client_request_id", "invalid syntax"}});
  }
  if (static_cast<int>(req.overrides.size()) > options.max_overrides) {
    throw ServiceError(ErrorCode::kResourceExhausted, "at most " + std::to_string(options.max_overrides) +
                                                          " overrides are accepted, got " +
                                                          std::to_string(req.overrides.size()));
  }
  config::JobConfig cfg;
  try {
    cfg = config::ParseJobYaml(req.yaml, "job_yaml", req.overrides);
  } catch (const ConfigError& e) {
    std::vector<FieldViolation> fields;
    std::string msg = "invalid job spec (" + std::to_string(e.items().size()) + " problem" +
                      (e.items().size() == 1 ? "" : "s") + "):";
    for (const auto& item : e.items()) {
      fields.push_back({item.field, item.message});
      msg += "\n  " + item.field + ": " + item.message;
    }
    throw ServiceError(ErrorCode::kInvalidArgument, msg, fields);
  } catch (const UserError& e) {
    throw ServiceError(ErrorCode::kInvalidArgument, std::string("invalid job spec: ") + e.what(),
                       {{"job_yaml", e.what()}});
  }
  if (cfg.resources.ranks > options.max_ranks_per_job) {
    std::string m = "must be <= " + std::to_string(options.max_ranks_per_job) +
                    " (this coordinator's max_ranks_per_job), got " + std::to_string(cfg.resources.ranks);
    throw ServiceError(ErrorCode::kInvalidArgument, "invalid job spec:\n  resources.ranks: " + m,
                       {{"resources.ranks", m}});
  }
  if (cfg.resources.device == "cuda" && scheduler.kind() == SlotKind::kCpu) {
    throw ServiceError(ErrorCode::kFailedPrecondition,
                       "resources.device: the job needs cuda but this coordinator schedules CPU slots "
                       "(start it with --gpus LIST); it can never be placed");
  }
  if (std::string why = scheduler.WhyNeverPlaceable(cfg.resources.ranks); !why.empty()) {
    throw ServiceError(ErrorCode::kFailedPrecondition, why);
  }

  Admitted out;
  JobRecord& rec = out.job;
  rec.name = cfg.name;
  rec.state = JobState::kQueued;
  rec.priority = cfg.priority;
  rec.ranks = cfg.resources.ranks;
  rec.device = cfg.resources.device;
  rec.max_restarts = cfg.max_restarts;
  rec.created_unix = NowUnix();
  rec.pending_reason = options.launch_enabled
                           ? "waiting for the scheduler"
                           : "not scheduled: this coordinator runs with --launcher none (benchmark mode)";
  rec.client_request_id = req.client_request_id;
  rec.spec_yaml = config::ToYaml(cfg);
  rec.spec_hash = SpecHash(req.yaml, req.overrides);
  EventRecord& first = out.first_event;
  first.time_unix = rec.created_unix;
  first.kind = EventKind::kState;
  first.state = JobState::kQueued;
  first.message = "submitted: " + std::to_string(rec.ranks) + (rec.ranks == 1 ? " rank" : " ranks") + ", priority " +
                  std::to_string(rec.priority);
  return out;
}

}  // namespace vicreg::server
