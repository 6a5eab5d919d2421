#include "server/job_journal.h"

#include <algorithm>

namespace vicreg::server {

void JobJournal::Notify(const std::string& job_id, int64_t sequence) {
  if (sequence <= 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t& last = last_event_[job_id];
    last = std::max(last, sequence);
  }
  cv_.notify_all();
}

void JobJournal::WaitForEvents(const std::string& job_id, int64_t after_sequence, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] {
    auto it = last_event_.find(job_id);
    return it != last_event_.end() && it->second > after_sequence;
  });
}

void JobJournal::Message(const std::string& job_id, const std::string& message) {
  auto rec = store_.GetJob(job_id, false);
  if (!rec) return;
  EventRecord e;
  e.job_id = job_id;
  e.time_unix = NowUnix();
  e.kind = EventKind::kMessage;
  e.state = rec->state;
  e.message = message;
  e.progress = rec->progress;
  e.attempt = rec->attempt;
  Notify(job_id, store_.AppendEvent(e));
}

int64_t JobJournal::Record(JobRecord& rec, EventKind kind, const std::string& message) {
  EventRecord e;
  e.time_unix = NowUnix();
  e.kind = kind;
  e.state = rec.state;
  e.message = message;
  e.progress = rec.progress;
  e.attempt = rec.attempt;
  int64_t seq = store_.UpdateJob(rec, e);
  Notify(rec.id, seq);
  if (IsTerminal(rec.state)) {
    // Ended jobs leave last_event_ a while later (watchers of the last events are woken by then;
    // a late watcher reads the store and sees the job ended), so that it does not grow with the
    // job history.
    std::lock_guard<std::mutex> lock(mu_);
    const double now = NowUnix();
    while (!ended_.empty() && ended_.front().second < now - 60) {
      last_event_.erase(ended_.front().first);
      ended_.pop_front();
    }
    ended_.emplace_back(rec.id, now);
  }
  return seq;
}

void JobJournal::Forget(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  last_event_.erase(job_id);
}

}  // namespace vicreg::server
