// Recovery after a coordinator restart (also after SIGKILL or a crash): turns the store's open jobs
// back into live ones before the manager thread starts.
//   QUEUED                 -> back in the queue, in submission order
//   RESTARTING             -> slots reserved again, next attempt launched at once
//   STARTING / RUNNING     -> slots reserved again, last attempt polled through its stored handle:
//                             alive: re-adopted; ended while down: accounted as usual;
//                             gone without a trace: restarted (coordinator_restart, not counted)
//   placement unusable     -> (slot configuration changed) attempt stopped, job re-queued
//   CANCELLED with a placement -> (its processes were being stopped) slots reserved again until
//                             they are gone (SIGKILL once stop_grace_s has passed since the cancel)
#pragma once

#include <vector>

#include "server/attempt_machine.h"
#include "server/job.h"
#include "server/job_journal.h"
#include "server/launcher.h"
#include "server/scheduler.h"

namespace vicreg::server {

struct Recovered {
  std::vector<JobRecord> queue;  // QUEUED again, oldest first
  int adopted = 0, restarting = 0, ended = 0, requeued = 0, stopping = 0;
};

Recovered RecoverJobs(JobJournal& journal, Scheduler& scheduler, Launcher& launcher, AttemptMachine& machine);

}  // namespace vicreg::server
