// Online monitoring: the linear probe trained alongside on detached features.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/errors.h"
#include "worker/eval/online_probe.h"

namespace vicreg::eval {
namespace {

// Separable stream: class c -> feature mean 4 * e_c. x: [B, D], y: [B]
void Batch(at::Generator& gen, int64_t b, at::Tensor* x, at::Tensor* y) {
  *y = at::randint(4, {b}, gen, at::TensorOptions().dtype(at::kLong));
  *x = at::one_hot(*y, 8).to(at::kFloat) * 4 + at::randn({b, 8}, gen, at::TensorOptions());
}

TEST(OnlineLinearProbe, LearnsASeparableStreamAndCountsOnlyLabeledRows) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  OnlineLinearProbeOptions o;
  o.feature_dim = 8;
  o.num_classes = 4;
  o.lr = 0.05;
  OnlineLinearProbe probe(o);
  at::Tensor x, y;
  for (int i = 0; i < 60; ++i) {
    Batch(gen, 32, &x, &y);
    probe.Update(x, y);
  }
  probe.ResetStats();
  EXPECT_EQ(probe.seen(), 0);
  double last_loss = 0;
  for (int i = 0; i < 20; ++i) {
    Batch(gen, 32, &x, &y);
    y[0] = -1;  // unlabeled rows are ignored
    auto s = probe.Update(x.set_requires_grad(true), y);
    EXPECT_EQ(s.samples, 31);
    last_loss = s.loss;
  }
  EXPECT_EQ(probe.seen(), 20 * 31);
  EXPECT_GT(probe.running_top1(), 0.95);
  EXPECT_LT(last_loss, 0.3);
  EXPECT_EQ(x.grad().defined(), false);  // features are detached: nothing flows back
  EXPECT_EQ(probe.Predict(x).sizes(), (std::vector<int64_t>{32, 4}));
}

TEST(OnlineLinearProbe, DoesNotConsumeTheGlobalRng) {
  at::manual_seed(9);
  const auto expected = at::randn({4});
  at::manual_seed(9);
  OnlineLinearProbeOptions o;
  o.feature_dim = 8;
  o.num_classes = 4;
  o.optimizer = "sgd";
  OnlineLinearProbe probe(o);
  probe.Update(at::ones({2, 8}), at::tensor(std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(at::equal(at::randn({4}), expected));
}

TEST(OnlineLinearProbe, RejectsBadOptionsAndInputs) {
  OnlineLinearProbeOptions o;
  o.optimizer = "lbfgs";
  EXPECT_THROW(OnlineLinearProbe{o}, UserError);
  o = {};
  o.num_classes = 1;
  EXPECT_THROW(OnlineLinearProbe{o}, UserError);
  o = {};
  o.feature_dim = 8;
  o.num_classes = 4;
  OnlineLinearProbe probe(o);
  EXPECT_THROW(probe.Update(at::ones({2, 7}), at::zeros({2}, at::kLong)), UserError);
  EXPECT_THROW(probe.Update(at::ones({2, 8}), at::full({2}, 4, at::kLong)), UserError);
  EXPECT_THROW(probe.Update(at::ones({2, 8}), at::zeros({3}, at::kLong)), UserError);
  auto s = probe.Update(at::ones({2, 8}), at::full({2}, -1, at::kLong));
  EXPECT_EQ(s.samples, 0);
}

}  // namespace
}  // namespace vicreg::eval
