// Online monitoring: the linear probe trained alongside on detached features.
#include "worker/eval/online_probe.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "common/errors.h"
#include "tests/eval/eval_test_util.h"
#include "worker/data/dataset.h"

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

// OnlineKnn over a CIFAR-format dataset whose class is a bright band of rows.
void BandPixels(int64_t i, int label, bool test, uint8_t* px) {
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        px[c * 1024 + y * 32 + x] = static_cast<uint8_t>((i * 31 + x * 7 + y * 3) % 60 + (y / 8 == label ? 180 : 0));
}

TEST(OnlineKnn, HeldOutQueriesAgainstABankFromTheRest) {
  testing::TempDir dir;
  testing::WriteCifar10(
      dir.path(), 40, 10, [](int64_t i, bool) { return static_cast<int>(i % 4); }, BandPixels);
  auto ds = data::OpenDataset({"cifar10", dir.path(), "train", 0});
  OnlineKnnOptions o;
  o.query_size = 50;
  o.bank_size = 100;
  o.knn.k = 5;
  o.extract.batch_size = 32;
  o.extract.image_size = 32;
  o.extract.progress = false;
  OnlineKnn knn(ds, o);
  ASSERT_EQ(knn.query_indices().size(), 50u);
  ASSERT_EQ(knn.bank_indices().size(), 100u);
  std::vector<int64_t> all = knn.query_indices();
  all.insert(all.end(), knn.bank_indices().begin(), knn.bank_indices().end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());  // queries are held out of the bank
  // Row means of channel 0 as features: the band is obvious -> perfect kNN.
  auto rows = [](const at::Tensor& x) { return x.select(1, 0).mean(2); };  // [B, 3, S, S] -> [B, S]
  EXPECT_DOUBLE_EQ(knn.Evaluate(rows).top1, 1.0);
  // A constant encoder carries no information: all votes tie -> the lowest class always wins.
  auto constant = [](const at::Tensor& x) { return at::ones({x.size(0), 4}); };
  EXPECT_LT(knn.Evaluate(constant).top1, 0.5);

  // With a ViT: eval mode during the evaluation, the previous mode restored.
  model::VitOptions vo;
  vo.image_size = 32;
  vo.patch_size = 8;
  vo.embed_dim = 16;
  vo.depth = 1;
  vo.num_heads = 2;
  model::VisionTransformer vit(vo);
  vit->train();
  auto r = knn.Evaluate(vit);
  EXPECT_TRUE(vit->is_training());
  EXPECT_GE(r.top5, r.top1);
  // Same subsets for the same seed: a deterministic monitor.
  OnlineKnn again(ds, o);
  EXPECT_EQ(again.query_indices(), knn.query_indices());
}

TEST(OnlineKnn, RefusesUnusableDatasets) {
  testing::TempDir dir;
  testing::WriteCifar10(
      dir.path(), 1, 1, [](int64_t, bool) { return 0; }, BandPixels);
  OnlineKnnOptions o;
  o.query_size = 0;
  EXPECT_THROW(OnlineKnn(data::OpenDataset({"cifar10", dir.path(), "train", 0}), o), UserError);
  o.query_size = 10;
  EXPECT_THROW(OnlineKnn(data::OpenDataset({"cifar10", dir.path(), "train", 1}), o), UserError);  // 1 sample
}

}  // namespace
}  // namespace vicreg::eval
