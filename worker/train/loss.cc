#include "worker/train/loss.h"

#include <ATen/ATen.h>

#include <string>

#include "common/errors.h"
#include "worker/comm/communicator.h"
#include "worker/comm/gather.h"

namespace vicreg::train {

VicregLossOptions VicregLossOptions::FromConfig(const config::VicregConfig& v) {
  VICREG_CHECK(v.covariance_reduction == "paper" || v.covariance_reduction == "seed",
               "train.vicreg.covariance_reduction '" + v.covariance_reduction + "' passed no config::Validate");
  VICREG_CHECK(v.global_stats == "allreduce" || v.global_stats == "gather",
               "train.vicreg.global_stats '" + v.global_stats + "' passed no config::Validate");
  VicregLossOptions o;
  o.lambda_invariance = v.lambda_invariance;
  o.mu_variance = v.mu_variance;
  o.nu_covariance = v.nu_covariance;
  o.gamma = v.gamma;
  o.epsilon = v.epsilon;
  o.covariance_reduction = v.covariance_reduction == "seed" ? CovarianceReduction::kSeed : CovarianceReduction::kPaper;
  o.global_stats = v.global_stats == "gather" ? GlobalStats::kGather : GlobalStats::kAllReduce;
  return o;
}

namespace {

// fp64 stays fp64 (finite-difference tests); every other float type computes in fp32.
at::Tensor Upcast(const at::Tensor& z) { return z.scalar_type() == at::kDouble ? z : z.to(at::kFloat); }

// cov: [D, D] -> the D*(D-1) off-diagonal elements (facebookresearch's off_diagonal view, no copy).
at::Tensor OffDiagonal(const at::Tensor& cov) {
  const int64_t D = cov.size(0);
  return cov.flatten().narrow(0, 0, D * D - 1).view({D - 1, D + 1}).narrow(1, 1, D);
}

struct ViewTerms {
  at::Tensor std_hinge;   // scalar: mean_j relu(gamma - std_j)
  at::Tensor offdiag_sq;  // scalar: sum_{i != j} Cov_ij^2
};

// cov: [D, D] the unbiased covariance of one view's global batch.
ViewTerms Terms(const at::Tensor& cov, double gamma, double eps) {
  const int64_t D = cov.size(0);
  auto var = cov.diagonal();       // [D] unbiased variance
  auto std = at::sqrt(var + eps);  // [D]
  ViewTerms t;
  t.std_hinge = at::relu(gamma - std).mean();
  t.offdiag_sq = D > 1 ? OffDiagonal(cov).pow(2).sum() : at::zeros({}, cov.options());
  return t;
}

// z: [N, D] the gathered global batch of one view -> [D, D] unbiased covariance.
at::Tensor Covariance(const at::Tensor& z) {
  const int64_t N = z.size(0);
  auto zc = z - z.mean(0, /*keepdim=*/true);                   // [N, D]
  return at::mm(zc.t(), zc).div_(static_cast<double>(N - 1));  // [D, D]
}

void CheckLocal(const at::Tensor& za, const at::Tensor& zb) {
  VICREG_CHECK(za.dim() == 2 && za.sizes() == zb.sizes(),
               "VicregLoss: za, zb must both be [B, D], got " + c10::str(za.sizes()) + " and " + c10::str(zb.sizes()));
}

// The loss from the local views (invariance) and the two views' global covariances.
VicregLossOutput Combine(const at::Tensor& za, const at::Tensor& zb, const at::Tensor& cov_a, const at::Tensor& cov_b,
                         const VicregLossOptions& opts) {
  const double D = static_cast<double>(za.size(1));
  VicregLossOutput out;
  out.invariance = (za - zb).pow(2).mean();  // mse over the local batch
  auto ta = Terms(cov_a, opts.gamma, opts.epsilon);
  auto tb = Terms(cov_b, opts.gamma, opts.epsilon);
  out.variance = (ta.std_hinge + tb.std_hinge) / 2.0;
  if (opts.covariance_reduction == CovarianceReduction::kPaper) {
    out.covariance = (ta.offdiag_sq + tb.offdiag_sq) / D;  // C(za) + C(zb), C = sum offdiag^2 / D
  } else {
    const double pairs = D > 1 ? D * (D - 1) : 1.0;                    // mean over off-diagonal elements ...
    out.covariance = (ta.offdiag_sq + tb.offdiag_sq) / (2.0 * pairs);  // ... averaged over the two views
  }
  out.total =
      opts.lambda_invariance * out.invariance + opts.mu_variance * out.variance + opts.nu_covariance * out.covariance;
  return out;
}

}  // namespace

VicregLossOutput VicregLoss(const at::Tensor& za_in, const at::Tensor& zb_in, const at::Tensor& za_all_in,
                            const at::Tensor& zb_all_in, const VicregLossOptions& opts) {
  CheckLocal(za_in, zb_in);
  VICREG_CHECK(za_all_in.dim() == 2 && za_all_in.sizes() == zb_all_in.sizes() && za_all_in.size(1) == za_in.size(1),
               "VicregLoss: za_all, zb_all must both be [N, D] with D = " + std::to_string(za_in.size(1)) + ", got " +
                   c10::str(za_all_in.sizes()) + " and " + c10::str(zb_all_in.sizes()));
  VICREG_CHECK(za_all_in.size(0) >= 2,
               "VicregLoss: the global batch needs >= 2 samples, got " + std::to_string(za_all_in.size(0)));
  return Combine(Upcast(za_in), Upcast(zb_in), Covariance(Upcast(za_all_in)), Covariance(Upcast(zb_all_in)), opts);
}

VicregLossOutput VicregLoss(const at::Tensor& za_in, const at::Tensor& zb_in, comm::Communicator* comm,
                            const VicregLossOptions& opts) {
  CheckLocal(za_in, zb_in);
  const int world = comm ? comm->world_size() : 1;
  if (opts.global_stats == GlobalStats::kGather) {
    if (world == 1) return VicregLoss(za_in, zb_in, za_in, zb_in, opts);
    auto [za_all, zb_all] = comm::GatherPairWithGrad(za_in, zb_in, *comm);
    return VicregLoss(za_in, zb_in, za_all, zb_all, opts);
  }
  VICREG_CHECK(static_cast<int64_t>(world) * za_in.size(0) >= 2,
               "VicregLoss: the global batch needs >= 2 samples, got " + std::to_string(world * za_in.size(0)));
  auto za = Upcast(za_in), zb = Upcast(zb_in);                             // [B, D]
  at::Tensor cov = comm::AllReducedCovariance(at::stack({za, zb}), comm);  // [2, D, D]
  return Combine(za, zb, cov.select(0, 0), cov.select(0, 1), opts);
}

}  // namespace vicreg::train
