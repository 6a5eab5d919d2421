// VICReg loss with facebookresearch/vicreg semantics (docs/ARCHITECTURE.md "Model and objective"). Always fp32.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "common/config.h"

namespace vicreg::train {

// train.vicreg.covariance_reduction: paper = sum offdiag^2 / D per view, summed over the views;
// seed = mean offdiag^2 per view, averaged over the views (paper = 2(D-1) x seed).
enum class CovarianceReduction { kPaper, kSeed };

struct VicregLossOptions {
  double lambda_invariance = 25.0;
  double mu_variance = 25.0;
  double nu_covariance = 1.0;
  double gamma = 1.0;
  double epsilon = 1e-4;
  CovarianceReduction covariance_reduction = CovarianceReduction::kPaper;
  // From a validated config (config::Validate checks every value; this only maps them).
  static VicregLossOptions FromConfig(const config::VicregConfig& v);
};

struct VicregLossOutput {
  at::Tensor total;       // scalar fp32, differentiable
  at::Tensor invariance;  // scalar, unweighted
  at::Tensor variance;    // scalar, unweighted
  at::Tensor covariance;  // scalar, unweighted
};

// za, zb: [B, D] this rank's projector outputs; za_all, zb_all: [N, D] the all-gathered global
// batch (differentiable gather; equal to za, zb on one rank). Inputs of any float dtype are
// upcast to fp32. invariance uses the local batch; variance and covariance the global one.
VicregLossOutput VicregLoss(const at::Tensor& za, const at::Tensor& zb, const at::Tensor& za_all,
                            const at::Tensor& zb_all, const VicregLossOptions& opts);

}  // namespace vicreg::train
