// Trainer::Step in process (label unit): the loss goes down on a fixed batch; a non-finite batch is skipped
// without touching the parameters; the step's report carries the global values and diagnostics.
#include "worker/train/trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <optional>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/train/test_util.h"
#include "worker/comm/communicator.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/train/online_monitor.h"

namespace vicreg::train {
namespace {

using vicreg::testing::PathExists;

config::JobConfig TinyConfig() {
  auto cfg = config::LoadJobFile(std::string(VICREG_SOURCE_DIR) + "/tests/train/data/tiny_job.yaml");
  cfg.train.warmup_epochs = 0;  // full lr from the first step
  cfg.train.log_every = 5;
  return cfg;
}

std::unique_ptr<Trainer> MakeTrainer(const config::JobConfig& cfg, TrainerOptions opts = {}) {
  comm::RankInfo rank;
  comm::CommunicatorOptions co;
  co.backend = "single";
  auto comm = comm::CreateCommunicator(rank, co);
  return std::make_unique<Trainer>(cfg, rank, comm, /*run_dir=*/nullptr, /*metrics=*/nullptr, opts);
}

// Records what the trainer hands to its online monitor (the real ones live in worker/eval).
struct MonitorCalls {
  int updates = 0, resets = 0, linear_queries = 0;
  int64_t feature_dim = 0, batch = 0;
};
class RecordingMonitor : public OnlineMonitor {
 public:
  explicit RecordingMonitor(MonitorCalls* calls) : calls_(calls) {}
  void Update(const at::Tensor& features, const at::Tensor& labels) override {
    ++calls_->updates;
    calls_->batch = features.size(0);
    calls_->feature_dim = features.size(1);
    EXPECT_EQ(labels.size(0), features.size(0));
  }
  std::optional<double> LinearTop1(comm::Communicator*) override {
    ++calls_->linear_queries;
    return 0.25;
  }
  void ResetEpoch() override { ++calls_->resets; }
  bool KnnDue(int64_t) const override { return false; }
  double KnnTop1(model::VisionTransformer&) override { return 0; }

 private:
  MonitorCalls* calls_;
};

data::Batch FixedBatch(int b, int s) {
  at::manual_seed(123);
  data::Batch batch;
  at::Tensor x = at::randn({b, 3, s, s});
  batch.view1 = x + 0.1 * at::randn({b, 3, s, s});
  batch.view2 = x + 0.1 * at::randn({b, 3, s, s});
  batch.labels = at::zeros({b}, at::kLong);
  return batch;
}

class TrainerStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PathExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
      GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  }
};

TEST_F(TrainerStepTest, LossGoesDownOnAFixedBatch) {
  auto cfg = TinyConfig();
  auto trainer = MakeTrainer(cfg);
  auto batch = FixedBatch(cfg.train.batch_size, cfg.model.image_size);
  std::vector<double> losses;
  for (int i = 0; i < 30; ++i) {
    StepOutcome o = trainer->Step(batch);
    ASSERT_TRUE(o.applied) << "step " << i;
    ASSERT_TRUE(std::isfinite(o.report.loss));
    EXPECT_EQ(o.report.step, i + 1);
    EXPECT_NEAR(o.report.loss,
                cfg.train.vicreg.lambda_invariance * o.report.invariance +
                    cfg.train.vicreg.mu_variance * o.report.variance +
                    cfg.train.vicreg.nu_covariance * o.report.covariance,
                1e-3 * std::abs(o.report.loss));
    EXPECT_EQ(o.report.std_min.has_value(), (i + 1) % 5 == 0) << "diagnostics every log_every steps";
    losses.push_back(o.report.loss);
  }
  EXPECT_EQ(trainer->global_step(), 30);
  EXPECT_LT(losses.back(), 0.6 * losses.front()) << "first " << losses.front() << " last " << losses.back();
}

