// Top-k accuracy of class scores with a deterministic tie rule (lower class index wins).
#pragma once

#include <ATen/core/Tensor.h>

namespace vicreg::eval {

// scores: [M, C] (higher = more likely), labels: int64 [M] in [0, C).
// Returns the fraction of rows whose label is among the k best classes (k clamped to C).
// Ties between equal scores are broken in favour of the lower class index, so the result does
// not depend on the sort implementation.
double TopKAccuracy(const at::Tensor& scores, const at::Tensor& labels, int k);

// The k best classes per row under the same tie rule: int64 [M, min(k, C)].
at::Tensor TopKClasses(const at::Tensor& scores, int k);

}  // namespace vicreg::eval
