// Sharding (EpochShard), seeds, and the prefetching Loader: order, determinism across thread
// counts, W ranks x B == 1 rank x W*B, resume, early destruction, error propagation.
#include "worker/data/loader.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/errors.h"

namespace vicreg::data {
namespace {

// An in-memory dataset: image i is filled with a pattern derived from i; label i % 10.
// fail_at >= 0: Fetch throws a UserError naming a file when asked for that index.
class FakeDataset : public Dataset {
 public:
  FakeDataset(int64_t n, int side, int64_t fail_at = -1, int delay_ms = 0)
      : n_(n), side_(side), fail_at_(fail_at), delay_ms_(delay_ms) {}
  int64_t size() const override { return n_; }
  int num_classes() const override { return 10; }
  int channels() const override { return 3; }
  int height() const override { return side_; }
  int width() const override { return side_; }
  std::string name() const override { return "fake:train"; }
  std::array<double, 3> mean() const override { return {0.5, 0.5, 0.5}; }
  std::array<double, 3> std() const override { return {0.25, 0.25, 0.25}; }
  void Fetch(const std::vector<int64_t>& indices, at::Tensor* images, at::Tensor* labels) const override {
    if (delay_ms_) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    const int64_t b = static_cast<int64_t>(indices.size());
    at::Tensor im = at::empty({b, 3, side_, side_}, at::kByte);
    at::Tensor lb = at::empty({b}, at::kLong);
    for (int64_t k = 0; k < b; ++k) {
      const int64_t i = indices[static_cast<size_t>(k)];
      if (i == fail_at_) throw UserError("/data/broken_file.bin: cannot read image " + std::to_string(i));
      uint8_t* a = im.data_ptr<uint8_t>() + k * 3 * side_ * side_;
      for (int64_t p = 0; p < 3 * side_ * side_; ++p) a[p] = static_cast<uint8_t>((i * 37 + p * 11) % 256);
      lb.data_ptr<int64_t>()[k] = i % 10;
    }
    *images = im;
    *labels = lb;
  }

 private:
  int64_t n_;
  int side_;
  int64_t fail_at_;
  int delay_ms_;
};

TEST(EpochShard, RanksPartitionTheEpochPermutationWithoutDuplicates) {
  const int64_t n = 103;
  const int b = 5, w = 3;
  const auto perm = EpochPermutation(n, true, 7, 2);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);  // a permutation
  std::vector<int64_t> all;
  for (int r = 0; r < w; ++r) {
    const auto shard = EpochShard(n, b, r, w, true, 7, 2);
    ASSERT_EQ(shard.size(), 6u * b);  // floor(103 / 15) = 6 batches, equal for every rank
    all.insert(all.end(), shard.begin(), shard.end());
  }
  std::set<int64_t> uniq(all.begin(), all.end());
  EXPECT_EQ(uniq.size(), all.size()) << "duplicates across ranks";
  // The union is the first 6 global batches of the permutation (drop_last).
  EXPECT_EQ(uniq, std::set<int64_t>(perm.begin(), perm.begin() + 90));
  // W x B equals 1 x W*B: global batch k of one rank = concatenation of the ranks' batch k.
  const auto single = EpochShard(n, b * w, 0, 1, true, 7, 2);
  for (int k = 0; k < 6; ++k)
    for (int r = 0; r < w; ++r) {
      const auto shard = EpochShard(n, b, r, w, true, 7, 2);
      for (int j = 0; j < b; ++j)
        ASSERT_EQ(shard[static_cast<size_t>(k * b + j)], single[static_cast<size_t>(k * b * w + r * b + j)]);
    }
  // Epochs differ, seeds reproduce, shuffle off is the identity.
  EXPECT_NE(EpochPermutation(n, true, 7, 3), perm);
  EXPECT_EQ(EpochPermutation(n, true, 7, 2), perm);
  const auto ident = EpochShard(n, b, 1, w, false, 7, 2);
  for (int k = 0; k < 6; ++k)
    for (int j = 0; j < b; ++j) ASSERT_EQ(ident[static_cast<size_t>(k * b + j)], k * 15 + 5 + j);
}

LoaderOptions Opts(int batch, int workers, int rank = 0, int world = 1) {
  LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.rank = rank;
  o.world_size = world;
  o.image_size = 24;
  o.seed = 5;
  o.prefetch_batches = 3;
  return o;
}

std::vector<Batch> Drain(Loader& l, int64_t epoch, int64_t skip = 0) {
  l.StartEpoch(epoch, skip);
  std::vector<Batch> out;
  while (auto b = l.Next()) out.push_back(std::move(*b));
  return out;
}

TEST(Loader, SameBatchesWithOneOrThreeWorkersInOrder) {
  auto ds = std::make_shared<FakeDataset>(40, 16);
  config::AugmentConfig aug;
  Loader one(ds, aug, Opts(4, 1)), three(ds, aug, Opts(4, 3)), sync(ds, aug, Opts(4, 0));
  const auto a = Drain(one, 1), b = Drain(three, 1), c = Drain(sync, 1);
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  ASSERT_EQ(c.size(), 10u);
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].batch_index, static_cast<int64_t>(k));
    EXPECT_EQ(b[k].batch_index, static_cast<int64_t>(k));
    EXPECT_EQ(a[k].indices, b[k].indices);
    EXPECT_TRUE(at::equal(a[k].view1, b[k].view1));
    EXPECT_TRUE(at::equal(a[k].view2, b[k].view2));
    EXPECT_TRUE(at::equal(a[k].view1, c[k].view1));
    EXPECT_TRUE(at::equal(a[k].labels, b[k].labels));
    ASSERT_EQ(a[k].view1.sizes(), (std::vector<int64_t>{4, 3, 24, 24}));
    EXPECT_FALSE(at::allclose(a[k].view1, a[k].view2));  // two different views
  }
  // A new epoch is a new permutation and new views.
  const auto e2 = Drain(one, 2);
  EXPECT_NE(e2[0].indices, a[0].indices);
}

