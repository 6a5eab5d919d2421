// Gradient averaging across ranks (data parallelism), DDP-style flat buckets.
//
// Parameters (those with requires_grad) are packed in REVERSE order (the order in which the
// backward pass produces their gradients) into flat buckets of about `bucket_bytes`, one dtype
// and device per bucket. A hook on every parameter copies its gradient into its bucket slice;
// when the backend is asynchronous (MPI non-blocking collectives, Gloo, NCCL) a bucket's
// all-reduce is launched as soon as it is complete and every earlier bucket has been launched
// (the same order on all ranks), overlapping communication with the rest of the backward pass.
// Finish() launches what is left, waits, and writes .grad = sum over ranks / world_size.
// Synchronous backends (or overlap=false) all-reduce every bucket in Finish().
//
// Parameters that received no gradient in this backward pass contribute zeros; each bucket also
// carries one "has gradient" flag per parameter, summed over ranks, so a parameter that no rank
// produced a gradient for keeps .grad undefined on every rank (and is skipped by the optimizer
// identically everywhere), while one used by some ranks gets the average with zeros elsewhere.
//
// Contract: zero the gradients (set to none) before each backward, call Finish() exactly once
// after each backward (several backward passes before one Finish() accumulate, as long as no
// bucket was launched in between). World size 1: no hooks, Finish() is a no-op.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "worker/comm/communicator.h"
#include "worker/comm/state_sync.h"  // BroadcastModuleState, StateChecksum, CheckConsistent

namespace vicreg::comm {

struct GradSyncOptions {
  int64_t bucket_bytes = 25LL << 20;  // 25 MiB, as torch DDP
  bool overlap = true;                // launch buckets during backward when the backend is async
};

class GradientSynchronizer {
 public:
  // params: the model's parameters (module.parameters()); names: optional, same length, for messages.
  GradientSynchronizer(std::vector<at::Tensor> params, std::shared_ptr<Communicator> comm,
                       GradSyncOptions opts = GradSyncOptions(), std::vector<std::string> names = {});
  GradientSynchronizer(std::vector<at::Tensor> params, std::shared_ptr<Communicator> comm, int64_t bucket_bytes);
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  // After backward(): waits for every bucket and sets each parameter's .grad to the mean over ranks.
  void Finish();

  // Bucket layout: indices into `params` per bucket, in launch order (tests, logs).
  std::vector<std::vector<int>> BucketLayout() const;
  int num_buckets() const { return static_cast<int>(buckets_.size()); }

  struct Stats {
    int64_t steps = 0;
    int64_t buckets_launched_in_backward = 0;  // overlapped with the backward pass
    int64_t buckets_launched_in_finish = 0;
    double finish_seconds = 0;  // total time spent in Finish()
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Slot {
    int param = 0;       // index into params_
    int64_t offset = 0;  // element offset in the bucket's flat buffer
    int64_t numel = 0;
    bool has_grad = false;
  };
  struct Bucket {
    std::vector<Slot> slots;
    at::Tensor flat;  // [sum numel + slots.size()] gradients, then one flag per slot
    int ready = 0;    // slots with a gradient this step
    bool launched = false;
    std::unique_ptr<Work> work;
  };

  void OnGrad(int param, const at::Tensor& grad);  // runs inside backward
  void LaunchReadyLocked();
  void LaunchLocked(Bucket& b, bool in_backward);

  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  std::shared_ptr<Communicator> comm_;
  GradSyncOptions opts_;
  bool overlap_ = false;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<int, int>> where_;  // param -> (bucket, slot); (-1, -1) if not synchronized
  std::vector<unsigned> hook_ids_;          // parallel to hooked_
  std::vector<int> hooked_;
  size_t next_launch_ = 0;
  std::mutex mu_;
  Stats stats_;
};

}  // namespace vicreg::comm
