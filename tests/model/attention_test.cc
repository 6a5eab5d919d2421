// The BLAS attention function == the ATen composite (values and gradients), both packed layouts.
#include "worker/model/attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include "tests/model/model_test_util.h"

namespace vicreg::model {
namespace {

using vicreg::testing::MaxAbsDiff;

void Compare(at::ScalarType dt, bool cls_only, double tol) {
  at::manual_seed(31);
  const int64_t B = 3, N = 7, D = 12, H = 3;
  ASSERT_TRUE(AttentionFastPathAvailable(at::empty({1}, dt))) << "no BLAS gemm symbol found";
  AttentionInputs in;
  in.dim = D, in.heads = H, in.scale = 0.37;
  at::Tensor q, kv;
  if (!cls_only) {
    kv = at::randn({B, N, 3 * D}, dt).requires_grad_(true);
    in.q_src = in.kv_src = kv, in.q_off = 0, in.k_off = D, in.v_off = 2 * D;
  } else {
    q = at::randn({B, 1, D}, dt).requires_grad_(true);
    kv = at::randn({B, N, 2 * D}, dt).requires_grad_(true);
    in.q_src = q, in.kv_src = kv, in.q_off = 0, in.k_off = 0, in.v_off = D;
  }
  auto r = at::randn({B, cls_only ? 1 : N, D}, dt);
  auto fast = MultiHeadAttention(in);
  auto ref = MultiHeadAttentionComposite(in);
  EXPECT_LT(MaxAbsDiff(fast, ref), tol);
  std::vector<at::Tensor> inputs = {kv};
  if (cls_only) inputs.push_back(q);
  auto g1 = torch::autograd::grad({(fast * r).sum()}, inputs);
  auto g2 = torch::autograd::grad({(ref * r).sum()}, inputs);
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_LT(MaxAbsDiff(g1[i], g2[i]), tol) << i;
}

TEST(Attention, FastPathEqualsCompositeFullDouble) { Compare(at::kDouble, false, 1e-12); }
TEST(Attention, FastPathEqualsCompositeClsDouble) { Compare(at::kDouble, true, 1e-12); }
TEST(Attention, FastPathEqualsCompositeFullFloat) { Compare(at::kFloat, false, 1e-5); }
TEST(Attention, FastPathEqualsCompositeClsFloat) { Compare(at::kFloat, true, 1e-5); }

TEST(Attention, ReducedPrecisionUsesTheCompositePath) {
  EXPECT_FALSE(AttentionFastPathAvailable(at::empty({1}, at::kBFloat16)));
  AttentionInputs in;
  in.dim = 4, in.heads = 2, in.scale = 0.5;
  in.q_src = in.kv_src = at::randn({2, 3, 12}).to(at::kBFloat16);
  in.k_off = 4, in.v_off = 8;
  EXPECT_EQ(MultiHeadAttention(in).scalar_type(), at::kBFloat16);
}

}  // namespace
}  // namespace vicreg::model
