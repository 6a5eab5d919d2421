// Export parity (issue 7): the encoder exported by `vicreg_eval export` loads strictly into an
// independent PyTorch ViT written from timm's architecture (tests/eval/export_parity.py), with
// exactly timm's keys and shapes for vit_small_patch16_224 at 96 px, and that model reproduces the
// features `vicreg_eval extract` writes to 1e-4.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/eval/eval_test_util.h"
#include "worker/model/tensor_file.h"

namespace vicreg::eval {
namespace {

using testing::RunProcess;
using testing::TempDir;

TEST(ExportParity, ExportedEncoderMatchesAnIndependentPytorchVit) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no python3-torch";
  TempDir dir;
  config::ModelConfig m;
  m.backbone_name = "vit_small_patch16_224";
  m.image_size = 96;
  testing::WriteCheckpoint(dir / "ck", 5, m, 3, /*perturb=*/0.05);

  // A 12-image tensor cache at 96 px (no resize in the eval transform) with its own mean/std.
  at::manual_seed(4);
  auto images = at::randint(0, 256, {12, 3, 96, 96}, at::TensorOptions().dtype(at::kByte));
  auto labels = at::arange(12, at::kLong).remainder(3);
  model::WriteTensorFile(dir / "cache.safetensors", {{"images", images}, {"labels", labels}},
                         {{"format", "vicreg-tensor-cache-v1"},
                          {"layout", "NCHW"},
                          {"num_classes", "3"},
                          {"mean", "[0.45, 0.5, 0.55]"},
                          {"std", "[0.2, 0.25, 0.3]"}});

  const std::string bin = testing::EvalBinary();
  auto r = RunProcess({bin, "export", "--checkpoint", dir / "ck/epoch_0005.pt", "--out", dir / "encoder.safetensors"},
                      dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("150 tensors"), std::string::npos) << r.out;
  r = RunProcess({bin, "extract", "--checkpoint", dir / "ck/epoch_0005.pt", "--dataset", "tensor_cache", "--data-dir",
                  dir / "cache.safetensors", "--split", "train", "--out", dir / "features.safetensors", "--quiet"},
                 dir.path());
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunProcess(
      {"/usr/bin/python3", std::string(VICREG_SOURCE_DIR) + "/tests/eval/export_parity.py", dir / "encoder.safetensors",
       dir / "features.safetensors", dir / "cache.safetensors", "vit_small_patch16_224", "96"},
      dir.path());
  std::printf("%s", r.out.c_str());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace vicreg::eval
