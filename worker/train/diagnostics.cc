#include "worker/train/diagnostics.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <string>

#include "common/errors.h"
#include "common/step_report.h"

namespace vicreg::train {

namespace {
at::Tensor Prepare(const at::Tensor& t) {
  auto d = t.detach();
  return d.scalar_type() == at::kDouble ? d : d.to(at::kFloat);
}
}  // namespace

Diagnostics ComputeDiagnostics(const at::Tensor& z_in, const at::Tensor& features_in, const DiagnosticsOptions& opts) {
  VICREG_CHECK(z_in.dim() == 2 && z_in.size(0) >= 2,
               "ComputeDiagnostics: z must be [N >= 2, P], got " + c10::str(z_in.sizes()));
  VICREG_CHECK(features_in.dim() == 2 && features_in.size(0) >= 1,
               "ComputeDiagnostics: features must be [N, D], got " + c10::str(features_in.sizes()));
  c10::NoGradGuard no_grad;
  auto z = Prepare(z_in);  // [N, P]
  const int64_t N = z.size(0), P = z.size(1);
  Diagnostics d;

  // Per-dim std and covariance from the centered batch.
  auto zc = z - z.mean(0, /*keepdim=*/true);                 // [N, P]
  auto var = zc.pow(2).sum(0) / static_cast<double>(N - 1);  // [P]
  auto std = var.sqrt();                                     // [P]
  d.std_min = std.min().item<double>();
  d.std_max = std.max().item<double>();
  d.std_mean = std.mean().item<double>();
  d.collapsed_dims = (std < opts.collapse_std_threshold).to(at::kDouble).mean().item<double>();
  if (P > 1) {
    auto cov = at::mm(zc.t(), zc) / static_cast<double>(N - 1);                             // [P, P]
    auto off = cov.flatten().narrow(0, 0, P * P - 1).view({P - 1, P + 1}).narrow(1, 1, P);  // off-diagonal
    d.cov_offdiag_sq = off.pow(2).sum(at::kDouble).item<double>() / static_cast<double>(P * (P - 1));
  }

  // Mean cosine similarity over i != j without forming the N x N matrix:
  // sum_{i,j} <u_i, u_j> = ||sum_i u_i||^2, and the diagonal contributes sum_i ||u_i||^2.
  auto norms = z.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);  // [N, 1] (F.normalize eps)
  auto u = (z / norms).to(at::kDouble);                            // [N, P]
  const double all_pairs = u.sum(0).pow(2).sum().item<double>();
  const double diag = u.pow(2).sum().item<double>();
  d.pairwise_sim = (all_pairs - diag) / static_cast<double>(N * (N - 1));

  // RankMe on the encoder features.
  auto f = Prepare(features_in);  // [N', D]
  d.rankme = std::nan("");        // non-finite features / no convergence
  if (f.isfinite().all().item<bool>()) {
    at::Tensor sv;
    try {
      sv = at::linalg_svdvals(f);  // [min(N', D)]
    } catch (const c10::Error&) {
      return d;  // diagnostics never stop training
    }
    const double total = sv.sum().item<double>();
    if (total == 0) {
      d.rankme = 0.0;  // zero matrix: rank 0
    } else {
      auto p = sv / total + opts.rankme_eps;
      d.rankme = std::exp(-(p * p.log()).sum().item<double>());
    }
  }
  return d;
}

void FillReport(const Diagnostics& d, StepReport* r) {
  r->std_min = d.std_min;
  r->std_mean = d.std_mean;
  r->std_max = d.std_max;
  r->pairwise_sim = d.pairwise_sim;
  r->cov_offdiag_sq = d.cov_offdiag_sq;
  r->collapsed_dims = d.collapsed_dims;
  r->rankme = d.rankme;
}

}  // namespace vicreg::train
