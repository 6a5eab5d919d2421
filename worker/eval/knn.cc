#include "worker/eval/knn.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.h"
#include "worker/eval/topk.h"

namespace vicreg::eval {
namespace {

at::Tensor L2Normalize(const at::Tensor& x) {
  // x: [N, D] -> [N, D] rows of unit norm (zero rows stay zero)
  auto xf = x.to(at::kFloat);
  return xf / xf.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

at::Tensor KnnVotes(const at::Tensor& bank_in, const at::Tensor& bank_labels, const at::Tensor& queries_in,
                    int num_classes, const KnnOptions& opts) {
  // bank_in: [N, D], bank_labels: [N], queries_in: [M, D] -> votes [M, C]
  if (opts.k < 1) throw UserError("kNN: k must be >= 1, got " + std::to_string(opts.k));
  if (!(opts.temperature > 0) || !std::isfinite(opts.temperature))
    throw UserError("kNN: temperature must be > 0, got " + std::to_string(opts.temperature));
  if (opts.chunk_size < 1) throw UserError("kNN: chunk_size must be >= 1, got " + std::to_string(opts.chunk_size));
  if (bank_in.dim() != 2 || queries_in.dim() != 2 || bank_in.size(1) != queries_in.size(1))
    throw UserError("kNN: bank [N, D] and queries [M, D] must be 2-D with the same D");
  if (bank_in.size(0) == 0) throw UserError("kNN: empty feature bank");
  if (bank_labels.dim() != 1 || bank_labels.size(0) != bank_in.size(0))
    throw UserError("kNN: bank labels must be [N] with N = " + std::to_string(bank_in.size(0)));
  if (num_classes < 1) throw UserError("kNN: num_classes must be >= 1, got " + std::to_string(num_classes));
  const auto labels = bank_labels.to(at::kLong);
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0 || hi >= num_classes)
    throw UserError("kNN: bank labels must lie in [0, " + std::to_string(num_classes) + "), found " +
                    std::to_string(lo < 0 ? lo : hi) + " (an unlabeled split cannot be used as the bank)");

  const auto bank_t = L2Normalize(bank_in).t().contiguous();  // [D, N]
  const auto queries = L2Normalize(queries_in);               // [M, D]
  const int64_t m = queries.size(0), n = bank_t.size(1);
  const int64_t k = std::min<int64_t>(opts.k, n);
  auto votes = at::zeros({m, num_classes}, queries.options());  // [M, C]
  for (int64_t start = 0; start < m; start += opts.chunk_size) {
    const int64_t len = std::min(opts.chunk_size, m - start);
    auto sim = at::mm(queries.narrow(0, start, len), bank_t);                                  // [L, N]
    auto [top_sim, top_idx] = at::topk(sim, k, /*dim=*/1, /*largest=*/true, /*sorted=*/true);  // [L, k]
    auto top_labels = labels.index_select(0, top_idx.reshape({-1})).view({len, k});            // [L, k]
    // exp(sim / T) scaled by the row's exp(-max / T): the same ranking of classes, no overflow
    // for small T. (Votes are therefore relative within a row.)
    auto weights = top_sim.sub(top_sim.narrow(1, 0, 1)).div_(opts.temperature).exp_();  // [L, k]
    votes.narrow(0, start, len).scatter_add_(1, top_labels, weights);
  }
  return votes;
}

KnnResult KnnClassify(const at::Tensor& bank, const at::Tensor& bank_labels, const at::Tensor& queries,
                      const at::Tensor& query_labels, int num_classes, const KnnOptions& opts) {
  // bank: [N, D], queries: [M, D], query_labels: [M]
  if (query_labels.dim() != 1 || query_labels.size(0) != queries.size(0))
    throw UserError("kNN: query labels must be [M] with M = " + std::to_string(queries.size(0)));
  auto votes = KnnVotes(bank, bank_labels, queries, num_classes, opts);  // [M, C]
  KnnResult r;
  r.top1 = TopKAccuracy(votes, query_labels, 1);
  r.top5 = TopKAccuracy(votes, query_labels, 5);
  return r;
}

}  // namespace vicreg::eval
