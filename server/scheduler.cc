#include "server/scheduler.h"

#include <algorithm>
#include <sstream>

namespace vicreg::server {

Scheduler::Scheduler(SchedulerOptions options) : options_(std::move(options)) {}

int Scheduler::free_count() const { return capacity() - static_cast<int>(holder_.size()); }

int Scheduler::SlotsFor(const QueuedJob& job) const { return options_.kind == SlotKind::kCluster ? 1 : job.ranks; }

std::string Scheduler::WhyNeverPlaceable(int ranks) const {
  if (options_.kind == SlotKind::kCluster) return capacity() > 0 ? "" : "this coordinator submits no jobs (cap 0)";
  if (ranks <= capacity()) return "";
  std::ostringstream os;
  os << "resources.ranks: the job needs " << ranks << (ranks == 1 ? " slot" : " slots")
     << " but this coordinator has only " << capacity() << " " << (options_.kind == SlotKind::kGpu ? "GPU" : "CPU")
     << (capacity() == 1 ? " slot" : " slots");
  if (options_.kind == SlotKind::kGpu)
    os << " (--gpus " << JoinSlots(options_.slots) << ")";
  else
    os << " (--slots " << capacity() << ")";
  os << "; it can never be placed";
  return os.str();
}

bool Scheduler::Reserve(const std::string& job_id, const std::vector<int>& slots) {
  for (int s : slots) {
    if (std::find(options_.slots.begin(), options_.slots.end(), s) == options_.slots.end()) return false;
    auto it = holder_.find(s);
    if (it != holder_.end() && it->second != job_id) return false;
  }
  for (int s : slots) holder_[s] = job_id;
  return true;
}

void Scheduler::Release(const std::string& job_id) {
  for (auto it = holder_.begin(); it != holder_.end();) {
    if (it->second == job_id)
      it = holder_.erase(it);
    else
      ++it;
  }
}

std::vector<int> Scheduler::HeldBy(const std::string& job_id) const {
  std::vector<int> out;
  for (const auto& [slot, holder] : holder_)
    if (holder == job_id) out.push_back(slot);
  return out;
}

std::string Scheduler::HoldersText() const {
  // "job-000001 holds 2, job-000002 holds 1" in order of first slot.
  std::vector<std::pair<std::string, int>> counts;
  for (const auto& [slot, holder] : holder_) {
    auto it =
        std::find_if(counts.begin(), counts.end(), [&, &holder = holder](const auto& p) { return p.first == holder; });
    if (it == counts.end())
      counts.emplace_back(holder, 1);
    else
      ++it->second;
  }
  std::ostringstream os;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i) os << ", ";
    os << counts[i].first << " holds " << counts[i].second;
  }
  return os.str();
}

Scheduler::Decision Scheduler::Schedule(std::vector<QueuedJob> queue) {
  std::stable_sort(queue.begin(), queue.end(), [](const QueuedJob& a, const QueuedJob& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    return a.seq < b.seq;
  });
  Decision d;
  const QueuedJob* blocker = nullptr;
  std::string blocker_reason;
  for (const QueuedJob& job : queue) {
    const int need = SlotsFor(job);
    if (!blocker) {
      if (need <= free_count()) {
        std::vector<int> chosen;
        for (int s : options_.slots) {
          if (static_cast<int>(chosen.size()) == need) break;
          if (!holder_.count(s)) chosen.push_back(s);
        }
        for (int s : chosen) holder_[s] = job.id;
        d.placements.emplace_back(job.id, chosen);
        continue;
      }
      blocker = &job;
      std::ostringstream os;
      if (options_.kind == SlotKind::kCluster) {
        os << "waiting for a submission slot: " << capacity() << (capacity() == 1 ? " job is" : " jobs are")
           << " in the cluster (this coordinator's cap)";
      } else {
        os << "waiting for " << job.ranks << (job.ranks == 1 ? " slot" : " slots") << ", " << free_count() << " free";
        std::string holders = HoldersText();
        if (!holders.empty()) os << " (" << holders << ")";
      }
      blocker_reason = os.str();
      d.pending[job.id] = blocker_reason;
      continue;
    }
    std::ostringstream os;
    os << "queued behind " << blocker->id << " (priority " << blocker->priority << ", " << blocker_reason << ")";
    d.pending[job.id] = os.str();
  }
  return d;
}

std::string Scheduler::JoinSlots(const std::vector<int>& slots) {
  std::ostringstream os;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (i) os << ",";
    os << slots[i];
  }
  return os.str();
}

std::string Scheduler::PlacementString(const std::vector<int>& slots) const {
  const char* kind = options_.kind == SlotKind::kGpu       ? "gpu:"
                     : options_.kind == SlotKind::kCluster ? "cluster:"
                                                           : "cpu:";
  return kind + JoinSlots(slots);
}

std::optional<std::vector<int>> Scheduler::ParsePlacement(const std::string& s) {
  auto colon = s.find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string kind = s.substr(0, colon);
  if (kind != "cpu" && kind != "gpu" && kind != "cluster") return std::nullopt;
  std::vector<int> out;
  std::string rest = s.substr(colon + 1);
  if (rest.empty()) return out;
  std::stringstream ss(rest);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    out.push_back(std::stoi(item));
  }
  return out;
}

}  // namespace vicreg::server
