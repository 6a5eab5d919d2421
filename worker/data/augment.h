// Two-view VICReg augmentation as batched tensor ops (same code on CPU and CUDA tensors).
//
// One ViewAugmenter per view (config::ViewAugmentConfig; facebookresearch's asymmetric defaults:
// view1 blur 1.0 / solarize 0.0, view2 blur 0.1 / solarize 0.2). Per sample, in torchvision's
// semantics: RandomResizedCrop(image_size, scale, ratio, interpolation) with torchvision's
// sampling (10 tries, then the center-crop fallback), horizontal flip, ColorJitter(brightness,
// contrast, saturation, hue) in a random order with probability jitter_prob, grayscale (ITU-R
// 601-2 luma), Gaussian blur (sigma ~ U(blur_sigma), kernel odd(round(blur_kernel_fraction *
// image_size)) >= 3, reflect padding), solarization (threshold on 0..255), then normalization.
//
// Randomness: all parameters are drawn on the CPU, per sample, from a generator seeded with
// MixSeed(seed, first_sample + k) (worker/data/random.h), and moved to the images' device; so CPU
// and CUDA draw the same parameters, and a sample's augmentation depends only on (seed, its
// position in the global batch), not on the batch it is computed in (W ranks x B == 1 x W*B).
// Probabilities 0 and crop scale (1, 1) + ratio (1, 1) make a view deterministic.
//
// Execution order (AugmentOrder, the job's augment.order):
//   kPhotometricFirst (default): color jitter and grayscale run on the SOURCE pixels, then crop,
//     resize, flip and blur run as ONE separable linear map (two batched GEMMs), then clamp,
//     solarize, normalize. Brightness/contrast/saturation/grayscale commute exactly with the
//     linear crop/resize/blur (contrast blends toward the mean of the crop's resized pixels,
//     computed from the resize weights); they differ from torchvision's order only where a
//     clamp to [0, 1] is active or through the hue rotation's nonlinearity at color edges. For
//     32 px sources and 96 px views this costs 1/9 of the pixel work and is what makes the CPU
//     pipeline >= 10x torchvision's (see vicreg_bench augment).
//   kTorchvision: crop/resize/flip, then jitter, grayscale, blur at the output size, then
//     solarize and normalize: torchvision's exact order (slower on CPU when upsampling).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/config.h"

namespace vicreg::data {

enum class AugmentOrder { kPhotometricFirst, kTorchvision };
// augment.order: "photometric_first" | "torchvision" (validated by config::Validate).
AugmentOrder AugmentOrderFromConfig(const config::AugmentConfig& augment);

// One sample's random draws (the CPU side of a view).
struct ViewParams {
  int64_t top = 0, left = 0, height = 0, width = 0;  // crop box in source pixels
  bool flip = false;
  bool jitter = false;
  std::array<double, 4> factors = {1, 1, 1, 0};  // brightness, contrast, saturation, hue shift
  std::array<int, 4> order = {0, 1, 2, 3};       // jitter ops (indices into factors) in application order
  bool grayscale = false;
  bool blur = false;
  double sigma = 1.0;
  bool solarize = false;
};

struct ViewAugmenterOptions {
  AugmentOrder order = AugmentOrder::kPhotometricFirst;
  // Antialiased (PIL-equivalent) resize kernels, like the PIL-based torchvision pipeline and
  // torchvision >= 0.17 on tensors; false = torch's upsample_bicubic2d/bilinear2d (A = -0.75).
  bool antialias = true;
};

class ViewAugmenter {
 public:
  // cfg: a view of a validated config (config::Validate checks augment.viewN.*). Throws UserError for an
  // image_size < 1 or a std value <= 0.
  ViewAugmenter(const config::ViewAugmentConfig& cfg, int image_size, std::array<double, 3> mean,
                std::array<double, 3> std, ViewAugmenterOptions opts = {});
  // images: uint8 [B, 3, H, W]; seed: per-batch view seed; first_sample: position of images[0] in
  // the global batch (rank * B). returns float32 [B, 3, S, S], normalized, on images' device.
  at::Tensor operator()(const at::Tensor& images, uint64_t seed, int64_t first_sample = 0) const;

  // The draws operator() uses, for a batch of `batch` sources of src_h x src_w.
  std::vector<ViewParams> SampleParams(int64_t batch, int64_t src_h, int64_t src_w, uint64_t seed,
                                       int64_t first_sample = 0) const;
  // images: uint8 [B, 3, H, W] (or float in [0, 1]); params.size() == B -> float32 [B, 3, S, S].
  at::Tensor Apply(const at::Tensor& images, const std::vector<ViewParams>& params) const;

  const config::ViewAugmentConfig& config() const { return cfg_; }
  int image_size() const { return image_size_; }
  int blur_kernel_size() const { return blur_kernel_; }

 private:
  at::Tensor ApplyPhotometricFirst(at::Tensor x, const std::vector<ViewParams>& params) const;
  at::Tensor ApplyTorchvision(at::Tensor x, const std::vector<ViewParams>& params) const;
  void JitterAndGray(at::Tensor& x, const std::vector<ViewParams>& params, const at::Tensor& mean_wy,
                     const at::Tensor& mean_wx) const;
  at::Tensor Finish(at::Tensor x, const std::vector<ViewParams>& params) const;

  config::ViewAugmentConfig cfg_;
  int image_size_;
  std::array<double, 3> mean_, std_;
  ViewAugmenterOptions opts_;
  int blur_kernel_ = 3;
  int interp_ = 0;  // ops::Interp
};

// Eval transform: resize to image_size x image_size (bicubic, antialiased) + normalize, no randomness.
// images: uint8 [B, 3, H, W] -> float32 [B, 3, S, S] on images' device.
at::Tensor EvalTransform(const at::Tensor& images, int image_size, std::array<double, 3> mean,
                         std::array<double, 3> std);

}  // namespace vicreg::data
