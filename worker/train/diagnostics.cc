#include "worker/train/diagnostics.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <string>

#include "common/errors.h"
#include "common/step_report.h"
#include "worker/comm/communicator.h"

namespace vicreg::train {

namespace {
at::Tensor Prepare(const at::Tensor& t) {
  auto d = t.detach();
  return d.scalar_type() == at::kDouble ? d : d.to(at::kFloat);
}

// std: [P] per-dim std; cov: [P, P] unbiased covariance (used when P > 1).
void FillSpread(const at::Tensor& std, const at::Tensor& cov, const DiagnosticsOptions& opts, Diagnostics* d) {
  const int64_t P = std.size(0);
  d->std_min = std.min().item<double>();
  d->std_max = std.max().item<double>();
  d->std_mean = std.mean().item<double>();
  d->collapsed_dims = (std < opts.collapse_std_threshold).to(at::kDouble).mean().item<double>();
  if (P > 1) {
    auto off = cov.flatten().narrow(0, 0, P * P - 1).view({P - 1, P + 1}).narrow(1, 1, P);  // off-diagonal
    d->cov_offdiag_sq = off.pow(2).sum(at::kDouble).item<double>() / static_cast<double>(P * (P - 1));
  }
}

// sv: singular values of the feature matrix -> RankMe (0 for a zero matrix).
double RankMe(const at::Tensor& sv, const DiagnosticsOptions& opts) {
  const double total = sv.sum().item<double>();
  if (total == 0) return 0.0;  // zero matrix: rank 0
  auto p = sv / total + opts.rankme_eps;
  return std::exp(-(p * p.log()).sum().item<double>());
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
  FillSpread(std, P > 1 ? at::mm(zc.t(), zc) / static_cast<double>(N - 1) : at::Tensor(), opts, &d);

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
    d.rankme = RankMe(sv, opts);
  }
  return d;
}

Diagnostics ComputeDiagnosticsAllReduced(const at::Tensor& z_in, const at::Tensor& features_in,
                                         comm::Communicator& comm, const DiagnosticsOptions& opts) {
  VICREG_CHECK(z_in.dim() == 2 && z_in.size(0) >= 1,
               "ComputeDiagnosticsAllReduced: z must be [B >= 1, P], got " + c10::str(z_in.sizes()));
  VICREG_CHECK(features_in.dim() == 2 && features_in.size(0) >= 1,
               "ComputeDiagnosticsAllReduced: features must be [B, E], got " + c10::str(features_in.sizes()));
  VICREG_CHECK(z_in.device() == comm.device() && features_in.device() == comm.device(),
               "ComputeDiagnosticsAllReduced: z and features must be on " + comm.device().str());
  c10::NoGradGuard no_grad;
  auto z = Prepare(z_in);                         // [B, P]
  auto f = Prepare(features_in).to(at::kDouble);  // [B', E]
  const int64_t P = z.size(1), E = f.size(1);
  const auto f64 = z.options().dtype(at::kDouble);
  Diagnostics d;

  // Round 1, [P + 4]: column sums of z, rows of z, sum of the unit rows u_i (F.normalize), sum ||u_i||^2,
  // rows of the features, non-finite feature values.
  auto norms = z.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-12);  // [B, 1]
  auto u = (z / norms).to(at::kDouble);                            // [B, P]
  at::Tensor r1 = at::cat({z.sum(0).to(at::kDouble), at::full({1}, static_cast<double>(z.size(0)), f64), u.sum(0),
                           u.pow(2).sum().reshape({1}), at::full({1}, static_cast<double>(f.size(0)), f64),
                           at::logical_not(at::isfinite(f)).sum().to(at::kDouble).reshape({1})});
  comm.AllReduceSum(r1);
  at::Tensor h1 = r1.cpu();
  const double* v1 = h1.data_ptr<double>();
  const double n = v1[P], nf = v1[2 * P + 2], nonfinite = v1[2 * P + 3];
  VICREG_CHECK(n >= 2, "ComputeDiagnosticsAllReduced: the global batch needs >= 2 rows, got " + std::to_string(n));

  // Round 2, [P*P + E*E]: Gram of z centred on the global mean, Gram of the features (uncentred, as the SVD).
  auto mean = (r1.narrow(0, 0, P) / n).to(z.scalar_type());  // [P]
  auto zc = z - mean;                                        // [B, P]
  at::Tensor r2 = at::cat({at::mm(zc.t(), zc).to(at::kDouble).flatten(), at::mm(f.t(), f).flatten()});
  comm.AllReduceSum(r2);
  auto cov = r2.narrow(0, 0, P * P).view({P, P}) / (n - 1);  // [P, P] unbiased
  FillSpread(cov.diagonal().clamp_min(0).sqrt(), cov, opts, &d);

  // Mean cosine similarity over i != j: (||sum u_i||^2 - sum ||u_i||^2) / (N (N - 1)).
  const double all_pairs = r1.narrow(0, P + 1, P).pow(2).sum().item<double>();
  d.pairwise_sim = (all_pairs - v1[2 * P + 1]) / (n * (n - 1));

  // RankMe: singular values of the global feature matrix = sqrt of the top min(N', E) Gram eigenvalues.
  d.rankme = std::nan("");
  if (nonfinite == 0) {
    at::Tensor eig;
    try {
      eig = at::linalg_eigvalsh(r2.narrow(0, P * P, E * E).view({E, E}));  // ascending
    } catch (const c10::Error&) {
      return d;  // diagnostics never stop training
    }
    const int64_t k = std::min<int64_t>(static_cast<int64_t>(nf), E);
    d.rankme = RankMe(eig.narrow(0, E - k, k).flip({0}).clamp_min(0).sqrt(), opts);
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
