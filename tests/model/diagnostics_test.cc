// Collapse diagnostics against a numpy float64 reference, and on collapsed inputs.
#include "worker/train/diagnostics.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/step_report.h"
#include "tests/model/model_test_util.h"
#include "worker/comm/single_communicator.h"

namespace vicreg::train {
namespace {

using vicreg::testing::LoadTensors;
using vicreg::testing::RunPython;
using vicreg::testing::SaveTensors;
using vicreg::testing::TempDir;

TEST(Diagnostics, MatchNumpyReferenceOnRandomData) {
  at::manual_seed(14);
  // Mixed scales so that some dims are "collapsed" (std < 0.01) and cosine similarities are varied.
  auto scale = at::cat({at::full({3}, 0.001), at::linspace(0.1, 2.0, 13)}).to(at::kDouble);
  auto z = (at::randn({40, 16}, at::kDouble) * scale + 0.3).to(at::kFloat);
  auto f = (at::randn({40, 12}, at::kDouble) * at::linspace(0.01, 3.0, 12).to(at::kDouble)).to(at::kFloat);
  TempDir dir;
  SaveTensors(dir.file("in.pt"), {{"z", z}, {"f", f}});
  auto r = RunPython("reference_numerics.py", {"diagnostics", dir.file("in.pt"), dir.file("out.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = LoadTensors(dir.file("out.pt"));
  auto v = [&](const char* k) { return ref.at(k).item<double>(); };
  auto d = ComputeDiagnostics(z, f);
  auto rel = [](double got, double want) { return std::abs(got - want) / std::max(1e-12, std::abs(want)); };
  EXPECT_LT(rel(d.std_min, v("std_min")), 1e-4);
  EXPECT_LT(rel(d.std_mean, v("std_mean")), 1e-5);
  EXPECT_LT(rel(d.std_max, v("std_max")), 1e-5);
  EXPECT_LT(rel(d.pairwise_sim, v("pairwise_sim")), 1e-5);
  EXPECT_LT(rel(d.cov_offdiag_sq, v("cov_offdiag_sq")), 1e-4);
  EXPECT_DOUBLE_EQ(d.collapsed_dims, v("collapsed_dims"));
  EXPECT_DOUBLE_EQ(d.collapsed_dims, 3.0 / 16.0);
  EXPECT_LT(rel(d.rankme, v("rankme")), 1e-5);
  EXPECT_GT(d.rankme, 1.0);
  EXPECT_LT(d.rankme, 12.0);
}

TEST(Diagnostics, ConstantEmbeddingsAreFullyCollapsed) {
  auto row = at::randn({1, 32});
  auto z = row.expand({10, 32}).contiguous();
  auto f = at::randn({1, 8}).expand({10, 8}).contiguous();
  auto d = ComputeDiagnostics(z, f);
  EXPECT_LT(d.std_max, 1e-6);  // fp32 mean of identical rows is exact up to rounding
  EXPECT_GE(d.std_min, 0.0);
  EXPECT_EQ(d.collapsed_dims, 1.0);
  EXPECT_NEAR(d.pairwise_sim, 1.0, 1e-6);
  EXPECT_LT(d.cov_offdiag_sq, 1e-20);
  // Rank-one features: one non-zero singular value -> effective rank ~1.
  EXPECT_NEAR(d.rankme, 1.0, 1e-3);
}

TEST(Diagnostics, OrthogonalSamplesAndFullRankFeatures) {
  // z = identity rows: pairwise cosine 0; features = identity: all singular values equal -> rank D.
  auto z = at::eye(6);
  auto d = ComputeDiagnostics(z, at::eye(6));
  EXPECT_NEAR(d.pairwise_sim, 0.0, 1e-7);
  EXPECT_NEAR(d.rankme, 6.0, 1e-3);
  EXPECT_EQ(d.collapsed_dims, 0.0);
  // Zero features: rank 0 by definition (documented), not NaN.
  EXPECT_EQ(ComputeDiagnostics(z, at::zeros({6, 4})).rankme, 0.0);
  EXPECT_TRUE(std::isnan(ComputeDiagnostics(z, at::full({6, 4}, NAN)).rankme));
}

// One rank: the all-reduced statistics are the batch's own; same values as the direct computation
// (multi-rank: tests/comm, scenario vicreg_loss). Features with fewer rows than columns too, where the
// Gram F^T F has E - N zero eigenvalues that must not count as singular values.
TEST(Diagnostics, AllReducedStatisticsMatchTheDirectComputation) {
  at::manual_seed(15);
  auto c = comm::CreateSingleCommunicator(c10::Device(c10::kCPU));
  auto scale = at::cat({at::full({3}, 0.001), at::linspace(0.1, 2.0, 13)}).to(at::kDouble);
  auto z = at::randn({40, 16}, at::kDouble) * scale + 5.0;
  for (int64_t rows : {40, 7}) {
    auto f = at::randn({rows, 12}, at::kDouble) * at::linspace(0.01, 3.0, 12).to(at::kDouble);
    for (auto dt : {at::kDouble, at::kFloat}) {
      const double tol = dt == at::kDouble ? 1e-9 : 2e-4;
      auto zz = z.to(dt), ff = f.to(dt);
      auto want = ComputeDiagnostics(zz, ff);
      auto got = ComputeDiagnosticsAllReduced(zz, ff, *c);
      auto close = [&](double a, double b) { return std::abs(a - b) <= tol * std::max(1.0, std::abs(b)); };
      EXPECT_TRUE(close(got.std_min, want.std_min)) << got.std_min << " vs " << want.std_min;
      EXPECT_TRUE(close(got.std_mean, want.std_mean)) << got.std_mean << " vs " << want.std_mean;
      EXPECT_TRUE(close(got.std_max, want.std_max)) << got.std_max << " vs " << want.std_max;
      EXPECT_TRUE(close(got.pairwise_sim, want.pairwise_sim)) << got.pairwise_sim << " vs " << want.pairwise_sim;
      EXPECT_NEAR(got.cov_offdiag_sq, want.cov_offdiag_sq, tol * want.cov_offdiag_sq);
      EXPECT_EQ(got.collapsed_dims, want.collapsed_dims);
      EXPECT_TRUE(close(got.rankme, want.rankme)) << rows << " rows: " << got.rankme << " vs " << want.rankme;
    }
  }
  EXPECT_EQ(ComputeDiagnosticsAllReduced(z, at::zeros({40, 4}, at::kDouble), *c).rankme, 0.0);
  EXPECT_TRUE(std::isnan(ComputeDiagnosticsAllReduced(z, at::full({40, 4}, NAN, at::kDouble), *c).rankme));
}

TEST(Diagnostics, FillReportSetsEveryField) {
  Diagnostics d;
  d.std_min = 1, d.std_mean = 2, d.std_max = 3, d.pairwise_sim = 4, d.cov_offdiag_sq = 5, d.collapsed_dims = 6,
  d.rankme = 7;
  StepReport r;
  FillReport(d, &r);
  EXPECT_EQ(*r.std_min, 1);
  EXPECT_EQ(*r.std_mean, 2);
  EXPECT_EQ(*r.std_max, 3);
  EXPECT_EQ(*r.pairwise_sim, 4);
  EXPECT_EQ(*r.cov_offdiag_sq, 5);
  EXPECT_EQ(*r.collapsed_dims, 6);
  EXPECT_EQ(*r.rankme, 7);
}

}  // namespace
}  // namespace vicreg::train
