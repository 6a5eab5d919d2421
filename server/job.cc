#include "server/job.h"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace vicreg::server {

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "QUEUED";
    case JobState::kStarting: return "STARTING";
    case JobState::kRunning: return "RUNNING";
    case JobState::kRestarting: return "RESTARTING";
    case JobState::kSucceeded: return "SUCCEEDED";
    case JobState::kFailed: return "FAILED";
    case JobState::kCancelled: return "CANCELLED";
    default: return "UNSPECIFIED";
  }
}

std::optional<JobState> ParseJobState(const std::string& name) {
  std::string up = name;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  for (int i = 1; i <= 7; ++i) {
    auto s = static_cast<JobState>(i);
    if (up == JobStateName(s)) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }

bool IsActive(JobState s) { return s == JobState::kStarting || s == JobState::kRunning || s == JobState::kRestarting; }

const char* RestartReasonName(RestartReason r) {
  switch (r) {
    case RestartReason::kRankExit: return "rank_exit";
    case RestartReason::kNoProgress: return "no_progress";
    case RestartReason::kLaunchFailure: return "launch_failure";
    case RestartReason::kCoordinatorRestart: return "coordinator_restart";
    default: return "";
  }
}

RestartReason ParseRestartReason(const std::string& name) {
  for (RestartReason r : {RestartReason::kRankExit, RestartReason::kNoProgress, RestartReason::kLaunchFailure,
                          RestartReason::kCoordinatorRestart}) {
    if (name == RestartReasonName(r)) return r;
  }
  return RestartReason::kNone;
}

const char* AttemptPhaseLabel(AttemptPhase p) {
  switch (p) {
    case AttemptPhase::kLaunching: return "launching";
    case AttemptPhase::kQueued: return "queued";
    case AttemptPhase::kRunning: return "running";
    case AttemptPhase::kEnded: return "ended";
    default: return "none";
  }
}

const char* EvalStateName(EvalState s) {
  switch (s) {
    case EvalState::kPending: return "PENDING";
    case EvalState::kRunning: return "RUNNING";
    case EvalState::kSucceeded: return "SUCCEEDED";
    case EvalState::kFailed: return "FAILED";
    default: return "UNSPECIFIED";
  }
}

double NowUnix() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace vicreg::server
