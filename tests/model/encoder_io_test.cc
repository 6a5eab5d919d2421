// Encoder export/import in timm's format: key list and shapes, exact round trip, strict refusal.
#include "worker/model/encoder_io.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/errors.h"
#include "worker/model/tensor_file.h"

namespace vicreg::model {
namespace {

VitOptions Tiny() {
  VitOptions o;
  o.image_size = 32;
  o.patch_size = 8;
  o.embed_dim = 32;
  o.depth = 2;
  o.num_heads = 2;
  return o;
}

NamedTensors StateOf(VisionTransformer& vit) {
  NamedTensors s;
  for (const auto& p : vit->named_parameters()) s.emplace_back(p.key(), p.value().detach().clone());
  return s;
}

class EncoderIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vicreg_encoder_io_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(EncoderIo, TimmKeyListMatchesTheModuleForVitSmallAt96) {
  VisionTransformer vit(VitOptions::FromName("vit_small_patch16_224", 96));
  auto keys = TimmEncoderKeys(vit->options());
  auto params = vit->named_parameters();
  ASSERT_EQ(keys.size(), params.size());
  ASSERT_EQ(keys.size(), 4u + 12u * 12u + 2u);
  size_t i = 0;
  for (const auto& p : params) {
    EXPECT_EQ(keys[i].first, p.key());
    EXPECT_EQ(at::IntArrayRef(keys[i].second), p.value().sizes()) << p.key();
    ++i;
  }
  EXPECT_EQ(keys[1].first, "pos_embed");
  EXPECT_EQ(keys[1].second, (std::vector<int64_t>{1, 37, 384}));
  EXPECT_EQ(keys[2].second, (std::vector<int64_t>{384, 3, 16, 16}));
}

TEST_F(EncoderIo, ExportThenImportReproducesIdenticalParameters) {
  at::manual_seed(1);
  VisionTransformer a(Tiny());
  const auto path = Path("enc.safetensors");
  EncoderExportOptions eo;
  eo.architecture = "vit_custom";
  eo.extra_metadata["epoch"] = "7";
  EXPECT_EQ(ExportEncoderSafetensors(StateOf(a), a->options(), path, eo), 4 + 2 * 12 + 2);
  at::manual_seed(2);
  VisionTransformer b(Tiny());
  LoadEncoderSafetensors(b, path);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& p : pa) EXPECT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
  auto file = ReadTensorFile(path);
  EXPECT_EQ(file.metadata["architecture"], "vit_custom");
  EXPECT_EQ(file.metadata["img_size"], "32");
  EXPECT_EQ(file.metadata["patch_size"], "8");
  EXPECT_EQ(file.metadata["epoch"], "7");
  EXPECT_EQ(file.metadata["format"], "pt");
  for (const auto& [k, t] : file.tensors) EXPECT_EQ(t.scalar_type(), at::kFloat) << k;
  // Same features from both models.
  a->eval();
  b->eval();
  auto x = at::randn({2, 3, 32, 32});
  EXPECT_TRUE(at::equal(a->forward(x), b->forward(x)));
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST_F(EncoderIo, MissingExtraAndMisshapenKeysAreRefusedNamingKeyAndFile) {
  VisionTransformer vit(Tiny());
  auto good = StateOf(vit);

  auto missing = good;
  missing.erase(missing.begin() + 5);  // blocks.0.norm1.bias
  WriteTensorFile(Path("missing.safetensors"), missing);
  auto msg = ErrorOf([&] { LoadEncoderSafetensors(vit, Path("missing.safetensors")); });
  EXPECT_NE(msg.find("missing key 'blocks.0.norm1.bias'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing.safetensors"), std::string::npos) << msg;

  auto extra = good;
  extra.emplace_back("head.weight", at::zeros({10, 32}));
  WriteTensorFile(Path("extra.safetensors"), extra);
  msg = ErrorOf([&] { LoadEncoderSafetensors(vit, Path("extra.safetensors")); });
  EXPECT_NE(msg.find("unexpected key 'head.weight'"), std::string::npos) << msg;

  auto shape = good;
  shape[6].second = at::zeros({96, 16});  // blocks.0.attn.qkv.weight should be [96, 32]
  WriteTensorFile(Path("shape.safetensors"), shape);
  msg = ErrorOf([&] { LoadEncoderSafetensors(vit, Path("shape.safetensors")); });
  EXPECT_NE(msg.find("key 'blocks.0.attn.qkv.weight' has shape [96, 16], the model expects [96, 32]"),
            std::string::npos)
      << msg;

  // The model is untouched by a refused file.
  auto after = StateOf(vit);
  for (size_t i = 0; i < good.size(); ++i) EXPECT_TRUE(at::equal(good[i].second, after[i].second));

  // Export refuses the same problems.
  msg = ErrorOf([&] { ExportEncoderSafetensors(extra, vit->options(), Path("out.safetensors")); });
  EXPECT_NE(msg.find("unexpected key 'head.weight'"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(Path("out.safetensors")));
  msg = ErrorOf([&] { LoadEncoderSafetensors(vit, Path("does_not_exist.safetensors")); });
  EXPECT_NE(msg.find("does_not_exist.safetensors"), std::string::npos) << msg;
}

TEST_F(EncoderIo, PosEmbedOfAnotherGridIsResampledOnlyWhenAsked) {
  VisionTransformer small(Tiny());  // grid 4x4
  auto opts = Tiny();
  opts.image_size = 48;  // grid 6x6
  VisionTransformer big(opts);
  auto state = StateOf(small);
  auto msg = ErrorOf([&] { LoadEncoderState(big, state, "mem"); });
  EXPECT_NE(msg.find("key 'pos_embed' has shape [1, 17, 32], the model expects [1, 37, 32]"), std::string::npos) << msg;
  LoadEncoderState(big, state, "mem", /*resample_pos_embed=*/true);
  auto pe = big->named_parameters()["pos_embed"];
  EXPECT_TRUE(at::equal(pe.narrow(1, 0, 1), state[1].second.narrow(1, 0, 1)));  // class token row kept
  // A constant grid stays constant under bicubic resampling.
  auto constant = at::cat({at::zeros({1, 1, 4}), at::full({1, 16, 4}, 0.5)}, 1);
  auto r = ResamplePosEmbed(constant, 6);
  EXPECT_EQ(r.sizes(), (std::vector<int64_t>{1, 37, 4}));
  EXPECT_TRUE(at::allclose(r.narrow(1, 1, 36), at::full({1, 36, 4}, 0.5), 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(ResamplePosEmbed(constant, 4), constant));
}

TEST_F(EncoderIo, EncoderStateFromModelStateDropsTheProjector) {
  NamedTensors model = {{"encoder.cls_token", at::zeros({1})},
                        {"projector.0.weight", at::zeros({1})},
                        {"encoder.norm.bias", at::zeros({1})}};
  auto enc = EncoderStateFromModelState(model, "ck.pt");
  ASSERT_EQ(enc.size(), 2u);
  EXPECT_EQ(enc[0].first, "cls_token");
  EXPECT_EQ(enc[1].first, "norm.bias");
  auto msg = ErrorOf([&] { EncoderStateFromModelState({{"projector.0.weight", at::zeros({1})}}, "ck.pt"); });
  EXPECT_NE(msg.find("ck.pt"), std::string::npos);
  EXPECT_NE(msg.find("encoder."), std::string::npos);
}

}  // namespace
}  // namespace vicreg::model
