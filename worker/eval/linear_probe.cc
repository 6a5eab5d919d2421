#include "worker/eval/linear_probe.h"

#include <ATen/ATen.h>
#include <torch/optim/lbfgs.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/errors.h"
#include "worker/eval/topk.h"

namespace vicreg::eval {
namespace {

void CheckInputs(const at::Tensor& x, const at::Tensor& y, int num_classes) {
  if (x.dim() != 2) throw UserError("linear probe: features must be [N, D], got dim " + std::to_string(x.dim()));
  if (x.size(0) == 0) throw UserError("linear probe: no training samples");
  if (y.dim() != 1 || y.size(0) != x.size(0))
    throw UserError("linear probe: labels must be [N] with N = " + std::to_string(x.size(0)));
  if (num_classes < 1) throw UserError("linear probe: num_classes must be >= 1, got " + std::to_string(num_classes));
  const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
  if (lo < 0 || hi >= num_classes)
    throw UserError("linear probe: labels must lie in [0, " + std::to_string(num_classes) + "), found " +
                    std::to_string(lo < 0 ? lo : hi) + " (an unlabeled split cannot be probed)");
  if (!at::isfinite(x).all().item<bool>()) throw UserError("linear probe: features contain NaN or Inf");
}

// Curvature of the mean cross-entropy per unit feature variance, roughly p(1 - p) at the start
// (uniform p = 1/C); only used to scale the preconditioner.
constexpr double kCurvature = 0.1;

}  // namespace

// One l2 in the rotated basis xr = xs U (eigenvalues s, or undefined = identity). Solved in
// coordinates scaled by a_k = 1 / sqrt(s_k + l2 / c), where the Hessian of data term + penalty is
// about c * I in every direction; *w [C, k] is kept (and warm-started) in the unscaled basis.
LinearFitInfo FitRotated(const at::Tensor& xr, const at::Tensor& s, const at::Tensor& y, int num_classes, double l2,
                         const LinearProbeOptions& opts, at::Tensor* w, at::Tensor* b) {
  // xr: [N, k], s: [k], y: [N] -> *w [C, k], *b [C]
  if (!s.defined()) return FitSoftmaxRegression(xr, y, num_classes, l2, opts, w, b);
  const auto a = (s + l2 / kCurvature).rsqrt();         // [k]
  const auto z = (xr * a).contiguous();                 // [N, k]
  at::Tensor v = w->defined() ? *w / a : at::Tensor();  // [C, k]
  auto info = FitSoftmaxRegression(z, y, num_classes, l2, opts, &v, b, a * a);
  *w = v * a;
  return info;
}

at::Tensor LinearClassifier::Scores(const at::Tensor& x) const {
  // x: [M, D] -> [M, C]
  VICREG_CHECK(weight_.defined(), "LinearClassifier used before FitLinearProbe");
  auto xs = (x.to(at::kFloat) - mean_) / std_;
  return at::addmm(bias_, xs, weight_.t());
}

LinearFitInfo FitSoftmaxRegression(const at::Tensor& xs, const at::Tensor& y, int num_classes, double l2,
                                   const LinearProbeOptions& opts, at::Tensor* w, at::Tensor* b,
                                   const at::Tensor& penalty_in) {
  // xs: [N, D] fp32, y: int64 [N]; w: [C, D], b: [C]; penalty_in: [D]
  const int64_t n = xs.size(0), d = xs.size(1);
  auto fopts = xs.options();
  at::Tensor W = (w->defined() ? w->detach().clone() : at::zeros({num_classes, d}, fopts)).requires_grad_(true);
  at::Tensor B = (b->defined() ? b->detach().clone() : at::zeros({num_classes}, fopts)).requires_grad_(true);
  const auto yy = y.unsqueeze(1);  // [N, 1]
  const auto minus_one = at::full({n, 1}, -1.0 / static_cast<double>(n), fopts);
  const double inv_n = 1.0 / static_cast<double>(n);
  const at::Tensor penalty = (penalty_in.defined() ? penalty_in.to(at::kFloat) : at::ones({d}, fopts)).mul(l2);  // [D]

  // Analytic loss and gradient (no autograd graph): the closure sets W.grad and B.grad.
  auto closure = [&]() -> at::Tensor {
    at::NoGradGuard no_grad;
    auto logits = at::addmm(B, xs, W.t());   // [N, C]
    auto logp = at::log_softmax(logits, 1);  // [N, C]
    auto nll = -logp.gather(1, yy).sum() * inv_n;
    auto pw = W * penalty;  // [C, D]
    auto loss = nll + 0.5 * (pw * W).sum();
    auto g = logp.exp_().mul_(inv_n).scatter_add_(1, yy, minus_one);  // (P - Y) / N  [N, C]
    W.mutable_grad() = at::addmm(pw, g.t(), xs);                      // [C, D]
    B.mutable_grad() = g.sum(0);                                      // [C]
    return loss;
  };

  torch::optim::LBFGS opt({W, B}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(opts.max_iter)
                                      .max_eval(opts.max_iter * 5 / 4)
                                      .tolerance_grad(opts.tolerance_grad)
                                      .tolerance_change(opts.tolerance_change)
                                      .history_size(opts.history_size)
                                      .line_search_fn("strong_wolfe"));
  opt.step(closure);

  LinearFitInfo info;
  info.l2 = l2;
  info.loss = closure().item<double>();
  info.max_abs_grad = std::max(W.grad().abs().max().item<double>(), B.grad().abs().max().item<double>());
  for (const auto& [key, state] : opt.state()) {
    (void)key;
    info.function_evals = static_cast<const torch::optim::LBFGSParamState&>(*state).func_evals();
  }
  *w = W.detach();
  *b = B.detach();
  return info;
}

LinearClassifier FitLinearProbe(const at::Tensor& x_in, const at::Tensor& y_in, int num_classes,
                                const LinearProbeOptions& opts) {
  // x_in: [N, D], y_in: [N]
  CheckInputs(x_in, y_in, num_classes);
  if (opts.l2_grid.empty()) throw UserError("linear probe: l2_grid must not be empty");
  for (double v : opts.l2_grid)
    if (!(v >= 0) || !std::isfinite(v))
      throw UserError("linear probe: l2 values must be >= 0, got " + std::to_string(v));
  const auto x = x_in.to(at::kFloat).contiguous();
  const auto y = y_in.to(at::kLong).contiguous();
  const int64_t n = x.size(0);

  LinearClassifier clf;
  clf.mean_ = x.mean(0);                    // [D]
  clf.std_ = x.std(0, /*unbiased=*/false);  // [D]
  clf.std_ = at::where(clf.std_ < 1e-6, at::ones_like(clf.std_), clf.std_);
  at::Tensor xs = ((x - clf.mean_) / clf.std_).contiguous();  // [N, D]

  // Rotate into the eigenbasis of the training covariance (see the header): xr = xs U.
  at::Tensor u;        // [D, k]
  at::Tensor s;        // [k] eigenvalues; undefined = no preconditioning
  at::Tensor xr = xs;  // [N, k]
  const int64_t d = x.size(1);
  if (std::min(n, d) <= opts.precondition_max_dim) {
    // Eigenvalues below 1e-7 * max: no training variance there; the optimum has W = 0 along them.
    auto keep_of = [](const at::Tensor& ev) {
      return ev.gt(std::max(ev.max().item<double>(), 1e-30) * 1e-7).nonzero().squeeze(1);
    };
    if (d <= n) {  // covariance [D, D] = U S U^T
      const auto cov = at::mm(xs.t(), xs).to(at::kDouble).div_(static_cast<double>(n));
      auto [evals, evecs] = at::linalg_eigh(cov);
      const auto keep = keep_of(evals);
      s = evals.index_select(0, keep).to(at::kFloat);               // [k]
      u = evecs.index_select(1, keep).to(at::kFloat).contiguous();  // [D, k]
      xr = at::mm(xs, u).contiguous();                              // [N, k]
    } else {  // fewer samples than dims: Gram [N, N] = V L V^T, U = xs^T V (n L)^-1/2
      const auto gram = at::mm(xs, xs.t()).to(at::kDouble).div_(static_cast<double>(n));
      auto [evals, evecs] = at::linalg_eigh(gram);
      const auto keep = keep_of(evals);
      const auto l = evals.index_select(0, keep);             // [k]
      const auto v = evecs.index_select(1, keep);             // [N, k]
      const auto root = (l * static_cast<double>(n)).sqrt();  // [k]
      s = l.to(at::kFloat);
      u = (at::mm(xs.t().to(at::kDouble), v) / root).to(at::kFloat).contiguous();  // [D, k]
      xr = (v * root).to(at::kFloat).contiguous();                                 // [N, k] = xs U
    }
  }
  xs = at::Tensor();

  // Strongest regularization first: each fit warm-starts from the previous one (a path).
  std::vector<double> grid = opts.l2_grid;
  std::sort(grid.begin(), grid.end(), std::greater<double>());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());

