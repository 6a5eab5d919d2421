// SyncBatchNorm1d == torch::nn::BatchNorm1d at world size 1; projector layout and names; VicregModel.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/nn/modules/batchnorm.h>

#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/model/model_test_util.h"
#include "worker/comm/communicator.h"
#include "worker/comm/single_communicator.h"
#include "worker/model/projector.h"
#include "worker/model/sync_batchnorm.h"
#include "worker/model/vicreg_model.h"

namespace vicreg::model {
namespace {

using vicreg::testing::MaxAbsDiff;

void CompareWithBatchNorm(comm::Communicator* comm) {
  at::manual_seed(5);
  const int64_t B = 16, C = 7;
  SyncBatchNorm1d sbn(SyncBatchNormOptions(C), comm);
  torch::nn::BatchNorm1d bn(torch::nn::BatchNorm1dOptions(C).eps(1e-5).momentum(0.1));
  {
    c10::NoGradGuard ng;
    auto w = at::randn({C}), b = at::randn({C});
    sbn->weight.copy_(w), bn->weight.copy_(w);
    sbn->bias.copy_(b), bn->bias.copy_(b);
  }
  auto dy = at::randn({B, C});
  for (int step = 0; step < 3; ++step) {
    auto x = (at::randn({B, C}) * 3 + 2).requires_grad_(true);  // mean far from 0, var != 1
    auto x2 = x.detach().clone().requires_grad_(true);
    auto y1 = sbn->forward(x);
    auto y2 = bn->forward(x2);
    EXPECT_LT(MaxAbsDiff(y1, y2), 1e-5) << "step " << step;
    (y1 * dy).sum().backward();
    (y2 * dy).sum().backward();
    EXPECT_LT(MaxAbsDiff(x.grad(), x2.grad()), 1e-5);
    EXPECT_LT(MaxAbsDiff(sbn->weight.grad(), bn->weight.grad()), 1e-5);
    EXPECT_LT(MaxAbsDiff(sbn->bias.grad(), bn->bias.grad()), 1e-5);
    EXPECT_LT(MaxAbsDiff(sbn->running_mean, bn->running_mean), 1e-6);
    EXPECT_LT(MaxAbsDiff(sbn->running_var, bn->running_var), 1e-5);
    EXPECT_EQ(sbn->num_batches_tracked.item<int64_t>(), bn->num_batches_tracked.item<int64_t>());
  }
  EXPECT_EQ(sbn->num_batches_tracked.item<int64_t>(), 3);
  sbn->eval();
  bn->eval();
  auto x = at::randn({5, C});
  EXPECT_LT(MaxAbsDiff(sbn->forward(x), bn->forward(x)), 1e-5);
}

TEST(SyncBatchNorm, EqualsBatchNorm1dWithoutCommunicator) { CompareWithBatchNorm(nullptr); }

TEST(SyncBatchNorm, EqualsBatchNorm1dWithTheSingleCommunicator) {
  auto comm = comm::CreateSingleCommunicator(c10::Device(c10::kCPU));
  CompareWithBatchNorm(comm.get());
}

TEST(SyncBatchNorm, GradientsInFloat64MatchFiniteDifferences) {
  at::manual_seed(6);
  SyncBatchNorm1d sbn(SyncBatchNormOptions(3));
  sbn->to(at::kDouble);
  auto x = at::randn({6, 3}, at::kDouble).requires_grad_(true);
  auto dy = at::randn({6, 3}, at::kDouble);
  auto f = [&](const at::Tensor& in) { return (sbn->forward(in) * dy).sum(); };
  auto g = torch::autograd::grad({f(x)}, {x})[0];
  const double h = 1e-6;
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto xp = x.detach().clone(), xm = x.detach().clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    const double fd = (f(xp).item<double>() - f(xm).item<double>()) / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-6) << i;
  }
}

TEST(SyncBatchNorm, SingleSampleTrainingIsAClearError) {
  SyncBatchNorm1d sbn(SyncBatchNormOptions(4));
  try {
    sbn->forward(at::randn({1, 4}));
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size"), std::string::npos) << e.what();
  }
}

TEST(SyncBatchNorm, NamesMatchBatchNorm1d) {
  SyncBatchNorm1d sbn(SyncBatchNormOptions(4));
  torch::nn::BatchNorm1d bn(4);
  std::vector<std::string> a, b;
  for (const auto& it : sbn->named_parameters()) a.push_back(it.key());
  for (const auto& it : sbn->named_buffers()) a.push_back(it.key());
  for (const auto& it : bn->named_parameters()) b.push_back(it.key());
  for (const auto& it : bn->named_buffers()) b.push_back(it.key());
  EXPECT_EQ(a, b);
}

TEST(Projector, FacebookresearchLayoutAndNames) {
  Projector p(ProjectorOptions(8, 16, 12, 3));
  std::vector<std::string> names;
  for (const auto& it : p->named_parameters()) names.push_back(it.key() + ":" + c10::str(it.value().sizes()));
  const std::vector<std::string> expected = {"0.weight:[16, 8]", "0.bias:[16]",       "1.weight:[16]",
                                             "1.bias:[16]",      "3.weight:[16, 16]", "3.bias:[16]",
                                             "4.weight:[16]",    "4.bias:[16]",       "6.weight:[12, 16]"};
  EXPECT_EQ(names, expected);
  EXPECT_EQ(p->forward(at::randn({5, 8})).sizes(), at::IntArrayRef({5, 12}));
  Projector one(ProjectorOptions(8, 16, 12, 1));
  ASSERT_EQ(one->named_parameters().size(), 1u);
  EXPECT_EQ(one->named_parameters().begin()->key(), "0.weight");
}

