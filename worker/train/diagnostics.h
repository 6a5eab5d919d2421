// Collapse diagnostics (docs/METRICS.md) of a batch, fp32, no grad: on one tensor holding the whole
// batch, or on a batch split over the ranks from all-reduced statistics.
#pragma once

#include <ATen/core/Tensor.h>

namespace vicreg {
struct StepReport;
}
namespace vicreg::comm {
class Communicator;
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

// The same diagnostics of the batch whose rows are split over the ranks of comm (the union of every
// rank's z_local [B, P] and features_local [B', E]; global N >= 2), with no tensor of the global batch's
// size on any rank: two fp64 all-reduces of P + 4 and P*P + E*E values (column sums, row counts, sums
// of unit rows for the pairwise cosine, then the Gram matrices of z centred on the global mean and of
// the features), independent of B and the world size. RankMe uses the singular values of the global
// feature matrix as the square roots of the eigenvalues of its all-reduced Gram F^T F (the largest
// min(N', E) of them), so it agrees with ComputeDiagnostics on the concatenated batch up to rounding.
// Inputs must be on comm.device(). Every rank gets the same result.
Diagnostics ComputeDiagnosticsAllReduced(const at::Tensor& z_local, const at::Tensor& features_local,
                                         comm::Communicator& comm, const DiagnosticsOptions& opts = {});

// Copies the diagnostics into the report's optional fields.
void FillReport(const Diagnostics& d, StepReport* report);

}  // namespace vicreg::train
