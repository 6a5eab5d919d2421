// Optimizers (AdamW groups vs torch.optim.AdamW, LARS vs the facebookresearch rule, exact state
// round trips), the warmup+cosine schedule and global-norm gradient clipping.
#include "worker/train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/model/model_test_util.h"
#include "worker/model/param_groups.h"
#include "worker/train/grad_clip.h"
#include "worker/train/lars.h"
#include "worker/train/lr_schedule.h"

namespace vicreg::train {
namespace {

using vicreg::testing::LoadTensors;
using vicreg::testing::MaxAbsDiff;
using vicreg::testing::NamedTensors;
using vicreg::testing::RunPython;
using vicreg::testing::SaveTensors;
using vicreg::testing::TempDir;

std::string Idx(size_t i) {  // "007": sorts like the number (the Python side sorts keys)
  std::string s = std::to_string(i);
  return std::string(s.size() < 3 ? 3 - s.size() : 0, '0') + s;
}

// Two groups of leaf tensors: decay (matrices) and no_decay (vectors, an embedding-like 3-D tensor).
model::ParamGroups MakeGroups(uint64_t seed) {
  at::manual_seed(seed);
  model::ParamGroups g;
  for (auto shape : std::vector<std::vector<int64_t>>{{5, 4}, {3, 6}, {2, 3, 4}}) {
    g.decay.push_back(at::randn(shape).requires_grad_(true));
    g.decay_names.push_back("w" + std::to_string(g.decay.size()));
  }
  for (auto shape : std::vector<std::vector<int64_t>>{{5}, {1, 3, 4}, {6}}) {
    g.no_decay.push_back(at::randn(shape).requires_grad_(true));
    g.no_decay_names.push_back("b" + std::to_string(g.no_decay.size()));
  }
  g.no_decay.push_back(at::zeros({4}).requires_grad_(true));  // zero parameter (LARS: |p| = 0)
  g.no_decay_names.push_back("zero");
  return g;
}

std::vector<at::Tensor> All(const model::ParamGroups& g) {
  auto v = g.decay;
  v.insert(v.end(), g.no_decay.begin(), g.no_decay.end());
  return v;
}

// Deterministic gradients for step s (same for every run).
void SetGrads(const model::ParamGroups& g, int s, NamedTensors* record) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + s);
  for (int gi = 0; gi < 2; ++gi) {
    const auto& ps = gi == 0 ? g.decay : g.no_decay;
    for (size_t i = 0; i < ps.size(); ++i) {
      auto grad = at::randn(ps[i].sizes(), gen);
      ps[i].mutable_grad() = grad;
      if (record) record->emplace_back("g" + std::to_string(s) + "." + std::to_string(gi) + "." + Idx(i), grad);
    }
  }
}

NamedTensors Initial(const model::ParamGroups& g) {
  NamedTensors t;
  for (size_t i = 0; i < g.decay.size(); ++i) t.emplace_back("p0." + Idx(i), g.decay[i].detach().clone());
  for (size_t i = 0; i < g.no_decay.size(); ++i) t.emplace_back("p1." + Idx(i), g.no_decay[i].detach().clone());
  return t;
}

