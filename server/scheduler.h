// Gang scheduler: all-or-nothing placement of a job's ranks on the coordinator's slots.
// Slots are CPU slots (0..N-1, one rank each) or GPUs by index (one rank per GPU); or, with a
// launcher whose cluster places the ranks itself (Slurm), submission slots: one per job whatever its
// ranks, a cap on the jobs handed to the cluster at a time (the cluster queues what does not fit).
// Order: priority (higher first), then FIFO (submission order). Strict: a job that does not fit
// blocks the jobs behind it (no backfill), so a large job is never starved by small ones.
// Not thread-safe: owned by the job manager, used under its lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vicreg::server {

enum class SlotKind { kCpu, kGpu, kCluster };

struct SchedulerOptions {
  SlotKind kind = SlotKind::kCpu;
  std::vector<int> slots;  // cpu: 0..N-1; gpu: the GPU indices (e.g. 0,1,2,3)
};

struct QueuedJob {
  std::string id;
  int ranks = 1;
  int priority = 0;
  int64_t seq = 0;  // submission order
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options);

  int capacity() const { return static_cast<int>(options_.slots.size()); }
  int free_count() const;
  SlotKind kind() const { return options_.kind; }

  // "" if a job of `ranks` ranks can ever be placed, else why not (for FAILED_PRECONDITION).
  std::string WhyNeverPlaceable(int ranks) const;

  // Marks these slots as held by job_id (re-adopted or restarting jobs). False (nothing changed)
  // if a slot is unknown or held by another job.
  bool Reserve(const std::string& job_id, const std::vector<int>& slots);
  void Release(const std::string& job_id);
  std::vector<int> HeldBy(const std::string& job_id) const;

  struct Decision {
    std::vector<std::pair<std::string, std::vector<int>>> placements;  // job id -> slots (now reserved)
    std::map<std::string, std::string> pending;                        // job id -> why it waits
  };
  // Places queued jobs in priority/FIFO order while the head fits; every other job gets a reason.
  Decision Schedule(std::vector<QueuedJob> queue);

  // "cpu:0,1" / "gpu:2,3" / "cluster:7"; ParsePlacement is the inverse (nullopt on bad syntax).
  std::string PlacementString(const std::vector<int>& slots) const;
  static std::optional<std::vector<int>> ParsePlacement(const std::string& s);
  // "0,1" (for CUDA_VISIBLE_DEVICES)
  static std::string JoinSlots(const std::vector<int>& slots);

 private:
  std::string HoldersText() const;
  int SlotsFor(const QueuedJob& job) const;  // ranks, or 1 for a submission slot

  SchedulerOptions options_;
  std::map<int, std::string> holder_;  // slot -> job id (absent = free)
};

}  // namespace vicreg::server
