#include "worker/eval/topk.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "common/errors.h"

namespace vicreg::eval {

at::Tensor TopKClasses(const at::Tensor& scores, int k) {
  // scores: [M, C] -> [M, min(k, C)]
  VICREG_CHECK(scores.dim() == 2, "scores must be [M, C], got dim " + std::to_string(scores.dim()));
  VICREG_CHECK(k >= 1, "k must be >= 1");
  const int64_t kk = std::min<int64_t>(k, scores.size(1));
  // A stable descending sort keeps equal scores in index order: lower class index first.
  auto sorted = at::sort(scores.to(at::kFloat), /*stable=*/true, /*dim=*/1, /*descending=*/true);
  return std::get<1>(sorted).narrow(1, 0, kk);
}

double TopKAccuracy(const at::Tensor& scores, const at::Tensor& labels, int k) {
  // scores: [M, C], labels: [M]
  VICREG_CHECK(labels.dim() == 1 && labels.size(0) == scores.size(0), "labels must be [M] matching scores [M, C]");
  if (scores.size(0) == 0) return 0.0;
  auto top = TopKClasses(scores, k);                                             // [M, k]
  auto hit = top.eq(labels.to(at::kLong).to(top.device()).unsqueeze(1)).any(1);  // [M]
  return hit.to(at::kDouble).mean().item<double>();
}

}  // namespace vicreg::eval
