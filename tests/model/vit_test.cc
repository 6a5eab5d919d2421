// ViT: timm parameter names/shapes/counts, init, forward/backward against an independent PyTorch ViT.
#include "worker/model/vit.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/model/model_test_util.h"
#include "worker/model/init.h"

namespace vicreg::model {
namespace {

using vicreg::testing::LoadTensors;
using vicreg::testing::MaxAbsDiff;
using vicreg::testing::RunPython;
using vicreg::testing::SaveTensors;
using vicreg::testing::TempDir;

int64_t CountParams(const VisionTransformer& m) {
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  return n;
}

// timm's state_dict keys for VisionTransformer(num_classes=0, class_token=True, global_pool='token').
std::vector<std::string> TimmKeys(int depth) {
  std::vector<std::string> k = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"};
  for (int i = 0; i < depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* s :
         {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
          "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"})
      k.push_back(b + s);
  }
  k.push_back("norm.weight");
  k.push_back("norm.bias");
  return k;
}

TEST(Vit, SmallAt96HasTimmParameterCountKeysAndShapes) {
  VisionTransformer m(VitOptions::FromName("vit_small_patch16_224", 96));
  EXPECT_EQ(CountParams(m), 21604224);
  std::vector<std::string> names;
  for (const auto& it : m->named_parameters()) names.push_back(it.key());
  EXPECT_EQ(names.size(), 150u);
  EXPECT_EQ(names, TimmKeys(12));
  // The named buffers: none (timm's ViT has no buffers).
  EXPECT_EQ(m->named_buffers().size(), 0u);
  auto p = m->named_parameters();
  EXPECT_EQ(p["cls_token"].sizes(), at::IntArrayRef({1, 1, 384}));
  EXPECT_EQ(p["pos_embed"].sizes(), at::IntArrayRef({1, 37, 384}));
  EXPECT_EQ(p["patch_embed.proj.weight"].sizes(), at::IntArrayRef({384, 3, 16, 16}));
  EXPECT_EQ(p["blocks.11.attn.qkv.weight"].sizes(), at::IntArrayRef({1152, 384}));
  EXPECT_EQ(p["blocks.0.mlp.fc1.weight"].sizes(), at::IntArrayRef({1536, 384}));
  EXPECT_EQ(p["blocks.0.mlp.fc2.weight"].sizes(), at::IntArrayRef({384, 1536}));
}

TEST(Vit, KeysAndShapesEqualTheIndependentPythonArchitecture) {
  VisionTransformer m(VitOptions::FromName("vit_small", 96));
  std::ostringstream mine;
  for (const auto& it : m->named_parameters()) {
    mine << it.key() << " ";
    for (int64_t d = 0; d < it.value().dim(); ++d) mine << (d ? "x" : "") << it.value().size(d);
    mine << "\n";
  }
  auto r = RunPython("reference_vit.py", {"keys", "vit_small", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(mine.str(), r.output);
}

TEST(Vit, PresetSizes) {
  EXPECT_EQ(CountParams(VisionTransformer(VitOptions::FromName("vit_tiny", 96))), 5493696);
  EXPECT_EQ(CountParams(VisionTransformer(VitOptions::FromName("vit_base_patch16_224", 96))), 85675776);
  // timm's published head-less counts at 224 px (vit_tiny 5,524,416; vit_small 21,665,664).
  EXPECT_EQ(CountParams(VisionTransformer(VitOptions::FromName("vit_tiny", 224))), 5524416);
  auto o = VitOptions::FromName("vit_base", 64);
  EXPECT_EQ(o.patch_size, 16);
  EXPECT_EQ(o.embed_dim, 768);
  EXPECT_EQ(o.num_heads, 12);
  EXPECT_EQ(o.depth, 12);
}

TEST(Vit, FromConfigResolvesPresetsAndCustom) {
  config::ModelConfig c;
  c.backbone_name = "vit_custom";
  c.image_size = 32, c.patch_size = 4, c.embed_dim = 192, c.depth = 6, c.num_heads = 3;
  auto o = VitOptions::FromConfig(c);
  EXPECT_EQ(o.num_patches(), 64);
  EXPECT_EQ(o.embed_dim, 192);
  c.backbone_name = "vit_small_patch16_224";  // preset overrides the explicit sizes
  c.image_size = 96;
  o = VitOptions::FromConfig(c);
  EXPECT_EQ(o.patch_size, 16);
  EXPECT_EQ(o.embed_dim, 384);
  EXPECT_EQ(o.depth, 12);
}

TEST(Vit, InvalidGeometryNamesTheField) {
  auto expect_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { VitOptions::FromName("vit_small", 100); }, "model.image_size");
  expect_error([] { VitOptions::FromName("vit_huge", 96); }, "model.backbone_name");
  VitOptions bad;
  bad.embed_dim = 100, bad.num_heads = 3;
  expect_error([&] { VitOptions::FromName("custom", 96, bad); }, "model.embed_dim");
  bad = VitOptions();
  bad.depth = 0;
  expect_error([&] { VitOptions::FromName("custom", 96, bad); }, "model.depth");
  bad = VitOptions();
  bad.drop_path_rate = 1.0;
  expect_error([&] { VitOptions::FromName("custom", 96, bad); }, "model.drop_path_rate");
}

TEST(Vit, OutputShapes) {
  VitOptions o;
  o.patch_size = 4, o.embed_dim = 24, o.depth = 2, o.num_heads = 3;
  o = VitOptions::FromName("custom", 16, o);
  VisionTransformer m(o);
  auto x = at::randn({5, 3, 16, 16});
  EXPECT_EQ(m->forward(x).sizes(), at::IntArrayRef({5, 24}));
  EXPECT_EQ(m->forward_tokens(x).sizes(), at::IntArrayRef({5, 17, 24}));
  EXPECT_THROW(m->forward(at::randn({5, 3, 20, 20})), InternalError);
}

TEST(Vit, TimmInit) {
  at::manual_seed(1);
  VisionTransformer m(VitOptions::FromName("vit_small", 96));
  auto p = m->named_parameters();
  for (const char* w : {"blocks.3.attn.qkv.weight", "blocks.3.mlp.fc1.weight", "blocks.7.attn.proj.weight"}) {
    const auto& t = p[w];
    EXPECT_NEAR(t.std().item<double>(), 0.02, 0.001) << w;
    EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.001) << w;
    EXPECT_LE(t.abs().max().item<double>(), 2.0) << w;
  }
  EXPECT_NEAR(p["pos_embed"].std().item<double>(), 0.02, 0.002);
  EXPECT_LT(p["cls_token"].abs().max().item<double>(), 1e-5);
  EXPECT_GT(p["cls_token"].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(p["blocks.0.attn.qkv.bias"].eq(0).all().item<bool>());
  EXPECT_TRUE(p["blocks.0.mlp.fc2.bias"].eq(0).all().item<bool>());
  EXPECT_TRUE(p["blocks.5.norm1.weight"].eq(1).all().item<bool>());
  EXPECT_TRUE(p["norm.bias"].eq(0).all().item<bool>());
  // patch_embed.proj: PyTorch's default Conv2d init, U(-b, b) with b = 1/sqrt(fan_in) (kaiming_uniform a=sqrt(5)).
  const double bound = 1.0 / std::sqrt(3.0 * 16 * 16);
  EXPECT_LE(p["patch_embed.proj.weight"].abs().max().item<double>(), bound + 1e-7);
  EXPECT_NEAR(p["patch_embed.proj.weight"].abs().max().item<double>(), bound, bound * 0.01);
}

// The CLS-only last block of forward() must be exactly forward_tokens()[:, 0], values and gradients.
TEST(Vit, ClsShortcutEqualsFullComputationIncludingGradients) {
  at::manual_seed(2);
  VitOptions o;
  o.patch_size = 4, o.embed_dim = 32, o.depth = 3, o.num_heads = 4;
  o = VitOptions::FromName("custom", 16, o);
  VisionTransformer m(o);
  m->to(at::kDouble);
  auto x = at::randn({3, 3, 16, 16}, at::kDouble);
  auto r = at::randn({3, 32}, at::kDouble);
  auto params = m->parameters();
  auto g1 = torch::autograd::grad({(m->forward(x) * r).sum()}, params);
  auto g2 = torch::autograd::grad({(m->forward_tokens(x).select(1, 0) * r).sum()}, params);
  ASSERT_EQ(g1.size(), g2.size());
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_LT(MaxAbsDiff(g1[i], g2[i]), 1e-12) << i;
  EXPECT_LT(MaxAbsDiff(m->forward(x), m->forward_tokens(x).select(1, 0)), 1e-12);
}

TEST(Vit, DropPathIsStochasticInTrainingAndIdentityInEval) {
  at::manual_seed(3);
  VitOptions o;
  o.patch_size = 4, o.embed_dim = 16, o.depth = 4, o.num_heads = 2, o.drop_path_rate = 0.5;
  o = VitOptions::FromName("custom", 8, o);
  VisionTransformer m(o);
  auto x = at::randn({8, 3, 8, 8});
  m->eval();
  EXPECT_TRUE(at::equal(m->forward(x), m->forward(x)));
  m->train();
  EXPECT_FALSE(at::equal(m->forward(x), m->forward(x)));
}

// Forward (features, all tokens) and backward (input and every parameter) against the independent
// PyTorch implementation in tests/model/reference_vit.py, run in float64.
void CompareWithPython(at::ScalarType dtype, double tol_out, double tol_grad) {
  at::manual_seed(4);
  VitOptions o;
  o.patch_size = 4, o.embed_dim = 48, o.depth = 2, o.num_heads = 3, o.in_chans = 3;
  o = VitOptions::FromName("custom", 16, o);
  VisionTransformer m(o);
  {
    // Non-trivial LayerNorm affine, biases and cls token so that every parameter matters.
    c10::NoGradGuard ng;
    for (auto& p : m->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  m->to(dtype);
  auto x = at::randn({4, 3, 16, 16}).to(dtype).requires_grad_(true);
  auto r = at::randn({4, 48}).to(dtype);
  auto feats = m->forward(x);
  auto tokens = m->forward_tokens(x);
  (feats * r).sum().backward();

  TempDir dir;
  vicreg::testing::NamedTensors in = {
      {"cfg", at::tensor(std::vector<int64_t>{16, 4, 3, 48, 2, 3, 192})}, {"x", x.detach()}, {"r", r}};
  for (const auto& it : m->named_parameters()) in.emplace_back("w." + it.key(), it.value().detach());
  SaveTensors(dir.file("in.pt"), in);
  auto res = RunPython("reference_vit.py", {"forward", dir.file("in.pt"), dir.file("out.pt")});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  auto ref = LoadTensors(dir.file("out.pt"));
  EXPECT_LT(MaxAbsDiff(feats.detach(), ref.at("features")), tol_out);
  EXPECT_LT(MaxAbsDiff(tokens.detach(), ref.at("tokens")), tol_out);
  EXPECT_LT(MaxAbsDiff(x.grad(), ref.at("grad.x")), tol_grad);
  for (const auto& it : m->named_parameters()) {
    ASSERT_TRUE(ref.count("grad." + it.key())) << it.key();
    const auto& g = ref.at("grad." + it.key());
    const double scale = std::max(1.0, g.abs().max().item<double>());
    EXPECT_LT(MaxAbsDiff(it.value().grad(), g) / scale, tol_grad) << it.key();
  }
}

TEST(Vit, MatchesIndependentPythonViTInFloat32) { CompareWithPython(at::kFloat, 1e-5, 1e-4); }
TEST(Vit, MatchesIndependentPythonViTInFloat64) { CompareWithPython(at::kDouble, 1e-10, 1e-10); }

}  // namespace
}  // namespace vicreg::model

namespace vicreg::model {
namespace {

TEST(Init, TruncNormalRespectsBoundsAndMoments) {
  at::manual_seed(21);
  auto t = at::empty({200000});
  TruncNormal_(t, 0.0, 1.0, -1.0, 1.0);  // inverse-CDF path: N(0, 1) cut at +-1 sigma
  EXPECT_GE(t.min().item<double>(), -1.0);
  EXPECT_LE(t.max().item<double>(), 1.0);
  EXPECT_NEAR(t.std().item<double>(), 0.5379, 0.005);  // std of the standard normal truncated to [-1, 1]
  EXPECT_NEAR(t.mean().item<double>(), 0.0, 0.005);
  auto u = at::empty({200000});
  TruncNormal_(u, 1.0, 0.02, -2.0, 2.0);  // timm's case (cut at 100 sigma): plain normal
  EXPECT_NEAR(u.std().item<double>(), 0.02, 0.0005);
  EXPECT_NEAR(u.mean().item<double>(), 1.0, 0.0005);
}

}  // namespace
}  // namespace vicreg::model
