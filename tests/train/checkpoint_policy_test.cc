// What a checkpoint captures and restores (checkpoint_state.h) and when the loop writes one
// (checkpoint_policy.h), in process (label unit).
#include "worker/train/checkpoint_policy.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "common/config.h"
#include "common/errors.h"
#include "worker/train/checkpoint_state.h"

namespace vicreg::train {
namespace {

struct NetImpl : torch::nn::Module {
  explicit NetImpl(int64_t out) {
    fc = register_module("fc", torch::nn::Linear(4, out));
    count = register_buffer("count", at::zeros({1}, at::kLong));
  }
  torch::nn::Linear fc{nullptr};
  at::Tensor count;
};
TORCH_MODULE(Net);

TEST(CheckpointState, ModelStateRoundTripsAndMismatchesAreNamed) {
  at::manual_seed(1);
  Net a(3), b(3);
  a->count.fill_(5);
  auto state = ModelState(*a);
  std::vector<std::string> keys;
  for (const auto& [k, t] : state) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"fc.weight", "fc.bias", "count"})) << "parameters, then buffers";
  RestoreModelState(*b, state, "ck.pt");
  const auto restored = ModelState(*b);
  ASSERT_EQ(restored.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    EXPECT_EQ(restored[i].first, state[i].first);
    EXPECT_TRUE(at::equal(restored[i].second, state[i].second)) << state[i].first;
  }
  EXPECT_TRUE(b->fc->weight.requires_grad()) << "restored in place: still the model's parameters";

  auto expect_error = [](const std::vector<std::pair<std::string, at::Tensor>>& saved, Net& into,
                         const std::string& words) {
    try {
      RestoreModelState(*into, saved, "ck.pt");
      ADD_FAILURE() << "expected a UserError containing " << words;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("ck.pt"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  Net other(5);
  const at::Tensor before = other->fc->weight.clone();
  expect_error(state, other, "'fc.bias' has shape [3] but this model's is [5]");
  EXPECT_TRUE(at::equal(other->fc->weight, before)) << "nothing copied on a mismatch";
  auto missing = state;
  missing.pop_back();
  expect_error(missing, b, "'count' is missing");
  auto extra = state;
  extra.emplace_back("fc.scale", at::ones({1}));
  expect_error(extra, b, "'fc.scale' does not exist");
}

TEST(CheckpointState, RngStateRestoresTheDrawSequence) {
  at::manual_seed(3);
  CheckpointPayload p;
  CaptureRng(/*cuda=*/false, &p);
  EXPECT_TRUE(p.rng_cuda.empty());
  const at::Tensor first = at::randn({8});
  RestoreRng(p, /*cuda=*/false);
  EXPECT_TRUE(at::equal(at::randn({8}), first));
}

config::JobConfig Job(int num_epochs, int every_epochs, int64_t every_steps) {
  config::JobConfig c;
  c.train.num_epochs = num_epochs;
  c.checkpoint.every_epochs = every_epochs;
  c.checkpoint.every_steps = every_steps;
  return c;
}

StepPosition At(int64_t epoch, int64_t step, bool epoch_end, bool stopping = false, bool in_streak = false) {
  StepPosition p;
  p.epoch = epoch;
  p.step = step;
  p.epoch_end = epoch_end;
  p.stopping = stopping;
  p.in_streak = in_streak;
  return p;
}

TEST(CheckpointPolicy, EpochStepStopAndDeferred) {
  const CheckpointPolicy p(Job(/*num_epochs=*/5, /*every_epochs=*/2, /*every_steps=*/3));
  using A = CheckpointAction;
  EXPECT_EQ(p.AfterStep(At(1, 1, false)), A::kNone);
  EXPECT_EQ(p.AfterStep(At(1, 3, false)), A::kStep);                      // every 3 steps
  EXPECT_EQ(p.AfterStep(At(1, 4, true)), A::kNone);                       // epoch 1 is not a multiple of 2
  EXPECT_EQ(p.AfterStep(At(2, 8, true)), A::kEpoch);                      // every 2nd epoch
  EXPECT_EQ(p.AfterStep(At(2, 9, true)), A::kEpoch);                      // an epoch end wins over a step
  EXPECT_EQ(p.AfterStep(At(5, 20, true)), A::kEpoch);                     // always the last epoch
  EXPECT_EQ(p.AfterStep(At(3, 10, false, /*stopping=*/true)), A::kStep);  // stop signal / max_steps
  EXPECT_EQ(p.AfterStep(At(2, 8, true, false, /*in_streak=*/true)), A::kDeferred);
  EXPECT_EQ(p.AfterStep(At(1, 3, false, false, true)), A::kDeferred);
  EXPECT_EQ(p.AfterStep(At(1, 2, false, false, true)), A::kNone);  // nothing due: nothing deferred
  EXPECT_EQ(p.AfterStep(At(1, 3, false, true, true)), A::kStep);   // a stop still writes
  EXPECT_EQ(p.AfterStep(At(2, 8, true, true, true)), A::kEpoch);

  const CheckpointPolicy last_only(Job(3, /*every_epochs=*/0, /*every_steps=*/0));
  EXPECT_EQ(last_only.AfterStep(At(1, 4, true)), A::kNone);
  EXPECT_EQ(last_only.AfterStep(At(3, 12, true)), A::kEpoch);

  // The run's last step (train.time_budget_s may end it inside an epoch, before or after num_epochs): an
  // epoch checkpoint, never deferred.
  StepPosition end = At(7, 26, /*epoch_end=*/false);
  end.run_end = true;
  EXPECT_EQ(last_only.AfterStep(end), A::kEpoch);
  end.in_streak = true;
  EXPECT_EQ(last_only.AfterStep(end), A::kEpoch);
}

TEST(CheckpointPolicy, RetentionKeepsWhatTheCoordinatorEvaluates) {
  auto c = Job(10, 1, 0);
  c.checkpoint.keep_last = 2;
  c.checkpoint.keep_epochs = {1};
  c.eval.epochs = {3};
  c.eval.every_epochs = 4;
  const auto o = CheckpointPolicy(c).Retention("/run/checkpoints");
  EXPECT_EQ(o.dir, "/run/checkpoints");
  EXPECT_EQ(o.keep_last, 2);
  EXPECT_EQ(o.keep_epochs, (std::vector<int>{1, 3, 4, 8}));
}

}  // namespace
}  // namespace vicreg::train
