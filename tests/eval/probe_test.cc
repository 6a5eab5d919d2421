// Linear probe (multinomial logistic regression, L-BFGS) on synthetic features.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/errors.h"
#include "worker/eval/linear_probe.h"
#include "worker/eval/topk.h"

namespace vicreg::eval {
namespace {

// Gaussian blobs: class c centered at `sep` * e_c (plus noise), in D dims. x: [N, D], y: [N]
void Blobs(int64_t n, int64_t d, int c, double sep, uint64_t seed, at::Tensor* x, at::Tensor* y) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  *y = at::randint(c, {n}, gen, at::TensorOptions().dtype(at::kLong));
  auto centers = at::zeros({c, d});
  for (int i = 0; i < c; ++i) centers[i][i % d] = sep;
  *x = centers.index_select(0, *y) + at::randn({n, d}, gen, at::TensorOptions()) +
       3.0;  // offset: standardization matters
}

TEST(LinearProbe, SeparableBlobsReachAlmostPerfectAccuracy) {
  at::Tensor x, y, xt, yt;
  Blobs(3000, 32, 10, 8.0, 1, &x, &y);
  Blobs(1000, 32, 10, 8.0, 2, &xt, &yt);
  auto clf = FitLinearProbe(x, y, 10);
  EXPECT_GE(TopKAccuracy(clf.Scores(xt), yt, 1), 0.99);
  EXPECT_GE(TopKAccuracy(clf.Scores(xt), yt, 5), TopKAccuracy(clf.Scores(xt), yt, 1));
  // Selection fits for each grid value + the refit; the refit converged (small gradient).
  ASSERT_EQ(clf.fits.size(), LinearProbeOptions{}.l2_grid.size() + 1);
  EXPECT_LT(clf.fits.back().max_abs_grad, 1e-3);
}

TEST(LinearProbe, ShuffledLabelsGiveChance) {
  at::Tensor x, y, xt, yt;
  Blobs(3000, 32, 10, 8.0, 3, &x, &y);
  Blobs(2000, 32, 10, 8.0, 4, &xt, &yt);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto y_shuffled = y.index_select(0, at::randperm(y.size(0), gen, at::TensorOptions().dtype(at::kLong)));
  auto clf = FitLinearProbe(x, y_shuffled, 10);
  const double top1 = TopKAccuracy(clf.Scores(xt), yt, 1);
  EXPECT_LT(top1, 0.2);
  EXPECT_GT(top1, 0.0);
}

TEST(LinearProbe, ConvergesToTheOptimumOfTheRegularizedObjective) {
  // Two classes, 1-D, no noise: for l2 > 0 the solution is finite; check the gradient vanishes
  // and that a different start converges to the same weights (strictly convex objective).
  at::Tensor x, y;
  Blobs(500, 4, 3, 1.0, 6, &x, &y);
  auto xs = (x - x.mean(0)) / x.std(0, false);
  LinearProbeOptions o;
  o.tolerance_grad = 1e-6;
  at::Tensor w1, b1, w2 = at::randn({3, 4}), b2 = at::randn({3});
  auto i1 = FitSoftmaxRegression(xs, y, 3, 1e-2, o, &w1, &b1);
  auto i2 = FitSoftmaxRegression(xs, y, 3, 1e-2, o, &w2, &b2);
  EXPECT_LT(i1.max_abs_grad, 1e-4);
  EXPECT_LT((w1 - w2).abs().max().item<double>(), 1e-3);
  EXPECT_NEAR(i1.loss, i2.loss, 1e-6);
}

// The preconditioned solve (covariance eigenbasis for N >= D, Gram matrix for N < D) reaches the
// same optimum of the same objective as plain L-BFGS on the standardized features.
void ExpectSameOptimum(int64_t n, int64_t d, double l2) {
  at::Tensor x, y;
  Blobs(n, d, 4, 1.0, 21 + n, &x, &y);
  x = x + 0.5 * x.narrow(1, 0, 1);  // correlated dims: the case preconditioning is for
  LinearProbeOptions o;
  o.l2_grid = {l2};
  o.tolerance_grad = 1e-7;
  o.max_iter = 5000;
  auto pre = FitLinearProbe(x, y, 4, o);
  o.precondition_max_dim = 0;
  auto plain = FitLinearProbe(x, y, 4, o);
  EXPECT_NEAR(pre.fits.back().loss, plain.fits.back().loss, 1e-5) << n << "x" << d;
  EXPECT_LT((pre.Scores(x) - plain.Scores(x)).abs().max().item<double>(), 2e-2) << n << "x" << d;
}

TEST(LinearProbe, PreconditioningKeepsTheObjective) {
  ExpectSameOptimum(400, 24, 1e-3);  // covariance route
  ExpectSameOptimum(30, 60, 1e-2);   // Gram route (fewer samples than dims)
}

TEST(LinearProbe, MatchesScikitLearnLogisticRegression) {
  // sklearn's multinomial LogisticRegression(C) minimizes sum CE + ||W||^2 / (2 C), i.e. ours
  // with l2 = 1 / (C N). Same data, same objective value at the optimum.
  if (std::system("/usr/bin/python3 -c 'import sklearn' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no sklearn";
  at::Tensor x, y;
  Blobs(600, 12, 5, 1.5, 31, &x, &y);
  const double l2 = 1e-3;
  LinearProbeOptions o;
  o.l2_grid = {l2};
  o.tolerance_grad = 1e-7;
  auto clf = FitLinearProbe(x, y, 5, o);
  const std::string dir = ::testing::TempDir();
  const std::string xf = dir + "/probe_x.bin", yf = dir + "/probe_y.bin";
  auto xs = ((x - clf.mean_) / clf.std_).contiguous();
  FILE* f = std::fopen(xf.c_str(), "wb");
  std::fwrite(xs.data_ptr<float>(), sizeof(float), xs.numel(), f);
  std::fclose(f);
  f = std::fopen(yf.c_str(), "wb");
  std::fwrite(y.data_ptr<int64_t>(), sizeof(int64_t), y.numel(), f);
  std::fclose(f);
  const std::string cmd = "/usr/bin/python3 " + std::string(VICREG_SOURCE_DIR) + "/tests/eval/sklearn_logreg.py " + xf +
                          " " + yf + " 12 " + std::to_string(l2);
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  double sk_loss = -1;
  ASSERT_EQ(std::fscanf(p, "%lf", &sk_loss), 1);
  ASSERT_EQ(pclose(p), 0);
  EXPECT_NEAR(clf.fits.back().loss, sk_loss, 1e-5);
}

TEST(LinearProbe, StrongerRegularizationWinsOnlyWhenItHelps) {
  // A single-value grid uses that value; a grid with an absurd value never picks it.
  at::Tensor x, y;
  Blobs(1000, 16, 5, 6.0, 7, &x, &y);
  LinearProbeOptions o;
  o.l2_grid = {1e-4};
  EXPECT_EQ(FitLinearProbe(x, y, 5, o).l2, 1e-4);
  o.l2_grid = {1e-4, 1e3};
  EXPECT_EQ(FitLinearProbe(x, y, 5, o).l2, 1e-4);
}

TEST(LinearProbe, RejectsBadInput) {
  at::Tensor x = at::randn({10, 3}), y = at::zeros({10}, at::kLong);
  y[3] = 7;
  try {
    FitLinearProbe(x, y, 5);
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("[0, 5)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FitLinearProbe(x, at::zeros({9}, at::kLong), 5), UserError);
  EXPECT_THROW(FitLinearProbe(at::randn({0, 3}), at::zeros({0}, at::kLong), 5), UserError);
  auto bad = x.clone();
  bad[0][0] = std::nan("");
  EXPECT_THROW(FitLinearProbe(bad, at::zeros({10}, at::kLong), 5), UserError);
}

TEST(TopK, TiesGoToTheLowerClassIndex) {
  auto scores = at::tensor({0.5f, 0.5f, 0.1f, 0.5f}).view({1, 4});
  EXPECT_EQ(TopKClasses(scores, 1).item<int64_t>(), 0);
  EXPECT_DOUBLE_EQ(TopKAccuracy(scores, at::tensor({int64_t{0}}), 1), 1.0);
  EXPECT_DOUBLE_EQ(TopKAccuracy(scores, at::tensor({int64_t{3}}), 1), 0.0);
  EXPECT_DOUBLE_EQ(TopKAccuracy(scores, at::tensor({int64_t{3}}), 2), 0.0);  // top-2 = {0, 1}
  EXPECT_DOUBLE_EQ(TopKAccuracy(scores, at::tensor({int64_t{3}}), 3), 1.0);
  EXPECT_DOUBLE_EQ(TopKAccuracy(scores, at::tensor({int64_t{2}}), 9), 1.0);  // k clamped to C
}

}  // namespace
}  // namespace vicreg::eval