TEST_F(TrainerStepTest, NonFiniteBatchIsSkippedAndParametersStayUntouched) {
  auto cfg = TinyConfig();
  auto trainer = MakeTrainer(cfg);
  auto good = FixedBatch(cfg.train.batch_size, cfg.model.image_size);
  ASSERT_TRUE(trainer->Step(good).applied);
  std::vector<at::Tensor> before;
  for (const auto& [name, t] : trainer->ModelState()) before.push_back(t.clone());
  auto bad = good;
  bad.view1 = good.view1.clone();
  bad.view1[0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
  StepOutcome o = trainer->Step(bad);
  EXPECT_FALSE(o.applied);
  EXPECT_TRUE(o.nonfinite);
  EXPECT_FALSE(o.report.loss_finite);
  EXPECT_EQ(trainer->global_step(), 2) << "a skipped step still counts as an iteration";
  auto after = trainer->ModelState();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    // Parameters and BatchNorm running statistics (restored after the skipped forward pass).
    EXPECT_TRUE(at::equal(after[i].second, before[i])) << after[i].first;
  }
  EXPECT_TRUE(trainer->Step(good).applied) << "training continues after a skipped step";
}

TEST_F(TrainerStepTest, RawBatchesAugmentedInTheTrainerMatchLoaderViews) {
  // The CUDA path (data.augment_on_device) hands raw images to Step(), which augments them with the loader's
  // augmenters, seeds and global-batch offset; on CPU both paths must give the same training, bit for bit.
  auto cfg = TinyConfig();
  auto dataset = data::OpenDataset({cfg.data.dataset, cfg.data.data_dir, cfg.data.split, cfg.data.limit});
  auto make_loader = [&](bool in_loader) {
    data::LoaderOptions lo;
    lo.batch_size = cfg.train.batch_size;
    lo.seed = cfg.train.seed;
    lo.num_workers = 1;
    lo.image_size = cfg.model.image_size;
    lo.augment_in_loader = in_loader;
    return std::make_unique<data::Loader>(dataset, cfg.augment, lo);
  };
  auto views = make_loader(true);
  auto raws = make_loader(false);
  views->StartEpoch(1);
  raws->StartEpoch(1);
  auto t_views = MakeTrainer(cfg);
  auto t_raws = MakeTrainer(cfg);
  for (int i = 0; i < 3; ++i) {
    auto bv = views->Next();
    auto br = raws->Next();
    ASSERT_TRUE(bv && br);
    ASSERT_TRUE(br->raw.defined());
    ASSERT_FALSE(br->view1.defined());
    auto ov = t_views->Step(*bv);
    auto orw = t_raws->Step(*br);
    EXPECT_EQ(ov.report.loss, orw.report.loss) << "step " << i;
  }
  auto a = t_views->ModelState();
  auto b = t_raws->ModelState();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST_F(TrainerStepTest, OnlineMonitorsComeFromTheFactoryInTheOptions) {
  auto cfg = TinyConfig();
  cfg.eval.online_linear = true;
  try {
    MakeTrainer(cfg);  // no factory: train does not know how to monitor (eval does)
    ADD_FAILURE() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("eval.online_linear"), std::string::npos) << e.what();
  }

  MonitorCalls calls;
  int feature_dim_given = 0;
  TrainerOptions opts;
  opts.online_monitors = [&](const config::JobConfig&, std::shared_ptr<const data::Dataset> train_set, int feature_dim,
                             c10::Device) -> std::unique_ptr<OnlineMonitor> {
    EXPECT_TRUE(train_set != nullptr);
    feature_dim_given = feature_dim;
    return std::make_unique<RecordingMonitor>(&calls);
  };
  auto trainer = MakeTrainer(cfg, opts);
  EXPECT_EQ(feature_dim_given, cfg.model.embed_dim);
  auto batch = FixedBatch(cfg.train.batch_size, cfg.model.image_size);
  for (int i = 0; i < 5; ++i) {
    StepOutcome o = trainer->Step(batch);
    ASSERT_TRUE(o.applied);
    EXPECT_EQ(o.report.online_linear_top1.has_value(), (i + 1) % 5 == 0) << "reported at log steps";
    EXPECT_EQ(o.report.online_linear_top1.value_or(0.25), 0.25);
  }
  EXPECT_EQ(calls.updates, 5);
  EXPECT_EQ(calls.batch, cfg.train.batch_size);
  EXPECT_EQ(calls.feature_dim, cfg.model.embed_dim);
  EXPECT_EQ(calls.linear_queries, 1);
}

}  // namespace
}  // namespace vicreg::train
