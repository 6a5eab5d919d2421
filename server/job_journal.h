// The job journal: every change of a job goes to the store together with its event (one
// transaction) before it is visible, and wakes the WatchJob streams waiting for that job's events.
// Thread-safe (the store is; the notification state has its own lock).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "server/job.h"
#include "server/store.h"

namespace vicreg::server {

class JobJournal {
 public:
  explicit JobJournal(JobStore& store) : store_(store) {}

  JobStore& store() { return store_; }
  // Writes the job's mutable columns and appends an event of `kind` with the job's current state,
  // progress and attempt; returns the event's sequence.
  int64_t Record(JobRecord& job, EventKind kind, const std::string& message);
  // Appends a MESSAGE event (eval runner, operators) without changing the job; ignored for an unknown id.
  void Message(const std::string& job_id, const std::string& message);
  // The first event of a job just inserted (JobStore::InsertJob wrote it).
  void Inserted(const JobRecord& job) { Notify(job.id, job.last_sequence); }
  // Blocks until the job has an event with sequence > after_sequence, or timeout.
  void WaitForEvents(const std::string& job_id, int64_t after_sequence, std::chrono::milliseconds timeout);
  // Drops what is kept in memory for a job (retention; ended jobs are dropped by Record already).
  void Forget(const std::string& job_id);

 private:
  void Notify(const std::string& job_id, int64_t sequence);

  JobStore& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int64_t> last_event_;        // job id -> newest sequence seen
  std::deque<std::pair<std::string, double>> ended_;  // ended jobs, oldest first, with the time they ended
};

}  // namespace vicreg::server
