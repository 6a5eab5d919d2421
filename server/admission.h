// Admission of a submitted job (JobManager::Submit, gRPC threads): size and syntax limits, the
// strict job-file parse (every field problem reported), this coordinator's limits and whether the
// job can ever be placed; builds the QUEUED record and its first event. Stateless; nothing is stored
// here.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "server/job.h"
#include "server/scheduler.h"

namespace vicreg::server {

struct SubmitRequest {
  std::string yaml;
  std::string client_request_id;
  std::vector<std::string> overrides;
};

struct AdmissionOptions {
  size_t max_spec_bytes = 256 * 1024;  // job YAML text
  int max_ranks_per_job = 64;
  int max_overrides = 256;
  bool launch_enabled = true;  // false with --launcher none: the pending reason says so
};

struct Admitted {
  JobRecord job;  // state QUEUED, id and run dir still unassigned (the store assigns them)
  EventRecord first_event;
};

// Throws ServiceError: kInvalidArgument (with field violations), kFailedPrecondition (never
// placeable), kResourceExhausted (too large). `scheduler` is only asked constant questions
// (kind, capacity), which are safe from any thread.
Admitted Admit(const SubmitRequest& request, const AdmissionOptions& options, const Scheduler& scheduler);

// Stable 64-bit FNV-1a of the submitted text and overrides (idempotency check), hex.
std::string SpecHash(const std::string& yaml, const std::vector<std::string>& overrides);
// [A-Za-z0-9._:-]{1,128}
bool ValidClientRequestId(const std::string& id);
// "job-000042"
bool ValidJobId(const std::string& id);

}  // namespace vicreg::server