void CompareWithPython(const std::string& kind, const OptimizerOptions& o, const std::vector<double>& hp, double tol) {
  auto g = MakeGroups(15);
  auto opt = BuildOptimizer(g, o);
  NamedTensors in = Initial(g);
  const std::vector<double> lrs = {0.1, 0.05, 0.2, 0.01};
  for (size_t s = 0; s < lrs.size(); ++s) {
    SetGrads(g, static_cast<int>(s), &in);
    SetLearningRate(*opt, lrs[s]);
    opt->step();
  }
  in.emplace_back("lr", at::tensor(lrs, at::kDouble));
  in.emplace_back("hp", at::tensor(hp, at::kDouble));
  TempDir dir;
  SaveTensors(dir.file("in.pt"), in);
  auto r = RunPython("reference_numerics.py", {kind, dir.file("in.pt"), dir.file("out.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = LoadTensors(dir.file("out.pt"));
  for (size_t i = 0; i < g.decay.size(); ++i) {
    const auto& want = ref.at("p0." + Idx(i));
    EXPECT_LT(MaxAbsDiff(g.decay[i], want) / std::max(1.0, want.abs().max().item<double>()), tol)
        << kind << " p0." << i;
  }
  for (size_t i = 0; i < g.no_decay.size(); ++i) {
    const auto& want = ref.at("p1." + Idx(i));
    EXPECT_LT(MaxAbsDiff(g.no_decay[i], want) / std::max(1.0, want.abs().max().item<double>()), tol)
        << kind << " p1." << i;
  }
}

TEST(Optimizer, AdamWEqualsTorchOptimAdamWWithTwoGroups) {
  OptimizerOptions o;
  o.type = OptimizerType::kAdamW, o.weight_decay = 0.05, o.beta1 = 0.8, o.beta2 = 0.99;
  CompareWithPython("adamw", o, {0.05, 0.8, 0.99, 1e-8}, 1e-6);
}

// The multi-tensor (_foreach) AdamW used for CUDA parameters, forced on CPU here: equals
// torch.optim.AdamW (via the Python reference) and the fused/reference kernels.
TEST(Optimizer, ForeachAdamWEqualsTorchOptimAdamW) {
  OptimizerOptions o;
  o.type = OptimizerType::kAdamW, o.weight_decay = 0.05, o.beta1 = 0.8, o.beta2 = 0.99;
  o.adamw_impl = AdamWImpl::kForeach;
  CompareWithPython("adamw", o, {0.05, 0.8, 0.99, 1e-8}, 1e-6);
}

TEST(Optimizer, AdamWKernelsAgree) {
  std::vector<std::vector<at::Tensor>> results;
  for (AdamWImpl impl : {AdamWImpl::kAuto, AdamWImpl::kForeach, AdamWImpl::kReference}) {
    OptimizerOptions o;
    o.weight_decay = 0.1, o.adamw_impl = impl;
    auto g = MakeGroups(21);
    auto opt = BuildOptimizer(g, o);
    for (int s = 0; s < 4; ++s) {
      SetGrads(g, s, nullptr);
      opt->step();
    }
    results.push_back(All(g));
  }
  for (size_t k = 1; k < results.size(); ++k)
    for (size_t i = 0; i < results[0].size(); ++i)
      EXPECT_LT(MaxAbsDiff(results[0][i], results[k][i]), 1e-6) << "kernel " << k << " param " << i;
}

TEST(Optimizer, LarsEqualsTheFacebookresearchRule) {
  OptimizerOptions o;
  o.type = OptimizerType::kLars, o.weight_decay = 0.01, o.momentum = 0.9, o.eta = 0.02;
  CompareWithPython("lars", o, {0.01, 0.9, 0.02}, 2e-6);
}

TEST(Optimizer, LarsTinyExampleByHand) {
  // p = [3, 4] (|p| = 5), g = [0, 1], wd = 0, eta = 0.1, lr = 1, momentum 0.9:
  //   trust ratio q = 0.1 * 5 / 1 = 0.5 -> dp = [0, 0.5]; mu = dp; p = [3, 3.5]
  //   step 2 (same grad): |p| = sqrt(9 + 12.25) = sqrt(21.25), q = 0.1 * sqrt(21.25);
  //   mu = 0.9 * [0, 0.5] + [0, q]; p = [3, 3.5 - mu_1]
  auto p = at::tensor({3.0f, 4.0f}).requires_grad_(true);
  auto b = at::tensor({1.0f, -2.0f}).requires_grad_(true);  // excluded: plain momentum SGD
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{p},
                      std::make_unique<LarsOptions>(LarsOptions(1.0).eta(0.1).weight_decay(0)));
  groups.emplace_back(std::vector<at::Tensor>{b},
                      std::make_unique<LarsOptions>(LarsOptions(1.0).eta(0.1).weight_decay(0.5).exclude(true)));
  Lars opt(std::move(groups));
  for (int s = 0; s < 2; ++s) {
    p.mutable_grad() = at::tensor({0.0f, 1.0f});
    b.mutable_grad() = at::tensor({1.0f, 1.0f});
    opt.step();
  }
  const double q2 = 0.1 * std::sqrt(21.25);
  EXPECT_NEAR(p[0].item<double>(), 3.0, 1e-6);
  EXPECT_NEAR(p[1].item<double>(), 3.5 - (0.45 + q2), 1e-6);
  // b: no decay, no adaptation: mu1 = 1, mu2 = 1.9 -> b = b0 - 1 - 1.9
  EXPECT_NEAR(b[0].item<double>(), 1.0 - 2.9, 1e-6);
  EXPECT_NEAR(b[1].item<double>(), -2.0 - 2.9, 1e-6);
}

// Steps after SaveState -> (pickle bytes, as a checkpoint stores them) -> LoadState into a fresh
// optimizer equal the uninterrupted run bit for bit.
void RoundTrip(OptimizerType type) {
  OptimizerOptions o;
  o.type = type, o.weight_decay = 0.1;
  auto ga = MakeGroups(16);
  auto opt_a = BuildOptimizer(ga, o);
  for (int s = 0; s < 3; ++s) {
    SetGrads(ga, s, nullptr);
    SetLearningRate(*opt_a, 0.01 * (s + 1));
    opt_a->step();
  }
  const auto bytes = torch::pickle_save(SaveState(*opt_a));
  // Resume: same parameter values in new tensors, new optimizer, loaded state.
  auto gb = MakeGroups(999);
  {
    c10::NoGradGuard ng;
    auto a = All(ga), b = All(gb);
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  auto opt_b = BuildOptimizer(gb, o);
  LoadState(*opt_b, torch::pickle_load(bytes), "test.pt");
  EXPECT_DOUBLE_EQ(GetLearningRate(*opt_b), 0.03);
  for (int s = 3; s < 6; ++s) {
    SetGrads(ga, s, nullptr);
    SetGrads(gb, s, nullptr);
    SetLearningRate(*opt_a, 0.01 * (s + 1));
    SetLearningRate(*opt_b, 0.01 * (s + 1));
    opt_a->step();
    opt_b->step();
  }
  auto a = All(ga), b = All(gb);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << static_cast<int>(type) << " param " << i;
  // Without the loaded state the result differs (the test can fail).
  auto gc = MakeGroups(999);
  {
    c10::NoGradGuard ng;
    auto src = All(ga), dst = All(gc);
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  auto opt_c = BuildOptimizer(gc, o);
  SetGrads(gc, 6, nullptr);
  SetGrads(ga, 6, nullptr);
  opt_a->step();
  opt_c->step();
  EXPECT_FALSE(at::equal(All(ga)[0], All(gc)[0]));
}

TEST(Optimizer, AdamWStateRoundTripsBitExactly) { RoundTrip(OptimizerType::kAdamW); }
TEST(Optimizer, LarsStateRoundTripsBitExactly) { RoundTrip(OptimizerType::kLars); }

TEST(Optimizer, LarsArchiveSaveLoadRoundTrips) {
  OptimizerOptions o;
  o.type = OptimizerType::kLars;
  auto ga = MakeGroups(17);
  auto opt_a = BuildOptimizer(ga, o);
  SetGrads(ga, 0, nullptr);
  opt_a->step();
  std::stringstream buf;
  {
    torch::serialize::OutputArchive ar;
    opt_a->save(ar);
    ar.save_to(buf);
  }
  auto gb = MakeGroups(17);
  {
    c10::NoGradGuard ng;
    auto a = All(ga), b = All(gb);
    for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  auto opt_b = BuildOptimizer(gb, o);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  opt_b->load(in);
  SetGrads(ga, 1, nullptr);
  SetGrads(gb, 1, nullptr);
  opt_a->step();
  opt_b->step();
  auto a = All(ga), b = All(gb);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << i;
}

TEST(Optimizer, LoadStateRejectsMismatchesNamingTheKey) {
  OptimizerOptions o;
  auto g = MakeGroups(18);
  auto opt = BuildOptimizer(g, o);
  SetGrads(g, 0, nullptr);
  opt->step();
  auto state = SaveState(*opt);
  auto expect_error = [&](const c10::IValue& s, const std::string& needle) {
    try {
      LoadState(*opt, s, "ckpt.pt");
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("ckpt.pt"), std::string::npos) << e.what();
    }
  };
  {
    auto d = state.toGenericDict().copy();
    d.insert_or_assign("kind", std::string("lars"));
    expect_error(d, "kind");
  }
  {
    auto d = state.toGenericDict().copy();
    ASSERT_EQ(d.erase("group0.param1.exp_avg_sq"), 1u);
    expect_error(d, "group0.param1.exp_avg_sq");
  }
  {
    auto d = state.toGenericDict().copy();
    d.insert_or_assign("group1.param0.exp_avg", at::zeros({7}));
    expect_error(d, "group1.param0.exp_avg");
  }
  {
    auto d = state.toGenericDict().copy();
    d.insert_or_assign("group0.num_params", int64_t{2});
    expect_error(d, "group0.num_params");
  }
  expect_error(c10::IValue(int64_t{3}), "not a dict");
  // The failed loads left the optimizer usable and unchanged: the valid state still loads.
  LoadState(*opt, state, "ckpt.pt");
}

TEST(Optimizer, OptionsFromConfig) {
  config::TrainConfig t;
  t.optimizer = "lars", t.momentum = 0.8, t.lars_eta = 0.002, t.weight_decay = 1e-6;
  auto o = OptimizerOptions::FromConfig(t);
  EXPECT_EQ(o.type, OptimizerType::kLars);
  EXPECT_EQ(o.momentum, 0.8);
  EXPECT_EQ(o.eta, 0.002);
  EXPECT_EQ(o.weight_decay, 1e-6);
  t.optimizer = "adamw", t.betas = {0.8, 0.95}, t.learning_rate = 0.5;
  o = OptimizerOptions::FromConfig(t);
  EXPECT_EQ(o.type, OptimizerType::kAdamW);
  EXPECT_EQ(o.beta1, 0.8);
  EXPECT_EQ(o.beta2, 0.95);
  EXPECT_EQ(o.lr, 0.5);
  auto g = MakeGroups(19);
  EXPECT_EQ(OptimizerKind(*BuildOptimizer(g, OptimizerOptions{})), "adamw");
  // Ranges and names are config::Validate's (one place, naming the field); FromConfig only maps.
  config::JobConfig job;
  job.train.optimizer = "sgd";
  job.train.betas = {0.9, 1.0};
  std::vector<std::string> fields;
  for (const auto& e : config::Validate(job)) fields.push_back(e.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"train.optimizer", "train.betas[1]"}));
  EXPECT_THROW(OptimizerOptions::FromConfig(job.train), InternalError);
}

TEST(LrSchedule, WarmupCosineValues) {
  LrScheduleOptions o;
  o.base_lr = 1.0, o.min_lr = 0.1, o.warmup_steps = 10, o.total_steps = 110;
  LrSchedule s(o);
  EXPECT_DOUBLE_EQ(s.At(0), 0.0);
  EXPECT_DOUBLE_EQ(s.At(5), 0.5);
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);     // end of warmup = peak
  EXPECT_NEAR(s.At(60), 0.55, 1e-12);  // cosine midpoint: (base + min) / 2
  EXPECT_NEAR(s.At(35), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_GT(s.At(109), 0.1);
  EXPECT_NEAR(s.At(109), 0.1, 1e-3);  // last step: just above min_lr
  EXPECT_DOUBLE_EQ(s.At(110), 0.1);
  EXPECT_DOUBLE_EQ(s.At(500), 0.1);
  for (int64_t i = 10; i < 110; ++i) EXPECT_LE(s.At(i + 1), s.At(i));
}

TEST(LrSchedule, SetTotalStepsMovesTheEndAndKeepsTheWarmup) {
  LrScheduleOptions o;
  o.base_lr = 1.0, o.min_lr = 0.1, o.warmup_steps = 10, o.total_steps = 110;
  LrSchedule s(o);
  s.SetTotalSteps(210);  // train.time_budget_s found room for 100 more steps
  EXPECT_DOUBLE_EQ(s.At(5), 0.5);
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);
  EXPECT_NEAR(s.At(110), 0.55, 1e-12);  // the midpoint moved with the end
  EXPECT_DOUBLE_EQ(s.At(210), 0.1);
  s.SetTotalSteps(11);  // one step after the warmup: that step is at the peak, then min_lr
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);
  EXPECT_DOUBLE_EQ(s.At(11), 0.1);
  EXPECT_THROW(s.SetTotalSteps(10), InternalError);  // the cosine needs a step after the warmup
}

