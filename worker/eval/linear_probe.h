// Linear probe: multinomial logistic regression on standardized frozen features, fit to
// convergence with full-batch L-BFGS (strong-Wolfe line search). The L2 strength is chosen on a
// held-out part of the training set from a small grid, then the model is refit on all of it.
//
//   objective(W, b) = mean_i CE(softmax(W x_i + b), y_i) + l2 / 2 * ||W||^2    (b not penalized)
//
// Features are standardized with the training mean/std (dims with std < 1e-6 are left unscaled).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace vicreg::eval {

struct LinearProbeOptions {
  std::vector<double> l2_grid = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1};  // one value: no selection
  double holdout_fraction = 0.1;     // part of train used to pick l2 (stratification not needed: random)
  int max_iter = 1000;               // L-BFGS iterations per fit
  double tolerance_grad = 1e-5;      // stop when max |grad| <= this
  double tolerance_change = 1e-9;    // ... or when loss / step changes fall below this
  int history_size = 20;
  uint64_t seed = 0;                 // holdout split
  bool verbose = false;              // one stderr line per fit
};

// One fit's outcome (exposed for tests and logs).
struct LinearFitInfo {
  double l2 = 0;
  double loss = 0;                   // final objective
  double max_abs_grad = 0;           // at the solution
  int64_t function_evals = 0;
  double holdout_top1 = -1;          // -1: not a selection fit
};

class LinearClassifier {
 public:
  LinearClassifier() = default;
  // Scores (logits) for raw (unstandardized) features: x [M, D] -> [M, C].
  at::Tensor Scores(const at::Tensor& x) const;
  int num_classes() const { return static_cast<int>(weight_.size(0)); }

  at::Tensor weight_;  // [C, D], on standardized features
  at::Tensor bias_;    // [C]
  at::Tensor mean_;    // [D]
  at::Tensor std_;     // [D]
  double l2 = 0;                          // the chosen strength
  std::vector<LinearFitInfo> fits;        // the selection fits, then the final refit
};

// x: [N, D] float, y: int64 [N] in [0, num_classes). Throws UserError on bad labels / empty input.
LinearClassifier FitLinearProbe(const at::Tensor& x, const at::Tensor& y, int num_classes,
                                const LinearProbeOptions& opts = {});

// Lower level: fits W, b on already standardized xs [N, D] for one l2, starting from (w0, b0)
// when defined (warm start). Returns the info; writes the solution to *w [C, D] and *b [C].
LinearFitInfo FitSoftmaxRegression(const at::Tensor& xs, const at::Tensor& y, int num_classes,
                                   double l2, const LinearProbeOptions& opts, at::Tensor* w,
                                   at::Tensor* b);

}  // namespace vicreg::eval
