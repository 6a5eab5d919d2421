// Weighted k-nearest-neighbour classifier (DINO / InstDisc style) on frozen features:
// cosine similarity on L2-normalized features, the k most similar training samples vote for
// their class with weight exp(sim / T). Computed as a chunked matrix multiply.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace vicreg::eval {

struct KnnOptions {
  int k = 20;                 // neighbours (clamped to the bank size)
  double temperature = 0.07;  // vote weight exp(sim / T); large T -> plain majority vote
  int64_t chunk_size = 512;   // query rows per matmul (memory: chunk * N_bank floats)
};

// bank: [N, D] features, bank_labels: int64 [N] in [0, C), queries: [M, D].
// Returns the class votes [M, C] (fp32): sum over the k neighbours of exp(sim / T) per class,
// each row scaled by exp(-max_sim / T) (same ranking, no overflow for small T).
// Features need not be normalized (done here). Throws UserError on bad shapes/labels/options.
at::Tensor KnnVotes(const at::Tensor& bank, const at::Tensor& bank_labels, const at::Tensor& queries, int num_classes,
                    const KnnOptions& opts = {});

struct KnnResult {
  double top1 = 0;
  double top5 = 0;  // top-min(5, C)
};
// KnnVotes + TopKAccuracy (ties: lower class index wins).
KnnResult KnnClassify(const at::Tensor& bank, const at::Tensor& bank_labels, const at::Tensor& queries,
                      const at::Tensor& query_labels, int num_classes, const KnnOptions& opts = {});

}  // namespace vicreg::eval