TEST(LrSchedule, FromConfig) {
  config::TrainConfig t;
  t.learning_rate = 2e-3, t.min_lr = 1e-5, t.num_epochs = 4, t.warmup_epochs = 1.5;
  auto o = LrScheduleOptions::FromConfig(t, 10);
  EXPECT_EQ(o.total_steps, 40);
  EXPECT_EQ(o.warmup_steps, 15);
  LrSchedule s(o);
  EXPECT_DOUBLE_EQ(s.At(15), 2e-3);
  t.warmup_epochs = 0;
  EXPECT_DOUBLE_EQ(LrSchedule(LrScheduleOptions::FromConfig(t, 10)).At(0), 2e-3);  // no warmup: peak at once
  // warmup_epochs < num_epochs is config::Validate's rule (FromConfig does not check it again).
  config::JobConfig job;
  job.train.num_epochs = 4, job.train.warmup_epochs = 4;
  auto errors = config::Validate(job);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "train.warmup_epochs");
  EXPECT_THROW(LrSchedule(LrScheduleOptions::FromConfig(t, 0)), InternalError);  // no full batch: the Loader says so
}

TEST(GradClip, ClipsToMaxNormAndReportsThePreClipNorm) {
  auto a = at::zeros({2}).requires_grad_(true), b = at::zeros({1}).requires_grad_(true);
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  auto r = ClipGradNorm({a, b}, 1.0);
  EXPECT_NEAR(r.total_norm, 5.0, 1e-6);
  EXPECT_TRUE(r.finite);
  EXPECT_TRUE(r.clipped);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 4.0 / 5.0, 1e-6);
  // Below the threshold: untouched.
  auto before = a.grad().clone();
  auto r2 = ClipGradNorm({a, b}, 10.0);
  EXPECT_FALSE(r2.clipped);
  EXPECT_NEAR(r2.total_norm, 1.0, 1e-5);
  EXPECT_TRUE(at::equal(a.grad(), before));
  // max_norm 0: only measures.
  auto c = at::zeros({1}).requires_grad_(true);
  c.mutable_grad() = at::tensor({100.0f});
  EXPECT_NEAR(ClipGradNorm({c}, 0).total_norm, 100.0, 1e-4);
  EXPECT_EQ(c.grad()[0].item<float>(), 100.0f);
}

TEST(GradClip, NonFiniteNormLeavesGradientsUntouched) {
  auto a = at::zeros({2}).requires_grad_(true), b = at::zeros({1}).requires_grad_(true);
  a.mutable_grad() = at::tensor({3.0f, NAN});
  b.mutable_grad() = at::tensor({40.0f});
  auto r = ClipGradNorm({a, b, at::zeros({1}).requires_grad_(true)}, 1.0);  // undefined grad skipped
  EXPECT_FALSE(r.finite);
  EXPECT_FALSE(r.clipped);
  EXPECT_TRUE(std::isnan(r.total_norm));
  EXPECT_EQ(b.grad()[0].item<float>(), 40.0f);
  b.mutable_grad() = at::tensor({INFINITY});
  a.mutable_grad() = at::tensor({1.0f, 1.0f});
  EXPECT_FALSE(ClipGradNorm({a, b}, 1.0).finite);
}

}  // namespace
}  // namespace vicreg::train
