#include "tests/server/fake_launcher.h"

#include <signal.h>

#include <stdexcept>

namespace vicreg::testutil {

using server::AttemptStatus;

namespace {
// "job-000001-a2" -> "job-000001" (LaunchSpec::name starts with the job id).
std::string JobOf(const server::LaunchSpec& spec) { return spec.name.substr(0, spec.name.find('-', 4)); }
}  // namespace

void FakeCluster::QueueNewLaunches(const std::string& state, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_new_ = true;
  queue_state_ = state;
  queue_reason_ = reason;
}

void FakeCluster::HideHandles(bool hide) {
  std::lock_guard<std::mutex> lock(mu_);
  hide_handles_ = hide;
}

void FakeCluster::Run(const std::string& job_id, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  Attempt* a = Find(job_id, attempt);
  if (!a) throw std::logic_error("FakeCluster: no attempt of " + job_id);
  a->status.phase = AttemptStatus::Phase::kRunning;
  a->status.queue_state = "RUNNING";
  a->status.queue_reason.clear();
}

int FakeCluster::stops() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stops_;
}

void FakeCluster::FailLaunches(int count, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_launches_ = count;
  fail_message_ = message;
}

FakeCluster::Attempt* FakeCluster::Find(const std::string& job_id, int attempt) {
  for (auto it = attempts_.rbegin(); it != attempts_.rend(); ++it) {
    if (JobOf(it->spec) == job_id && (attempt == 0 || it->spec.attempt == attempt)) return &*it;
  }
  return nullptr;
}

FakeCluster::Attempt* FakeCluster::FindName(const std::string& name) {
  for (auto it = attempts_.rbegin(); it != attempts_.rend(); ++it)
    if (it->spec.name == name) return &*it;
  return nullptr;
}

FakeCluster::Attempt* FakeCluster::FindHandle(const std::string& handle) {
  for (auto& a : attempts_)
    if (a.handle == handle) return &a;
  return nullptr;
}

void FakeCluster::Exit(const std::string& job_id, int exit_code, int signal, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  Attempt* a = Find(job_id, attempt);
  if (!a) throw std::logic_error("FakeCluster: no attempt of " + job_id);
  a->status.phase = AttemptStatus::Phase::kExited;
  a->status.exit_code = signal ? -1 : exit_code;
  a->status.signal = signal;
}

void FakeCluster::Lose(const std::string& job_id, const std::string& detail, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  Attempt* a = Find(job_id, attempt);
  if (!a) throw std::logic_error("FakeCluster: no attempt of " + job_id);
  a->status.phase = AttemptStatus::Phase::kLost;
  a->status.detail = detail;
}

void FakeCluster::IgnoreSigterm(const std::string& job_id, int attempt) {
  std::lock_guard<std::mutex> lock(mu_);
  Attempt* a = Find(job_id, attempt);
  if (!a) throw std::logic_error("FakeCluster: no attempt of " + job_id);
  a->ignore_sigterm = true;
}

int FakeCluster::launches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(attempts_.size());
}

int FakeCluster::launches(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& a : attempts_) n += JobOf(a.spec) == job_id;
  return n;
}

std::optional<FakeCluster::Attempt> FakeCluster::Latest(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = attempts_.rbegin(); it != attempts_.rend(); ++it)
    if (JobOf(it->spec) == job_id) return *it;
  return std::nullopt;
}

std::vector<FakeCluster::Attempt> FakeCluster::Attempts(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Attempt> out;
  for (const auto& a : attempts_)
    if (JobOf(a.spec) == job_id) out.push_back(a);
  return out;
}

bool FakeCluster::Running(const std::string& job_id) const {
  auto a = Latest(job_id);
  return a && a->status.phase == AttemptStatus::Phase::kRunning;
}

std::string FakeCluster::Launch(const server::LaunchSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_launches_ != 0) {
    if (fail_launches_ > 0) --fail_launches_;
    throw std::runtime_error(fail_message_);
  }
  Attempt a;
  a.spec = spec;
  a.handle = "fake:" + std::to_string(attempts_.size() + 1);
  if (queue_new_) {
    a.status.phase = AttemptStatus::Phase::kQueued;
    a.status.queue_state = queue_state_;
    a.status.queue_reason = queue_reason_;
  }
  a.handle_hidden = hide_handles_;
  attempts_.push_back(a);
  return a.handle_hidden ? "" : a.handle;
}

AttemptStatus FakeCluster::Poll(const server::AttemptRef& ref) {
  std::lock_guard<std::mutex> lock(mu_);
  Attempt* a = ref.handle.empty() ? FindName(ref.name) : FindHandle(ref.handle);
  if (!a) {
    AttemptStatus s;
    s.phase = AttemptStatus::Phase::kLost;
    s.detail = "unknown handle '" + ref.handle + "'";
    return s;
  }
  AttemptStatus s = a->status;
  if (ref.handle.empty()) s.handle = a->handle;  // found by name
  return s;
}

void FakeCluster::Stop(const server::AttemptRef& ref, bool force) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stops_;
  Attempt* a = ref.handle.empty() ? FindName(ref.name) : FindHandle(ref.handle);
  if (!a) return;
  (force ? a->kills : a->terms) += 1;
  if (a->status.phase == AttemptStatus::Phase::kQueued) {  // leaves the queue (scancel)
    a->status.phase = AttemptStatus::Phase::kExited;
    a->status.exit_code = -1;
    a->status.detail = "cancelled while queued";
    return;
  }
  if (a->status.phase != AttemptStatus::Phase::kRunning) return;
  if (force || !a->ignore_sigterm) {
    a->status.phase = AttemptStatus::Phase::kExited;
    a->status.exit_code = -1;
    a->status.signal = force ? SIGKILL : SIGTERM;
  }
}

}  // namespace vicreg::testutil
