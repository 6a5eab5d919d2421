#include "server/recovery.h"

#include <spdlog/spdlog.h>

namespace vicreg::server {

Recovered RecoverJobs(JobJournal& journal, Scheduler& scheduler, Launcher& launcher, AttemptMachine& machine) {
  JobStore& store = journal.store();
  Recovered out;
  launcher.Refresh();  // one look at the cluster's queue before the attempts are polled
  for (JobRecord& rec : store.LoadOpenJobs()) {
    if (rec.state == JobState::kQueued) {
      out.queue.push_back(rec);
      continue;
    }
    const contract::RunPaths run(rec.run_dir);
    std::optional<AttemptRecord> a = store.GetAttempt(rec.id, rec.attempt);
    auto ref_of = [&](const AttemptRecord& attempt) {
      return AttemptRef{rec.id + "-a" + std::to_string(attempt.number), attempt.handle,
                        run.attempt_status(attempt.number), run.attempt_launcher_info(attempt.number)};
    };
    auto slots = Scheduler::ParsePlacement(rec.placement);
    if (!slots || !scheduler.Reserve(rec.id, *slots)) {
      // The slot configuration changed (or the placement is unusable): place it again.
      spdlog::warn("coordinator: {} held '{}', which this configuration cannot reserve; re-placing it", rec.id,
                   rec.placement);
      if (a && rec.state != JobState::kRestarting) {
        AttemptStatus::Phase p = launcher.Poll(ref_of(*a)).phase;
        if (p == AttemptStatus::Phase::kRunning || p == AttemptStatus::Phase::kQueued) launcher.Stop(ref_of(*a), true);
      }
      rec.state = JobState::kQueued;
      rec.placement.clear();
      rec.attempt_phase = AttemptPhase::kNone;
      rec.queue_state.clear();
      rec.queue_reason.clear();
      rec.queued_since_unix = 0;
      rec.pending_reason = "re-queued after a coordinator restart";
      journal.Record(rec, EventKind::kState, "re-queued: its placement is not available after the coordinator restart");
      out.queue.push_back(rec);
      ++out.requeued;
      continue;
    }
    if (rec.state == JobState::kRestarting) {
      machine.RestartNow(rec);
      ++out.restarting;
      continue;
    }
    AttemptStatus st;
    if (a) {
      st = launcher.Poll(ref_of(*a));
    } else {
      st.phase = AttemptStatus::Phase::kLost;
      st.detail = "no attempt record";
    }
    if (a && !st.handle.empty() && st.handle != a->handle) {
      // Never recorded (the coordinator died between submitting and storing it): found by its name.
      a->handle = st.handle;
      journal.Message(rec.id, "attempt " + std::to_string(a->number) + " found by its name: " + st.handle);
    }
    switch (st.phase) {
      case AttemptStatus::Phase::kQueued:
      case AttemptStatus::Phase::kRunning:
        machine.Adopt(rec, *a);
        ++out.adopted;
        break;
      case AttemptStatus::Phase::kExited:
        machine.AccountEnded(rec, *a, st);
        ++out.ended;
        break;
      case AttemptStatus::Phase::kLost:
        machine.RestartLost(rec, a, st);
        ++out.restarting;
        break;
    }
  }
  // Cancelled jobs whose processes were still being stopped: their slots stay taken until they are gone.
  for (const JobRecord& rec : store.LoadStoppingJobs()) {
    auto slots = Scheduler::ParsePlacement(rec.placement);
    if (!slots || !scheduler.Reserve(rec.id, *slots)) {
      spdlog::warn("coordinator: cancelled {} held '{}', which this configuration cannot reserve; stopping it anyway",
                   rec.id, rec.placement);
    }
    machine.AdoptStopping(rec, store.GetAttempt(rec.id, rec.attempt));
    ++out.stopping;
  }
  machine.Sweep();  // jobs that ended while the coordinator was down
  return out;
}

}  // namespace vicreg::server
