// Weighted kNN (cosine, exp(sim / T) voting).
#include "worker/eval/knn.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/errors.h"

namespace vicreg::eval {
namespace {

TEST(Knn, WellSeparatedClustersAreClassifiedPerfectly) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const int c = 8, d = 16;
  auto centers = at::randn({c, d}, gen, at::TensorOptions()) * 10;
  auto yb = at::arange(c, at::kLong).repeat({50});  // [400]
  auto yq = at::arange(c, at::kLong).repeat({25});  // [200]
  auto bank = centers.index_select(0, yb) + at::randn({400, d}, gen, at::TensorOptions()) * 0.5;
  auto q = centers.index_select(0, yq) + at::randn({200, d}, gen, at::TensorOptions()) * 0.5;
  KnnOptions o;
  o.chunk_size = 37;  // several chunks, a ragged last one
  auto r = KnnClassify(bank, yb, q, yq, c, o);
  EXPECT_DOUBLE_EQ(r.top1, 1.0);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);
}

TEST(Knn, ChunkingDoesNotChangeVotes) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(12);
  auto bank = at::randn({300, 10}, gen, at::TensorOptions());
  auto yb = at::randint(5, {300}, gen, at::TensorOptions().dtype(at::kLong));
  auto q = at::randn({77, 10}, gen, at::TensorOptions());
  KnnOptions a, b;
  a.chunk_size = 1000;
  b.chunk_size = 8;
  EXPECT_TRUE(at::allclose(KnnVotes(bank, yb, q, 5, a), KnnVotes(bank, yb, q, 5, b), 1e-5, 1e-6));
}

// One query; one very close neighbour of class 0, three slightly farther ones of class 1.
void NearAndMany(at::Tensor* bank, at::Tensor* labels, at::Tensor* query) {
  auto at_angle = [](double deg) {
    const double r = deg * M_PI / 180.0;
    return at::tensor({static_cast<float>(std::cos(r)), static_cast<float>(std::sin(r))});
  };
  *bank = at::stack({at_angle(2), at_angle(20), at_angle(-20), at_angle(21), at_angle(120)});
  *labels = at::tensor(std::vector<int64_t>{0, 1, 1, 1, 2});
  *query = at_angle(0).view({1, 2});
}

TEST(Knn, LowTemperatureFollowsTheNearestNeighbourHighTemperatureTheMajority) {
  at::Tensor bank, labels, q;
  NearAndMany(&bank, &labels, &q);
  KnnOptions o;
  o.k = 4;
  o.temperature = 0.005;
  auto cold = KnnVotes(bank, labels, q, 3, o);
  EXPECT_EQ(cold.argmax(1).item<int64_t>(), 0);
  o.temperature = 100;
  auto hot = KnnVotes(bank, labels, q, 3, o);
  EXPECT_EQ(hot.argmax(1).item<int64_t>(), 1);
  EXPECT_NEAR(hot[0][1].item<double>() / hot[0][0].item<double>(), 3.0, 0.01);  // ~ equal weights
  EXPECT_EQ(hot[0][2].item<double>(), 0.0);                                     // class 2 is not among the 4 neighbours
  EXPECT_TRUE(at::isfinite(KnnVotes(bank, labels, q, 3, KnnOptions{4, 1e-4, 512})).all().item<bool>());
}

TEST(Knn, TiedVotesGoToTheLowerClassAndTop5IsAtLeastTop1) {
  // Query exactly between two bank points of classes 3 and 1: equal votes -> class 1 wins top-1.
  auto bank = at::tensor({1.0f, 1.0f, 1.0f, -1.0f}).view({2, 2});
  auto labels = at::tensor(std::vector<int64_t>{3, 1});
  auto q = at::tensor({1.0f, 0.0f}).view({1, 2});
  KnnOptions o;
  o.k = 2;
  auto r1 = KnnClassify(bank, labels, q, at::tensor({int64_t{1}}), 4, o);
  auto r3 = KnnClassify(bank, labels, q, at::tensor({int64_t{3}}), 4, o);
  EXPECT_DOUBLE_EQ(r1.top1, 1.0);
  EXPECT_DOUBLE_EQ(r3.top1, 0.0);
  EXPECT_DOUBLE_EQ(r3.top5, 1.0);
}

TEST(Knn, KLargerThanTheBankIsClamped) {
  at::Tensor bank, labels, q;
  NearAndMany(&bank, &labels, &q);
  KnnOptions o;
  o.k = 1000;
  auto v = KnnVotes(bank, labels, q, 3, o);
  EXPECT_GT(v[0][2].item<double>(), 0.0);
}

TEST(Knn, RejectsBadOptionsAndLabels) {
  at::Tensor bank, labels, q;
  NearAndMany(&bank, &labels, &q);
  EXPECT_THROW(KnnVotes(bank, labels, q, 3, KnnOptions{0, 0.07, 512}), UserError);
  EXPECT_THROW(KnnVotes(bank, labels, q, 3, KnnOptions{5, 0.0, 512}), UserError);
  EXPECT_THROW(KnnVotes(bank, labels, q, 2, KnnOptions{}), UserError);  // label 2 >= C
  EXPECT_THROW(KnnVotes(bank, labels, at::randn({1, 3}), 3, KnnOptions{}), UserError);
}

}  // namespace
}  // namespace vicreg::eval
