// Two-view VICReg augmentation as batched tensor ops (same code on CPU and CUDA tensors).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <utility>

#include "common/config.h"

namespace vicreg::data {

class ViewAugmenter {
 public:
  ViewAugmenter(const config::ViewAugmentConfig& cfg, int image_size,
                std::array<double, 3> mean, std::array<double, 3> std);
  // images: uint8 [B, 3, H, W]; seed: per-batch seed (per-sample randomness derived from it).
  // returns float32 [B, 3, S, S], normalized.
  at::Tensor operator()(const at::Tensor& images, uint64_t seed) const;

 private:
  config::ViewAugmentConfig cfg_;
  int image_size_;
  std::array<double, 3> mean_, std_;
};

// Eval transform: resize to image_size (bicubic) + normalize, no randomness.
at::Tensor EvalTransform(const at::Tensor& images, int image_size,
                         std::array<double, 3> mean, std::array<double, 3> std);

}  // namespace vicreg::data