TEST(Loader, TwoRanksOfBEqualOneRankOfTwoB) {
  auto ds = std::make_shared<FakeDataset>(48, 16);
  config::AugmentConfig aug;
  Loader single(ds, aug, Opts(8, 2)), r0(ds, aug, Opts(4, 2, 0, 2)), r1(ds, aug, Opts(4, 1, 1, 2));
  const auto s = Drain(single, 3), a = Drain(r0, 3), b = Drain(r1, 3);
  ASSERT_EQ(s.size(), 6u);
  ASSERT_EQ(a.size(), 6u);
  for (size_t k = 0; k < s.size(); ++k) {
    EXPECT_EQ(b[k].sample_offset, 4);
    std::vector<int64_t> idx = a[k].indices;
    idx.insert(idx.end(), b[k].indices.begin(), b[k].indices.end());
    EXPECT_EQ(idx, s[k].indices);
    const at::Tensor v1 = at::cat({a[k].view1, b[k].view1}), v2 = at::cat({a[k].view2, b[k].view2});
    EXPECT_LT((v1 - s[k].view1).abs().max().item<double>(), 1e-5);
    EXPECT_LT((v2 - s[k].view2).abs().max().item<double>(), 1e-5);
  }
}

TEST(Loader, ResumeSkipsExactlyAndRawModeCarriesTheSeeds) {
  auto ds = std::make_shared<FakeDataset>(30, 12);
  config::AugmentConfig aug;
  Loader l(ds, aug, Opts(3, 2));
  const auto full = Drain(l, 4);
  const auto resumed = Drain(l, 4, 7);
  ASSERT_EQ(resumed.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(resumed[k].batch_index, full[k + 7].batch_index);
    EXPECT_TRUE(at::equal(resumed[k].view1, full[k + 7].view1));
  }
  l.StartEpoch(4, 8);
  EXPECT_THROW(l.StartEpoch(4, 11), UserError);  // 10 batches per epoch
  auto still = l.Next();                         // the running epoch is untouched by the failed call
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->batch_index, 8);
  // augment_in_loader = false: raw uint8 + seeds; augmenting them reproduces the loader's views.
  LoaderOptions o = Opts(3, 2);
  o.augment_in_loader = false;
  Loader raw(ds, aug, o);
  const auto r = Drain(raw, 4);
  ASSERT_EQ(r.size(), full.size());
  EXPECT_EQ(r[2].raw.scalar_type(), at::kByte);
  EXPECT_FALSE(r[2].view1.defined());
  const at::Tensor v1 = raw.augmenter(1)(r[2].raw, r[2].view_seed1, r[2].sample_offset);
  EXPECT_TRUE(at::equal(v1, full[2].view1));
}

