#include "server/failure.h"

#include <signal.h>

#include <vector>

#include "server/process.h"

namespace vicreg::server {

bool AttemptSucceeded(const AttemptStatus& st, const std::optional<contract::RunResult>& result) {
  return st.phase == AttemptStatus::Phase::kExited && st.exit_code == kExitOk && st.signal == 0 &&
         !(result && result->status == contract::RunStatus::kFailed);
}

bool RankRejectedInput(const contract::RunPaths& run, int attempt) {
  for (const auto& r : contract::ReadRankExits(run, attempt))
    if (contract::IsInvalidInputExit(r.exit_code)) return true;
  return false;
}

namespace {

// Ended by SIGTERM (or exited 128+15, as a shell does for its child): stopped by someone else.
bool Terminated(const contract::ExitRecord& r) { return r.signal == SIGTERM || r.exit_code == 128 + SIGTERM; }
// Ended by SIGTERM or SIGKILL: perhaps by the launcher (srun, mpirun), perhaps by the kernel.
bool Signalled(const contract::ExitRecord& r) {
  return Terminated(r) || r.signal == SIGKILL || r.exit_code == 128 + SIGKILL;
}

// The error lines of the launcher's output since its last "=== vicreg: ..." banner (this launch),
// at most 3, joined with "; ".
std::string LauncherErrors(const std::string& launcher_log) {
  const std::string tail = contract::TailLines(launcher_log, 60, 16384);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < tail.size()) {
    size_t nl = tail.find('\n', pos);
    if (nl == std::string::npos) nl = tail.size();
    std::string line = tail.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("=== vicreg: ", 0) == 0) {
      lines.clear();
      continue;
    }
    if (line.find("error") != std::string::npos || line.find("ERROR") != std::string::npos) lines.push_back(line);
  }
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 3; ++i) out += (i ? "; " : "") + lines[i].substr(0, 240);
  return out;
}

}  // namespace

std::string DescribeFailure(const contract::RunPaths& d, int attempt, const AttemptStatus& st) {
  std::vector<contract::ExitRecord> ranks = contract::ReadRankExits(d, attempt);
  auto failed = [](const contract::ExitRecord& r) { return r.exit_code != kExitOk || r.signal != 0; };
  const contract::ExitRecord* first = nullptr;
  for (const auto& r : ranks) {
    if (failed(r) && !Terminated(r)) {
      first = &r;
      break;
    }
  }
  if (!first) {
    for (const auto& r : ranks)
      if (failed(r)) {
        first = &r;
        break;
      }
  }
  std::string cause;
  int log_rank = -1;
  if (first) {
    cause =
        "rank " + std::to_string(first->rank) +
        (first->signal ? " killed by signal " + std::to_string(first->signal) + " (" + SignalName(first->signal) + ")"
                       : " exited with code " + std::to_string(first->exit_code));
    log_rank = first->rank;
  } else if (st.phase == AttemptStatus::Phase::kExited) {
    cause = st.signal           ? "launcher killed by " + SignalName(st.signal)
            : st.exit_code >= 0 ? "launcher exited with code " + std::to_string(st.exit_code)
                                : std::string("launcher ended without an exit status");
  } else {
    cause = "attempt lost: " + st.detail;
  }
  if (!st.detail.empty() && st.phase == AttemptStatus::Phase::kExited) cause += " (" + st.detail + ")";
  const auto res = contract::ReadResult(d);
  const bool signalled = !first || Signalled(*first) ||
                         (res && res->status == contract::RunStatus::kFailed &&
                          res->reason.rfind("terminated by SIG", 0) == 0);  // a worker that handled it
  if (signalled && st.phase == AttemptStatus::Phase::kExited) {
    // The ranks were stopped, perhaps by the launcher (srun, mpirun): its error lines say why
    // (e.g. "srun: error: Node failure on node2").
    const std::string why = LauncherErrors(d.launcher_log());
    if (!why.empty()) cause += "; launcher: " + why;
  }
  if (res && res->status == contract::RunStatus::kFailed && !res->reason.empty()) {
    cause += "; worker: " + res->reason;
  }
  const std::string log_path = log_rank >= 0 ? d.rank_output(log_rank) : d.launcher_log();
  const std::string tail = contract::TailLines(log_path, 8, 4096);
  if (!tail.empty()) {
    cause += "\nlast lines of logs/" + log_path.substr(log_path.rfind('/') + 1) + ":\n" + tail;
  }
  return cause;
}

}  // namespace vicreg::server
