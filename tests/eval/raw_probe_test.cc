// The probes on raw pixels read through the real dataset readers:
//  - a synthetic, linearly separable dataset written in CIFAR-10 binary format: ~100%;
//    the same images with shuffled training labels: chance;
//  - Fashion-MNIST from the Debian package: the raw-pixel linear probe reaches the published
//    logistic-regression level (~84%), which shows the probe itself is sound.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "tests/eval/eval_test_util.h"
#include "worker/data/dataset.h"
#include "worker/eval/features.h"
#include "worker/eval/knn.h"
#include "worker/eval/linear_probe.h"
#include "worker/eval/topk.h"

namespace vicreg::eval {
namespace {

using testing::TempDir;

int PatternOf(int64_t i, bool test) { return static_cast<int>((i * 7 + (test ? 3 : 0)) % 10); }

// Noise in 0..99 plus a bright band of rows [3p, 3p+3) for pattern p, in all three channels.
void PatternPixels(int64_t i, int /*label*/, bool test, uint8_t* px) {
  std::mt19937 rng(static_cast<uint32_t>(i * 2 + (test ? 1 : 0)));
  const int p = PatternOf(i, test);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        px[c * 1024 + y * 32 + x] = static_cast<uint8_t>(rng() % 100 + (y >= 3 * p && y < 3 * p + 3 ? 150 : 0));
}

struct Probed {
  double linear_top1, linear_top5, knn_top1;
};

Probed ProbeRawPixels(const std::string& data_dir) {
  auto train = data::OpenDataset({"cifar10", data_dir, "train", 0});
  auto test = data::OpenDataset({"cifar10", data_dir, "test", 0});
  auto tr = RawPixelFeatures(*train, train->mean(), train->std(), 256, false);
  auto te = RawPixelFeatures(*test, train->mean(), train->std(), 256, false);
  EXPECT_EQ(tr.features.sizes(), (std::vector<int64_t>{500, 3072}));
  auto clf = FitLinearProbe(tr.features, tr.labels, 10);
  auto scores = clf.Scores(te.features);
  auto knn = KnnClassify(tr.features, tr.labels, te.features, te.labels, 10);
  return {TopKAccuracy(scores, te.labels, 1), TopKAccuracy(scores, te.labels, 5), knn.top1};
}

TEST(RawPixelProbe, SeparableCifarFormatDatasetIsLearnedAlmostPerfectly) {
  TempDir dir;
  testing::WriteCifar10(dir.path(), 100, 300, PatternOf, PatternPixels);
  auto r = ProbeRawPixels(dir.path());
  EXPECT_GE(r.linear_top1, 0.99);
  EXPECT_GE(r.linear_top5, r.linear_top1);
  EXPECT_GE(r.knn_top1, 0.95);
}

TEST(RawPixelProbe, ShuffledTrainingLabelsGiveChance) {
  TempDir dir;
  auto shuffled = [](int64_t i, bool test) {
    if (test) return PatternOf(i, true);
    std::mt19937 rng(static_cast<uint32_t>(1000 + i));
    return static_cast<int>(rng() % 10);  // independent of the image
  };
  testing::WriteCifar10(dir.path(), 100, 300, shuffled, PatternPixels);
  auto r = ProbeRawPixels(dir.path());
  EXPECT_LT(r.linear_top1, 0.2);
  EXPECT_LT(r.knn_top1, 0.2);
}

TEST(RawPixelProbe, FashionMnistLinearProbeReachesThePublishedBaseline) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << dir << " not installed (apt-get install dataset-fashion-mnist)";
  auto train = data::OpenDataset({"fashion_mnist", dir, "train", 0});
  auto test = data::OpenDataset({"fashion_mnist", dir, "test", 0});
  ASSERT_EQ(train->size(), 60000);
  ASSERT_EQ(test->size(), 10000);
  const auto t0 = std::chrono::steady_clock::now();
  auto tr = RawPixelFeatures(*train, train->mean(), train->std(), 2048, false);
  auto te = RawPixelFeatures(*test, train->mean(), train->std(), 2048, false);
  EXPECT_EQ(tr.features.size(1), 784);  // grayscale stays one channel
  LinearProbeOptions o;
  o.verbose = true;
  auto clf = FitLinearProbe(tr.features, tr.labels, 10, o);
  const double top1 = TopKAccuracy(clf.Scores(te.features), te.labels, 1);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fashion_mnist raw-pixel linear probe: top1 %.4f (l2 %g) in %.1fs\n", top1, clf.l2, secs);
  EXPECT_GE(top1, 0.83);
  EXPECT_LE(top1, 0.90);  // a linear model on pixels cannot do much better: guards against leakage
}

}  // namespace
}  // namespace vicreg::eval
