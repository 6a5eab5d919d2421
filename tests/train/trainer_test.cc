// Trainer::Step in process (label unit): the loss goes down on a fixed batch; a non-finite batch is skipped
// without touching the parameters; the step's report carries the global values and diagnostics.
#include "worker/train/trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/config_loader.h"
#include "tests/train/test_util.h"
#include "worker/data/loader.h"
#include "worker/dist/communicator.h"

namespace vicreg::train {
namespace {

using vicreg::testing::PathExists;

config::JobConfig TinyConfig() {
  auto cfg = config::LoadJobFile(std::string(VICREG_SOURCE_DIR) + "/tests/train/data/tiny_job.yaml");
  cfg.train.warmup_epochs = 0;  // full lr from the first step
  cfg.train.log_every = 5;
  return cfg;
}

std::unique_ptr<Trainer> MakeTrainer(const config::JobConfig& cfg) {
  dist::RankInfo rank;
  dist::CommunicatorOptions co;
  co.backend = "single";
  auto comm = dist::CreateCommunicator(rank, co);
  TrainerOptions opts;
  return std::make_unique<Trainer>(cfg, rank, comm, /*run_dir=*/nullptr, /*metrics=*/nullptr, opts);
}

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
    EXPECT_NEAR(o.report.loss, cfg.train.vicreg.lambda_invariance * o.report.invariance +
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

}  // namespace
}  // namespace vicreg::train
