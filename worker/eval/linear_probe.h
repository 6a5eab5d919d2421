// Linear probe: multinomial logistic regression on standardized frozen features, fit to
// convergence with full-batch L-BFGS (strong-Wolfe line search). The L2 strength is chosen on a
// held-out part of the training set from a small grid, then the model is refit on all of it.
//
//   objective(W, b) = mean_i CE(softmax(W x_i + b), y_i) + l2 / 2 * ||W||^2    (b not penalized)
//
// Features are standardized with the training mean/std (dims with std < 1e-6 are left unscaled).
//
// Conditioning: pixels and SSL features are strongly correlated, which makes plain L-BFGS need
// thousands of iterations. When min(N, D) <= precondition_max_dim the problem is solved in the
// eigenbasis of the standardized training covariance (via the N x N Gram matrix when N < D) (eigenvalues s_k;
// directions with s_k <= 1e-7 * max carry no training variance, where the optimum is 0, and are dropped), each
// direction scaled by 1 / sqrt(s_k + l2 / c) so that the Hessian is about c * I; the penalty is rewritten so that the
// objective above is unchanged (W = V diag(a) U^T).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace vicreg::eval {

struct LinearProbeOptions {
  std::vector<double> l2_grid = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1};  // one value: no selection
  double holdout_fraction = 0.1;           // part of train used to pick l2 (stratification not needed: random)
  int max_iter = 1000;                     // L-BFGS iterations per fit
  double tolerance_grad = 1e-5;            // final fit: stop when max |grad| <= this
  double selection_tolerance_grad = 1e-4;  // the held-out selection fits (they only rank l2 values)
  double tolerance_change = 1e-9;          // ... or when loss / step changes fall below this
  int history_size = 20;
  int64_t precondition_max_dim = 4096;  // precondition when min(N, D) <= this (O(N D min(N,D)) once)
  uint64_t seed = 0;                    // holdout split
  bool verbose = false;                 // one stderr line per fit
};

// One fit's outcome (exposed for tests and logs).
struct LinearFitInfo {
  double l2 = 0;
  double loss = 0;          // final objective
  double max_abs_grad = 0;  // at the solution
  int64_t function_evals = 0;
  double holdout_top1 = -1;  // -1: not a selection fit
};

class LinearClassifier {
 public:
  LinearClassifier() = default;
  // Scores (logits) for raw (unstandardized) features: x [M, D] -> [M, C].
  at::Tensor Scores(const at::Tensor& x) const;
  int num_classes() const { return static_cast<int>(weight_.size(0)); }

  at::Tensor weight_;               // [C, D], on standardized features
  at::Tensor bias_;                 // [C]
  at::Tensor mean_;                 // [D]
  at::Tensor std_;                  // [D]
  double l2 = 0;                    // the chosen strength
  std::vector<LinearFitInfo> fits;  // the selection fits, then the final refit
};

// x: [N, D] float, y: int64 [N] in [0, num_classes). Throws UserError on bad labels / empty input.
LinearClassifier FitLinearProbe(const at::Tensor& x, const at::Tensor& y, int num_classes,
                                const LinearProbeOptions& opts = {});

// Lower level: minimizes mean CE(W x + b) + l2/2 * sum_j penalty_j ||W[:, j]||^2 over xs [N, D]
// (penalty [D]; undefined = ones), starting from (*w, *b) when defined (warm start). Returns the
// info; writes the solution to *w [C, D] and *b [C].
LinearFitInfo FitSoftmaxRegression(const at::Tensor& xs, const at::Tensor& y, int num_classes, double l2,
                                   const LinearProbeOptions& opts, at::Tensor* w, at::Tensor* b,
                                   const at::Tensor& penalty = {});

}  // namespace vicreg::eval
