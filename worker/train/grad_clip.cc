#include "worker/train/grad_clip.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace vicreg::train {

GradClipResult ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> grads, norms;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    grads.push_back(g);
    norms.push_back(at::linalg_vector_norm(g, 2));  // [] per tensor
  }
  GradClipResult r;
  if (grads.empty()) return r;
  // One host sync for all tensors; the per-tensor norms are combined in fp64.
  r.total_norm = at::linalg_vector_norm(at::stack(norms).to(at::kDouble), 2).item<double>();
  r.finite = std::isfinite(r.total_norm);
  if (!r.finite || max_norm <= 0) return r;
  const double coef = max_norm / (r.total_norm + 1e-6);
  if (coef < 1.0) {
    for (auto& g : grads) g.mul_(coef);
    r.clipped = true;
  }
  return r;
}

}  // namespace vicreg::train
