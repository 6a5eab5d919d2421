// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ with norm_type 2).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace vicreg::train {

struct GradClipResult {
  double total_norm = 0;  // L2 norm of all gradients together, before clipping
  bool finite = true;     // false: NaN/Inf norm; gradients were left untouched (skip the step)
  bool clipped = false;   // gradients were scaled by max_norm / (total_norm + 1e-6)
};

// params: parameters whose .grad() is used (undefined grads are skipped). max_norm <= 0 only measures.
GradClipResult ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace vicreg::train
