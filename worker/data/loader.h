// Prefetching two-view loader: background threads read, decode and augment the next batches
// while the training step runs. Epoch-seeded permutation sharded by rank (disjoint, equal
// sizes, drop_last): global batch k of an epoch is permutation[k*W*B, (k+1)*W*B) and rank r
// takes its r-th slice of B. Randomness is a pure function of (seed, epoch, global batch index,
// view, the sample's position in the global batch), so a resumed run sees exactly the batches
// an uninterrupted run would, and W ranks x B produce the same views as 1 rank x W*B.
// Batches are delivered in order whatever the number of threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/config.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/data/runtime_tuning.h"

namespace vicreg::data {

struct LoaderOptions {
  int batch_size = 128;  // per rank
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;
  uint64_t seed = 42;
  int num_workers = 2;
  int prefetch_batches = 4;
  int image_size = 96;
  bool two_views = true;                 // false: eval transform, one view
  bool augment_in_loader = true;         // false: Batch.raw carries uint8 images; the trainer augments
                                         // on its device with the same ViewAugmenter (CUDA path):
                                         //   view1 = aug1(raw.to(dev), batch.view_seed1, batch.sample_offset)
  ViewAugmenterOptions augment_options;  // antialias (the order comes from augment.order)
  bool pin_memory = false;               // CUDA consumer: batches in page-locked memory, so that the
                                         // trainer's non_blocking host-to-device copies are asynchronous
};

struct Batch {
  at::Tensor view1;                         // float [B, 3, S, S]
  at::Tensor view2;                         // float [B, 3, S, S] (undefined when two_views == false)
  at::Tensor raw;                           // uint8 [B, 3, H, W] (only when augment_in_loader == false)
  uint64_t view_seed1 = 0, view_seed2 = 0;  // the seeds the views use (or must use, on device)
  int64_t sample_offset = 0;                // position of this rank's first sample in the global batch (rank * B)
  at::Tensor labels;                        // int64 [B]
  std::vector<int64_t> indices;             // dataset indices (for tests)
  int64_t batch_index = 0;                  // within the epoch
  double wait_seconds = 0;                  // how long Next() blocked
};

class Loader {
 public:
  // Throws UserError on invalid options or a dataset smaller than one global batch.
  Loader(std::shared_ptr<const Dataset> dataset, const config::AugmentConfig& augment, LoaderOptions opts);
  ~Loader();                          // stops and joins the threads
  int64_t batches_per_epoch() const;  // floor(size / (world * batch))
  // Starts producing batches of `epoch` (1-based), skipping the first skip_batches (exact resume).
  // Stops and joins the threads of the previous epoch first (its undelivered batches are dropped).
  void StartEpoch(int64_t epoch, int64_t skip_batches = 0);
  // Next batch of the current epoch, or nullopt at the end. Rethrows a worker thread's error
  // (UserError naming the file) in the caller.
  std::optional<Batch> Next();
  // The per-view augmenters (for on-device augmentation) and the mean/std they normalize with.
  const ViewAugmenter& augmenter(int view) const;  // view 1 or 2
  std::array<double, 3> mean() const;
  std::array<double, 3> std() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The rank's part of an epoch: the indices of its batches, batch after batch (B each, drop_last).
std::vector<int64_t> EpochShard(int64_t dataset_size, int batch_size, int rank, int world_size, bool shuffle,
                                uint64_t seed, int64_t epoch);
// The epoch's permutation of [0, dataset_size) (identity when !shuffle).
std::vector<int64_t> EpochPermutation(int64_t dataset_size, bool shuffle, uint64_t seed, int64_t epoch);
// The seed of view (1 or 2) of global batch `batch_index` of `epoch`.
uint64_t ViewSeed(uint64_t seed, int64_t epoch, int64_t batch_index, int view);

}  // namespace vicreg::data
