// VICReg loss with facebookresearch/vicreg semantics (docs/ARCHITECTURE.md, "Model and objective").
// Always fp32 (fp64 inputs stay fp64).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "common/config.h"

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::train {

// train.vicreg.covariance_reduction: paper = sum offdiag^2 / D per view, summed over the views;
// seed = mean offdiag^2 per view, averaged over the views (paper = 2(D-1) x seed).
enum class CovarianceReduction { kPaper, kSeed };

// How the variance and covariance terms see the batch of all ranks (train.vicreg.global_stats).
enum class GlobalStats {
  kAllReduce,  // all-reduced sufficient statistics: D + D x D per view moved, independent of the world size
  kGather,     // all-gather of z (N_global x D per view), every rank computes the global covariance itself
};

struct VicregLossOptions {
  double lambda_invariance = 25.0;
  double mu_variance = 25.0;
  double nu_covariance = 1.0;
  double gamma = 1.0;
  double epsilon = 1e-4;
  CovarianceReduction covariance_reduction = CovarianceReduction::kPaper;
  GlobalStats global_stats = GlobalStats::kAllReduce;
  // From a validated config (config::Validate checks every value; this only maps them).
  static VicregLossOptions FromConfig(const config::VicregConfig& v);
};

struct VicregLossOutput {
  at::Tensor total;       // scalar fp32, differentiable
  at::Tensor invariance;  // scalar, unweighted
  at::Tensor variance;    // scalar, unweighted
  at::Tensor covariance;  // scalar, unweighted
};

// The trainer's entry point. za, zb: [B, D] this rank's projector outputs (same B on every rank);
// invariance over the local batch, variance and covariance over the batch of all ranks of comm
// (null or world size 1: the local batch), collected as opts.global_stats says:
//   kAllReduce: comm::AllReducedCovariance of [za ; zb] (two all-reduces, [2D + 1] and [2, D, D];
//               none on one rank);
//   kGather: comm::GatherPairWithGrad (one all-gather of [B, 2D]), then the overload below on the
//            gathered batch (on one rank: the overload below on za, zb).
// Both give the same loss and gradients up to rounding (tests/model/loss_test.cc, tests/comm).
VicregLossOutput VicregLoss(const at::Tensor& za, const at::Tensor& zb, comm::Communicator* comm,
                            const VicregLossOptions& opts);

// The formula on a given global batch. za, zb: [B, D] this rank's projector outputs; za_all, zb_all: [N, D] the
// all-gathered global batch (differentiable gather; equal to za, zb on one rank). Inputs of any float dtype are upcast
// to fp32. invariance uses the local batch; variance and covariance the global one.
VicregLossOutput VicregLoss(const at::Tensor& za, const at::Tensor& zb, const at::Tensor& za_all,
                            const at::Tensor& zb_all, const VicregLossOptions& opts);

}  // namespace vicreg::train
