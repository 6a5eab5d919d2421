// Prefetching two-view loader: background threads read, decode and augment the next batches
// while the training step runs. Epoch-seeded permutation sharded by rank (disjoint, equal
// sizes, drop_last). Randomness is a pure function of (seed, epoch, batch index, rank) so a
// resumed run sees exactly the batches an uninterrupted run would.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/config.h"
#include "worker/data/dataset.h"

namespace vicreg::data {

struct LoaderOptions {
  int batch_size = 128;              // per rank
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;
  uint64_t seed = 42;
  int num_workers = 2;
  int prefetch_batches = 4;
  int image_size = 96;
  bool two_views = true;             // false: eval transform, one view
  bool augment_in_loader = true;     // false: Batch.raw carries uint8 images; the trainer augments
                                     // on its device with the same ViewAugmenter (CUDA path)
};

struct Batch {
  at::Tensor view1;                  // float [B, 3, S, S]
  at::Tensor view2;                  // float [B, 3, S, S] (undefined when two_views == false)
  at::Tensor raw;                    // uint8 [B, 3, H, W] (only when augment_in_loader == false)
  uint64_t view_seed1 = 0, view_seed2 = 0;  // the seeds the views use (or must use, on device)
  at::Tensor labels;                 // int64 [B]
  std::vector<int64_t> indices;      // dataset indices (for tests)
  int64_t batch_index = 0;           // within the epoch
  double wait_seconds = 0;           // how long Next() blocked
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, const config::AugmentConfig& augment, LoaderOptions opts);
  ~Loader();                         // stops and joins the threads
  int64_t batches_per_epoch() const; // floor(size / (world * batch))
  // Starts producing batches of `epoch` (1-based), skipping the first skip_batches.
  void StartEpoch(int64_t epoch, int64_t skip_batches = 0);
  // Next batch of the current epoch, or nullopt at the end. Rethrows a worker thread's error
  // (UserError naming the file) in the caller.
  std::optional<Batch> Next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The rank's part of an epoch: the indices of its batches (exposed for the sharding tests).
std::vector<int64_t> EpochShard(int64_t dataset_size, int batch_size, int rank, int world_size,
                                bool shuffle, uint64_t seed, int64_t epoch);

}  // namespace vicreg::data
