// gemm.h (oneDNN / BLAS row-major GEMM) and the Linear autograd function against ATen.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/model/model_test_util.h"
#include "worker/model/gemm.h"
#include "worker/model/linear.h"

namespace vicreg::model {
namespace {

using vicreg::testing::MaxAbsDiff;

template <typename T>
void CheckGemm(at::ScalarType dt, double tol) {
  at::manual_seed(41);
  const int64_t M = 7, N = 5, K = 9;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Stored with padding columns (leading dimension > logical width) to exercise lda/ldb/ldc.
      auto A = at::randn({ta ? K : M, (ta ? M : K) + 3}, dt);
      auto B = at::randn({tb ? N : K, (tb ? K : N) + 2}, dt);
      auto C = at::randn({M, N + 4}, dt);
      auto a = A.narrow(1, 0, ta ? M : K), b = B.narrow(1, 0, tb ? K : N);
      auto expected = 0.5 * C.narrow(1, 0, N) + 2.0 * at::mm(ta ? a.t() : a, tb ? b.t() : b);
      GemmRowMajor(ta, tb, M, N, K, T(2), A.data_ptr<T>(), A.size(1), B.data_ptr<T>(), B.size(1), T(0.5),
                   C.data_ptr<T>(), C.size(1));
      EXPECT_LT(MaxAbsDiff(C.narrow(1, 0, N), expected), tol) << "ta=" << ta << " tb=" << tb;
    }
}

TEST(Gemm, FloatAllTransposesAndLeadingDimensions) {
  ASSERT_TRUE(HaveFloatGemm());
  CheckGemm<float>(at::kFloat, 1e-5);
}
TEST(Gemm, DoubleAllTransposesAndLeadingDimensions) {
  ASSERT_TRUE(HaveDoubleGemm());
  CheckGemm<double>(at::kDouble, 1e-12);
}

void CheckLinear(at::ScalarType dt, bool bias, bool x_requires_grad, double tol) {
  at::manual_seed(42);
  auto x = at::randn({2, 3, 6}, dt).requires_grad_(x_requires_grad);
  auto w = at::randn({4, 6}, dt).requires_grad_(true);
  auto b = bias ? at::randn({4}, dt).requires_grad_(true) : at::Tensor();
  auto r = at::randn({2, 3, 4}, dt);
  auto y1 = Linear(x, w, b);
  auto y2 = at::linear(x, w, b);
  ASSERT_EQ(y1.sizes(), y2.sizes());
  EXPECT_LT(MaxAbsDiff(y1, y2), tol);
  std::vector<at::Tensor> in = {w};
  if (bias) in.push_back(b);
  if (x_requires_grad) in.push_back(x);
  auto g1 = torch::autograd::grad({(y1 * r).sum()}, in);
  auto g2 = torch::autograd::grad({(y2 * r).sum()}, in);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_LT(MaxAbsDiff(g1[i], g2[i]), tol) << i;
}

TEST(Linear, MatchesAtLinearFloat) {
  CheckLinear(at::kFloat, true, true, 1e-5);
  CheckLinear(at::kFloat, false, true, 1e-5);
  CheckLinear(at::kFloat, true, false, 1e-5);
}
TEST(Linear, MatchesAtLinearDouble) {
  CheckLinear(at::kDouble, true, true, 1e-12);
  CheckLinear(at::kDouble, false, false, 1e-12);
}
TEST(Linear, OtherDtypesFallBackToAten) {
  auto x = at::randn({3, 4}).to(at::kBFloat16);
  auto w = at::randn({2, 4}).to(at::kBFloat16);
  EXPECT_EQ(Linear(x, w).scalar_type(), at::kBFloat16);
  EXPECT_THROW(Linear(at::randn({3, 5}), at::randn({2, 4})), c10::Error);  // ATen's shape error
}

}  // namespace
}  // namespace vicreg::model

namespace vicreg::model {
namespace {

TEST(Gemm, ReportsTheFp32Kernel) {
  const char* env = std::getenv("VICREG_GEMM");
  if (env && std::string(env) == "blas") {
    EXPECT_FALSE(UsingOneDnnGemm());
  }
  RecordProperty("fp32_gemm", UsingOneDnnGemm() ? "dnnl_sgemm" : "sgemm_");
  std::printf("fp32 GEMM kernel: %s\n", UsingOneDnnGemm() ? "dnnl_sgemm (oneDNN)" : "sgemm_ (BLAS)");
}

}  // namespace
}  // namespace vicreg::model