TEST(Projector, ForwardIsLinearBnReluThenLinear) {
  at::manual_seed(7);
  Projector p(ProjectorOptions(6, 10, 4, 2));
  auto h = at::randn({9, 6});
  auto params = p->named_parameters();
  auto a = at::linear(h, params["0.weight"], params["0.bias"]);
  auto bn = at::batch_norm(a, params["1.weight"], params["1.bias"], {}, {}, true, 0.1, 1e-5, false);
  auto expected = at::linear(at::relu(bn), params["3.weight"]);
  EXPECT_LT(MaxAbsDiff(p->forward(h), expected), 1e-5);
}

TEST(Projector, InvalidConfigNamesTheField) {
  config::VicregConfig v;
  v.proj_layers = 0;
  try {
    ProjectorOptions::FromConfig(384, v);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("train.vicreg.proj_layers"), std::string::npos);
  }
}

VicregModelOptions TinyModel() {
  config::ModelConfig m;
  m.backbone_name = "vit_custom";
  m.image_size = 8, m.patch_size = 4, m.embed_dim = 16, m.depth = 2, m.num_heads = 2;
  config::VicregConfig v;
  v.proj_dim = 12, v.proj_hidden_dim = 20, v.proj_layers = 3;
  return VicregModelOptions::FromConfig(m, v);
}

TEST(VicregModel, StateDictKeysShapesAndForward) {
  VicregModel model(TinyModel());
  std::vector<std::string> keys;
  for (const auto& it : model->named_parameters()) keys.push_back(it.key());
  for (const auto& it : model->named_buffers()) keys.push_back(it.key());
  EXPECT_EQ(keys.front(), "encoder.cls_token");
  EXPECT_NE(std::find(keys.begin(), keys.end(), "encoder.blocks.1.attn.qkv.weight"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "projector.6.weight"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "projector.4.running_var"), keys.end());
  auto out = model->forward(at::randn({4, 3, 8, 8}));
  EXPECT_EQ(out.features.sizes(), at::IntArrayRef({4, 16}));
  EXPECT_EQ(out.z.sizes(), at::IntArrayRef({4, 12}));
  EXPECT_EQ(model->encoder_parameters().size(), 4u + 2 * 12 + 2);
}

// forward_pair (one encoder pass on [2B]) == forward(xa), forward(xb): outputs, grads, BN running stats.
TEST(VicregModel, ForwardPairEqualsTwoForwards) {
  at::manual_seed(8);
  VicregModel m1(TinyModel());
  VicregModel m2(TinyModel());
  m1->to(at::kDouble);
  m2->to(at::kDouble);
  {
    c10::NoGradGuard ng;
    auto p1 = m1->parameters(), p2 = m2->parameters();
    for (size_t i = 0; i < p1.size(); ++i) p2[i].copy_(p1[i]);
  }
  auto xa = at::randn({5, 3, 8, 8}, at::kDouble), xb = at::randn({5, 3, 8, 8}, at::kDouble);
  auto pair = m1->forward_pair(xa, xb);
  auto oa = m2->forward(xa);
  auto ob = m2->forward(xb);
  EXPECT_LT(MaxAbsDiff(pair.za, oa.z), 1e-12);
  EXPECT_LT(MaxAbsDiff(pair.zb, ob.z), 1e-12);
  EXPECT_LT(MaxAbsDiff(pair.features_b, ob.features), 1e-12);
  ((pair.za * pair.zb).sum() + pair.features_a.sum()).backward();
  ((oa.z * ob.z).sum() + oa.features.sum()).backward();
  auto p1 = m1->named_parameters(), p2 = m2->named_parameters();
  for (const auto& it : p1) {
    const auto& g2 = p2[it.key()].grad();
    EXPECT_LT(MaxAbsDiff(it.value().grad(), g2) / std::max(1.0, g2.abs().max().item<double>()), 1e-12) << it.key();
  }
  auto b1 = m1->named_buffers(), b2 = m2->named_buffers();
  for (const auto& it : b1) EXPECT_LT(MaxAbsDiff(it.value(), b2[it.key()]), 1e-12) << it.key();
}

TEST(VicregModel, ParamGroupsExcludeExactlyBiasesNormsAndEmbeddings) {
  VicregModel model(TinyModel());
  auto g = model->param_groups();
  std::vector<std::string> expected_no_decay = {"encoder.cls_token", "encoder.pos_embed",
                                                "encoder.patch_embed.proj.bias"};
  std::vector<std::string> expected_decay = {"encoder.patch_embed.proj.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string b = "encoder.blocks." + std::to_string(i) + ".";
    for (const char* s : {"norm1.weight", "norm1.bias", "attn.qkv.bias", "attn.proj.bias", "norm2.weight", "norm2.bias",
                          "mlp.fc1.bias", "mlp.fc2.bias"})
      expected_no_decay.push_back(b + s);
    for (const char* s : {"attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight"})
      expected_decay.push_back(b + s);
  }
  for (const char* s : {"encoder.norm.weight", "encoder.norm.bias", "projector.0.bias", "projector.1.weight",
                        "projector.1.bias", "projector.3.bias", "projector.4.weight", "projector.4.bias"})
    expected_no_decay.push_back(s);
  for (const char* s : {"projector.0.weight", "projector.3.weight", "projector.6.weight"}) expected_decay.push_back(s);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(g.no_decay_names), sorted(expected_no_decay));
  EXPECT_EQ(sorted(g.decay_names), sorted(expected_decay));
  EXPECT_EQ(g.decay.size() + g.no_decay.size(), model->parameters().size());
}

}  // namespace
}  // namespace vicreg::model
