// Weight initializers that LibTorch lacks (timm's trunc_normal_).
#pragma once

#include <ATen/core/Tensor.h>

namespace vicreg::model {

// In place: t ~ N(mean, std^2) truncated to [a, b] (absolute bounds, timm/PyTorch
// trunc_normal_ semantics: inverse-CDF sampling, then clamp). Uses the global CPU generator.
void TruncNormal_(at::Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0);

}  // namespace vicreg::model
