// How an ended attempt is judged and explained, from what the launcher reports (AttemptStatus) and
// what the shims and the worker left in the run directory (common/run_contract.h: exit records,
// result.json, logs). Pure functions of those files: no store, no launcher.
#pragma once

#include <optional>
#include <string>

#include "common/run_contract.h"
#include "server/launcher.h"

namespace vicreg::server {

// Success: the launcher exited with kExitOk, no signal, and the worker did not report failure.
bool AttemptSucceeded(const AttemptStatus& status, const std::optional<contract::RunResult>& result);

// A rank of the attempt rejected its input (contract::IsInvalidInputExit): every attempt would.
bool RankRejectedInput(const contract::RunPaths& run, int attempt);

// The cause of a failed attempt, for the attempt record and the job's last_error:
//   "rank 1 killed by signal 9 (SIGKILL); worker: <result.json reason>\nlast lines of logs/rank-1.out:\n..."
// The first rank that failed by itself is named (ranks ended with SIGTERM were usually stopped by
// mpirun because another one failed, so they are named only when no other rank failed); without
// a failed rank, the launcher's exit or why the attempt was lost.
std::string DescribeFailure(const contract::RunPaths& run, int attempt, const AttemptStatus& status);

}  // namespace vicreg::server
