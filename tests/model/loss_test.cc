// VICReg loss: hand-computed values, numpy reference, finite-difference gradients, the seed
// reduction, fp32 under bf16/fp16 inputs, and the gathered (global) vs local semantics.
#include "worker/train/loss.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <functional>
#include <string>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/model/model_test_util.h"
#include "worker/comm/gather.h"

namespace vicreg::train {
namespace {

using vicreg::testing::LoadTensors;
using vicreg::testing::RunPython;
using vicreg::testing::SaveTensors;
using vicreg::testing::TempDir;

VicregLossOutput Local(const at::Tensor& za, const at::Tensor& zb, const VicregLossOptions& o = {}) {
  return VicregLoss(za, zb, za, zb, o);
}

double D(const at::Tensor& t) { return t.item<double>(); }

TEST(VicregLoss, HandComputedExample) {
  // za = [[1, 1], [-1, -1]], zb = [[1, -1], [-1, 1]] (both centered already).
  //   inv = mean of (0, 2, 0, -2)^2 = 8 / 4 = 2
  //   Var_j = (1 + 1) / (2 - 1) = 2 for every column of both views -> std = sqrt(2.0001) > 1 -> V = 0
  //   Cov(za) = [[2, 2], [2, 2]], Cov(zb) = [[2, -2], [-2, 2]] -> sum offdiag^2 = 8 each
  //   paper: C = 8/2 + 8/2 = 8;  seed: mean offdiag^2 = 8/2 = 4 per view, averaged = 4
  //   total = 25 * 2 + 25 * 0 + 1 * 8 = 58
  auto za = at::tensor({1.0, 1.0, -1.0, -1.0}, at::kDouble).view({2, 2});
  auto zb = at::tensor({1.0, -1.0, -1.0, 1.0}, at::kDouble).view({2, 2});
  auto out = Local(za, zb);
  EXPECT_DOUBLE_EQ(D(out.invariance), 2.0);
  EXPECT_DOUBLE_EQ(D(out.variance), 0.0);
  EXPECT_DOUBLE_EQ(D(out.covariance), 8.0);
  EXPECT_DOUBLE_EQ(D(out.total), 58.0);
  VicregLossOptions seed;
  seed.covariance_reduction = CovarianceReduction::kSeed;
  EXPECT_DOUBLE_EQ(D(Local(za, zb, seed).covariance), 4.0);
  EXPECT_DOUBLE_EQ(D(Local(za, zb, seed).total), 54.0);
}

TEST(VicregLoss, HandComputedVarianceHinge) {
  // za = [[0.5, 0], [-0.5, 0]]: Var = (0.5, 0) -> std = (sqrt(0.5001), sqrt(0.0001) = 0.01)
  //   hinge_a = ((1 - sqrt(0.5001)) + (1 - 0.01)) / 2; zb = 3 * za: Var = (4.5, 0) -> hinge_b = (0 + 0.99) / 2
  //   V = (hinge_a + hinge_b) / 2; Cov offdiag = 0 -> C = 0; inv = mean((za - zb)^2) = (1 + 1) / 4 = 0.5
  auto za = at::tensor({0.5, 0.0, -0.5, 0.0}, at::kDouble).view({2, 2});
  auto zb = za * 3;
  auto out = Local(za, zb);
  const double ha = ((1 - std::sqrt(0.5001)) + 0.99) / 2, hb = 0.99 / 2;
  EXPECT_NEAR(D(out.variance), (ha + hb) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(D(out.covariance), 0.0);
  EXPECT_DOUBLE_EQ(D(out.invariance), 0.5);
  EXPECT_NEAR(D(out.total), 25 * 0.5 + 25 * (ha + hb) / 2, 1e-12);
  VicregLossOptions o;
  o.gamma = 0.5, o.epsilon = 0.0, o.lambda_invariance = 2, o.mu_variance = 3, o.nu_covariance = 4;
  // gamma 0.5, eps 0: std_a = (sqrt(.5), 0), std_b = (sqrt(4.5), 0) -> hinge_a = (0 + 0.5)/2, hinge_b = 0.25
  auto out2 = Local(za, zb, o);
  EXPECT_NEAR(D(out2.variance), 0.25, 1e-15);
  EXPECT_NEAR(D(out2.total), 2 * 0.5 + 3 * 0.25, 1e-15);
}

TEST(VicregLoss, MatchesNumpyReferenceInFloat64) {
  at::manual_seed(9);
  auto za = at::randn({7, 5}, at::kDouble) * 0.7, zb = za + 0.3 * at::randn({7, 5}, at::kDouble);
  TempDir dir;
  SaveTensors(dir.file("in.pt"), {{"za", za}, {"zb", zb}});
  auto r = RunPython("reference_numerics.py", {"loss", dir.file("in.pt"), dir.file("out.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = LoadTensors(dir.file("out.pt"));
  auto out = Local(za, zb);
  EXPECT_NEAR(D(out.invariance), D(ref.at("invariance")), 1e-12);
  EXPECT_NEAR(D(out.variance), D(ref.at("variance")), 1e-12);
  EXPECT_NEAR(D(out.covariance), D(ref.at("covariance_paper")), 1e-12);
  VicregLossOptions seed;
  seed.covariance_reduction = CovarianceReduction::kSeed;
  EXPECT_NEAR(D(Local(za, zb, seed).covariance), D(ref.at("covariance_seed")), 1e-12);
}

TEST(VicregLoss, PaperCovarianceIsTwoTimesDMinusOneTimesSeed) {
  at::manual_seed(10);
  for (int64_t d : {2, 3, 16, 64}) {
    auto za = at::randn({9, d}, at::kDouble), zb = at::randn({9, d}, at::kDouble);
    VicregLossOptions seed;
    seed.covariance_reduction = CovarianceReduction::kSeed;
    const double paper = D(Local(za, zb).covariance), s = D(Local(za, zb, seed).covariance);
    EXPECT_NEAR(paper, 2.0 * (d - 1) * s, 1e-10 * paper) << "D=" << d;
  }
}

// Central finite differences in float64 over every input element, for both the local tensors and
// the gathered ones (world-1: the same tensor feeds both) and with a distinct gathered batch.
void GradCheck(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x0) {
  auto x = x0.clone().requires_grad_(true);
  auto g = torch::autograd::grad({f(x)}, {x})[0];
  const double h = 1e-6;
  for (int64_t i = 0; i < x0.numel(); ++i) {
    auto xp = x0.clone(), xm = x0.clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    const double fd = (D(f(xp)) - D(f(xm))) / (2 * h);
    EXPECT_NEAR(D(g.view(-1)[i]), fd, 1e-6 * std::max(1.0, std::abs(fd))) << "element " << i;
  }
}

TEST(VicregLoss, GradientsMatchFiniteDifferences) {
  at::manual_seed(11);
  // std around 0.5..1.5 so that some hinge terms are active and some not (away from the kink).
  auto za = at::randn({6, 4}, at::kDouble) * at::tensor({0.5, 0.8, 1.3, 1.6}, at::kDouble);
  auto zb = za + 0.5 * at::randn({6, 4}, at::kDouble);
  for (CovarianceReduction red : {CovarianceReduction::kPaper, CovarianceReduction::kSeed}) {
    VicregLossOptions o;
    o.covariance_reduction = red;
    GradCheck([&](const at::Tensor& a) { return VicregLoss(a, zb, a, zb, o).total; }, za);
    GradCheck([&](const at::Tensor& b) { return VicregLoss(za, b, za, b, o).total; }, zb);
    // gathered batch as its own input (what the differentiable all-gather feeds)
    auto za_all = at::cat({za, at::randn({3, 4}, at::kDouble)});
    GradCheck(
        [&](const at::Tensor& a) {
          return VicregLoss(za, zb, a, at::cat({zb, zb.narrow(0, 0, 3)}), o).total;
        },
        za_all);
  }
}

TEST(VicregLoss, ComputesInFloat32UnderReducedPrecisionInputs) {
  at::manual_seed(12);
  auto za = at::randn({16, 8}), zb = at::randn({16, 8});
  for (auto dt : {at::kBFloat16, at::kHalf}) {
    auto a = za.to(dt), b = zb.to(dt);
    auto out = Local(a, b);
    EXPECT_EQ(out.total.scalar_type(), at::kFloat);
    EXPECT_EQ(out.covariance.scalar_type(), at::kFloat);
    // Same as computing on the fp32 upcast of the rounded inputs (no reduced-precision arithmetic).
    auto ref = Local(a.to(at::kFloat), b.to(at::kFloat));
    EXPECT_EQ(D(out.total), D(ref.total));
    // The gradient flows back to the bf16/fp16 inputs.
    auto ar = a.clone().requires_grad_(true);
    Local(ar, b).total.backward();
    EXPECT_EQ(ar.grad().scalar_type(), dt);
  }
  EXPECT_EQ(Local(za, zb).total.scalar_type(), at::kFloat);
}

// World 2 simulated: rank r holds half the batch; invariance is local, variance and covariance are
// over the gathered batch. The mean of the ranks' losses equals the single-process loss on the whole
// batch, and so do the gradients (sum over ranks of d(L_r / 2)).
TEST(VicregLoss, GatheredHalvesEqualTheSingleBatchLoss) {
  at::manual_seed(13);
  auto za = at::randn({8, 6}, at::kDouble), zb = at::randn({8, 6}, at::kDouble);
  auto full = Local(za, zb);
  auto a = za.clone().requires_grad_(true);
  auto b = zb.clone().requires_grad_(true);
  double mean_loss = 0;
  at::Tensor total;
  for (int r = 0; r < 2; ++r) {
    auto out = VicregLoss(a.narrow(0, 4 * r, 4), b.narrow(0, 4 * r, 4), a, b, {});
    mean_loss += D(out.total) / 2;
    total = total.defined() ? total + out.total / 2 : out.total / 2;
  }
  EXPECT_NEAR(mean_loss, D(full.total), 1e-12);
  total.backward();
  auto a2 = za.clone().requires_grad_(true), b2 = zb.clone().requires_grad_(true);
  Local(a2, b2).total.backward();
  EXPECT_LT((a.grad() - a2.grad()).abs().max().item<double>(), 1e-12);
  EXPECT_LT((b.grad() - b2.grad()).abs().max().item<double>(), 1e-12);
}

// ---- train.vicreg.global_stats: allreduce (sufficient statistics) vs the gather formula ---------------------------

VicregLossOptions Mode(GlobalStats g, const std::string& reduction = "paper") {
  VicregLossOptions o;
  o.global_stats = g;
  o.covariance_reduction = reduction == "seed" ? CovarianceReduction::kSeed : CovarianceReduction::kPaper;
  return o;
}

double RelDiff(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(1e-300, want.abs().max().item<double>());
}

// Uneven columns: offsets far from 0 (where sum z^2 - N m^2 would cancel) and scales around gamma.
at::Tensor UnevenBatch(int64_t n, int64_t d, at::ScalarType t = at::kDouble) {
  auto offset = at::linspace(-50.0, 80.0, d).to(at::kDouble);
  auto scale = at::linspace(0.3, 1.7, d).to(at::kDouble);
  return (at::randn({n, d}, at::kDouble) * scale + offset).to(t);
}

TEST(VicregLoss, AllReducedCovarianceMatchesTheFormulaAndItsAutogradGradient) {
  at::manual_seed(20);
  auto z = UnevenBatch(2 * 9, 7).view({2, 9, 7});  // two views
  auto g = at::randn({2, 7, 7}, at::kDouble);      // an arbitrary, non-symmetric dL/dCov
  auto z1 = z.clone().requires_grad_(true);
  auto cov = comm::AllReducedCovariance(z1, nullptr);
  (cov * g).sum().backward();
  for (int v = 0; v < 2; ++v) {
    auto z2 = z[v].clone().requires_grad_(true);
    auto zc = z2 - z2.mean(0, true);
    auto ref = zc.t().mm(zc) / 8.0;
    (ref * g[v]).sum().backward();
    EXPECT_LT(RelDiff(cov[v].detach(), ref.detach()), 1e-12) << "view " << v;
    EXPECT_LT(RelDiff(z1.grad()[v], z2.grad()), 1e-10) << "view " << v;  // autograd through the mean included
  }
}

TEST(VicregLoss, AllReduceModeEqualsTheGatherFormulaInFloat64) {
  at::manual_seed(21);
  for (const char* red : {"paper", "seed"}) {
    auto za = UnevenBatch(12, 6), zb = za + 0.4 * at::randn({12, 6}, at::kDouble);
    auto a1 = za.clone().requires_grad_(true), b1 = zb.clone().requires_grad_(true);
    auto a2 = za.clone().requires_grad_(true), b2 = zb.clone().requires_grad_(true);
    auto ar = VicregLoss(a1, b1, nullptr, Mode(GlobalStats::kAllReduce, red));
    auto ga = VicregLoss(a2, b2, a2, b2, Mode(GlobalStats::kGather, red));  // the gather formula
    for (auto [x, y] : {std::pair{ar.total, ga.total},
                        {ar.invariance, ga.invariance},
                        {ar.variance, ga.variance},
                        {ar.covariance, ga.covariance}})
      EXPECT_LT(RelDiff(x.detach(), y.detach()), 1e-6 * 1e-3) << red;  // 1e-9 relative
    EXPECT_GT(D(ar.variance), 0.0) << "some hinge terms must be active";
    ar.total.backward();
    ga.total.backward();
    EXPECT_LT(RelDiff(a1.grad(), a2.grad()), 1e-9) << red;
    EXPECT_LT(RelDiff(b1.grad(), b2.grad()), 1e-9) << red;
    // The gather mode of the communicator entry point on one rank is the formula itself.
    EXPECT_EQ(D(VicregLoss(za, zb, nullptr, Mode(GlobalStats::kGather, red)).total), D(ga.total));
  }
}

TEST(VicregLoss, AllReduceModeGradientsMatchFiniteDifferences) {
  at::manual_seed(22);
  auto za = at::randn({6, 4}, at::kDouble) * at::tensor({0.5, 0.8, 1.3, 1.6}, at::kDouble) + 3.0;
  auto zb = za + 0.5 * at::randn({6, 4}, at::kDouble);
  for (const char* red : {"paper", "seed"}) {
    const auto o = Mode(GlobalStats::kAllReduce, red);
    GradCheck([&](const at::Tensor& a) { return VicregLoss(a, zb, nullptr, o).total; }, za);
    GradCheck([&](const at::Tensor& b) { return VicregLoss(za, b, nullptr, o).total; }, zb);
  }
}

// fp32: centring on the mean before the Gram keeps the covariance accurate where the columns sit far
// from 0 (a raw sum of squares minus N m^2 would lose every digit at offset 1000 and std 1).
TEST(VicregLoss, AllReduceModeIsAccurateInFloat32WithLargeOffsets) {
  at::manual_seed(23);
  auto za = at::randn({64, 16}, at::kDouble) * 0.9 + 1000.0, zb = za + 0.3 * at::randn({64, 16}, at::kDouble);
  auto ref = VicregLoss(za, zb, za, zb, {});  // fp64
  auto ar = VicregLoss(za.to(at::kFloat), zb.to(at::kFloat), nullptr, Mode(GlobalStats::kAllReduce));
  auto ga = VicregLoss(za.to(at::kFloat), zb.to(at::kFloat), nullptr, Mode(GlobalStats::kGather));
  EXPECT_EQ(ar.total.scalar_type(), at::kFloat);
  for (const auto* out : {&ar, &ga}) {
    EXPECT_NEAR(D(out->variance), D(ref.variance), 1e-4 * std::abs(D(ref.variance)) + 1e-6);
    EXPECT_NEAR(D(out->covariance), D(ref.covariance), 1e-3 * D(ref.covariance));
  }
  // Same inputs: the modes agree with each other as closely as with the fp64 reference.
  EXPECT_NEAR(D(ar.total), D(ga.total), 1e-4 * D(ref.total));
  // bf16 inputs are upcast: the statistics are fp32, the gradient comes back in bf16.
  auto a = za.to(at::kBFloat16).requires_grad_(true);
  VicregLoss(a, zb.to(at::kBFloat16), nullptr, {}).total.backward();
  EXPECT_EQ(a.grad().scalar_type(), at::kBFloat16);
}

// Users get config::Validate's error (naming the field and the choices) before any FromConfig runs;
// FromConfig given such a value anyway is an internal error.
void ExpectRefusedByValidateFirst(const config::JobConfig& job, const std::string& field, const std::string& choice) {
  auto errors = config::Validate(job);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, field);
  EXPECT_NE(errors[0].message.find(choice), std::string::npos) << errors[0].message;
  EXPECT_THROW(VicregLossOptions::FromConfig(job.train.vicreg), InternalError);
}

TEST(VicregLoss, OptionsFromConfigMapGlobalStats) {
  config::VicregConfig v;
  EXPECT_EQ(v.global_stats, "allreduce");
  EXPECT_EQ(VicregLossOptions::FromConfig(v).global_stats, GlobalStats::kAllReduce);
  v.global_stats = "gather";
  EXPECT_EQ(VicregLossOptions::FromConfig(v).global_stats, GlobalStats::kGather);
  config::JobConfig job;
  job.train.vicreg.global_stats = "reduce";
  ExpectRefusedByValidateFirst(job, "train.vicreg.global_stats", "allreduce");
}

TEST(VicregLoss, OptionsFromConfigMapTheReduction) {
  config::VicregConfig v;
  v.lambda_invariance = 5;
  auto o = VicregLossOptions::FromConfig(v);
  EXPECT_EQ(o.lambda_invariance, 5);
  EXPECT_EQ(o.covariance_reduction, CovarianceReduction::kPaper);
  v.covariance_reduction = "seed";
  EXPECT_EQ(VicregLossOptions::FromConfig(v).covariance_reduction, CovarianceReduction::kSeed);
  config::JobConfig job;
  job.train.vicreg.covariance_reduction = "mean";
  ExpectRefusedByValidateFirst(job, "train.vicreg.covariance_reduction", "paper");
}

TEST(VicregLoss, RejectsMismatchedShapes) {
  auto za = at::randn({4, 3});
  EXPECT_THROW(VicregLoss(za, at::randn({4, 2}), za, za, {}), InternalError);
  EXPECT_THROW(VicregLoss(za, za, at::randn({1, 3}), at::randn({1, 3}), {}), InternalError);
  EXPECT_THROW(VicregLoss(za, at::randn({4, 2}), nullptr, {}), InternalError);
  EXPECT_THROW(VicregLoss(at::randn({1, 3}), at::randn({1, 3}), nullptr, {}), InternalError);
}

}  // namespace
}  // namespace vicreg::train
