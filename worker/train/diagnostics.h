// Collapse diagnostics (docs/ARCHITECTURE.md "Model and objective", docs/METRICS.md), on the gathered
// global batch, fp32, no grad.
#pragma once

#include <ATen/core/Tensor.h>

namespace vicreg {
struct StepReport;
}

namespace vicreg::train {

struct DiagnosticsOptions {
  double collapse_std_threshold = 0.01;  // a dim with std below this counts as collapsed
  double rankme_eps = 1e-7;              // RankMe (Garrido et al. 2023): p_k = sigma_k / ||sigma||_1 + eps
};

struct Diagnostics {
  double std_min = 0, std_mean = 0, std_max = 0;  // per-dim std of z (unbiased, over samples)
  double pairwise_sim = 0;                        // mean cosine similarity over pairs of different samples (i != j)
  double cov_offdiag_sq = 0;  // mean over the P(P-1) off-diagonal elements of Cov(z)^2 (unbiased Cov)
  double collapsed_dims = 0;  // fraction of the P dims with std < collapse_std_threshold
  double rankme = 0;          // exp(-sum_k p_k log p_k) over the singular values of the features
};

// z: [N, P] projector outputs, features: [N', D] encoder features (N, N' >= 2; usually the same
// samples). Inputs are detached and computed in fp32 (fp64 stays fp64). A zero feature matrix has
// rankme 0 (non-finite ones NaN); a zero row of z has cosine similarity 0 with every other row (F.normalize semantics).
Diagnostics ComputeDiagnostics(const at::Tensor& z, const at::Tensor& features, const DiagnosticsOptions& opts = {});

// Copies the diagnostics into the report's optional fields.
void FillReport(const Diagnostics& d, StepReport* report);

}  // namespace vicreg::train