  at::Tensor w, b;  // w: [C, k] in the rotated basis
  double chosen = grid[grid.size() / 2];
  const int64_t n_hold = static_cast<int64_t>(std::llround(opts.holdout_fraction * static_cast<double>(n)));
  if (grid.size() > 1 && n_hold >= 1 && n - n_hold >= 1) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(opts.seed);
    const auto perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
    const auto hold_idx = perm.narrow(0, 0, n_hold), fit_idx = perm.narrow(0, n_hold, n - n_hold);
    const auto xf = xr.index_select(0, fit_idx).contiguous(), yf = y.index_select(0, fit_idx);
    const auto xh = xr.index_select(0, hold_idx).contiguous(), yh = y.index_select(0, hold_idx);
    double best = -1;
    at::Tensor best_w, best_b;
    LinearProbeOptions sel = opts;
    sel.tolerance_grad = std::max(opts.tolerance_grad, opts.selection_tolerance_grad);
    for (double l2 : grid) {
      const auto t0 = std::chrono::steady_clock::now();
      auto info = FitRotated(xf, s, yf, num_classes, l2, sel, &w, &b);
      info.holdout_top1 = TopKAccuracy(at::addmm(b, xh, w.t()), yh, 1);
      if (opts.verbose)
        std::fprintf(stderr, "linear probe: l2=%g holdout top1=%.4f loss=%.5f max|grad|=%.2e evals=%lld (%.1fs)\n", l2,
                     info.holdout_top1, info.loss, info.max_abs_grad, static_cast<long long>(info.function_evals),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      clf.fits.push_back(info);
      if (info.holdout_top1 > best) {  // strict: on ties the stronger regularization stays
        best = info.holdout_top1;
        chosen = l2;
        best_w = w;
        best_b = b;
      }
    }
    w = best_w;
    b = best_b;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto info = FitRotated(xr, s, y, num_classes, chosen, opts, &w, &b);
  if (opts.verbose)
    std::fprintf(
        stderr, "linear probe: refit on all %lld samples with l2=%g loss=%.5f max|grad|=%.2e evals=%lld (%.1fs)\n",
        static_cast<long long>(n), chosen, info.loss, info.max_abs_grad, static_cast<long long>(info.function_evals),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  clf.fits.push_back(info);
  clf.l2 = chosen;
  clf.weight_ = u.defined() ? at::mm(w, u.t()) : w;  // [C, D] on standardized features
  clf.bias_ = b;
  return clf;
}

}  // namespace vicreg::eval