// augment.order picks the execution order of both views (loader threads and the device path alike).
TEST(Loader, AugmentOrderKeyPicksTheExecutionOrder) {
  auto ds = std::make_shared<FakeDataset>(12, 12);
  for (const std::string name : {"photometric_first", "torchvision"}) {
    SCOPED_TRACE(name);
    config::AugmentConfig aug;
    aug.order = name;
    Loader views(ds, aug, Opts(3, 0));
    LoaderOptions o = Opts(3, 0);
    o.augment_in_loader = false;
    Loader raw(ds, aug, o);
    const auto v = Drain(views, 1), r = Drain(raw, 1);
    ASSERT_EQ(v.size(), r.size());
    for (auto order : {AugmentOrder::kPhotometricFirst, AugmentOrder::kTorchvision}) {
      ViewAugmenterOptions vo;
      vo.order = order;
      const ViewAugmenter ref(aug.view2, 24, ds->mean(), ds->std(), vo);
      const at::Tensor expect = ref(r[1].raw, r[1].view_seed2, r[1].sample_offset);
      const bool same = at::equal(expect, v[1].view2) && at::equal(raw.augmenter(2)(r[1].raw, r[1].view_seed2,
                                                                                     r[1].sample_offset),
                                                                    v[1].view2);
      EXPECT_EQ(same, (order == AugmentOrder::kTorchvision) == (name == "torchvision"));
    }
  }
}

TEST(Loader, EvalModeIsDeterministicAndUnshuffled) {
  auto ds = std::make_shared<FakeDataset>(10, 12);
  LoaderOptions o = Opts(5, 1);
  o.two_views = false;
  o.shuffle = false;
  const config::AugmentConfig augment;  // a named default (a temporary here trips GCC 12's -Wmaybe-uninitialized at -O3)
  Loader l(ds, augment, o);
  const auto a = Drain(l, 1), b = Drain(l, 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[1].indices, (std::vector<int64_t>{5, 6, 7, 8, 9}));
  EXPECT_FALSE(a[0].view2.defined());
  EXPECT_TRUE(at::equal(a[0].view1, b[0].view1));
}

TEST(Loader, EarlyDestructionDoesNotHang) {
  auto ds = std::make_shared<FakeDataset>(400, 16, -1, /*delay_ms=*/5);
  config::AugmentConfig aug;
  const auto t0 = std::chrono::steady_clock::now();
  for (int workers : {1, 3}) {
    {
      Loader l(ds, aug, Opts(4, workers));
      l.StartEpoch(1);
      ASSERT_TRUE(l.Next().has_value());  // consumer stops after one batch of 100
    }
    {
      Loader l(ds, aug, Opts(4, workers));
      l.StartEpoch(1);  // never consumed
    }
    {
      Loader l(ds, aug, Opts(4, workers));  // never started
    }
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

TEST(Loader, ReaderErrorSurfacesFromNextWithTheFileName) {
  config::AugmentConfig aug;
  for (int workers : {0, 2}) {
    auto ds = std::make_shared<FakeDataset>(20, 8, /*fail_at=*/13);
    LoaderOptions o = Opts(4, workers);
    o.shuffle = false;  // index 13 is in batch 3
    Loader l(ds, aug, o);
    l.StartEpoch(1);
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(l.Next().has_value()) << "batch " << k;
    try {
      l.Next();
      FAIL() << "expected the reader's error";
    } catch (const UserError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("/data/broken_file.bin"));
    }
  }
}

TEST(Loader, RejectsOptionsAndTooSmallDatasets) {
  auto ds = std::make_shared<FakeDataset>(10, 8);
  config::AugmentConfig aug;
  EXPECT_THROW(Loader(ds, aug, Opts(0, 1)), UserError);
  EXPECT_THROW(Loader(ds, aug, Opts(4, 1, 2, 2)), UserError);
  try {
    Loader(ds, aug, Opts(4, 1, 0, 3));
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_THAT(e.what(), ::testing::AllOf(::testing::HasSubstr("10 images"), ::testing::HasSubstr("12")));
  }
  config::AugmentConfig bad;
  bad.std = {0.2, 0.0, 0.2};
  EXPECT_THROW(Loader(ds, bad, Opts(2, 1)), UserError);
}

}  // namespace
}  // namespace vicreg::data
