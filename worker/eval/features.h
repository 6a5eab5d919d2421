// Frozen-feature extraction for the probes: the encoder's normed CLS token on EvalTransform'ed
// images (resize + normalize, no augmentation), batched, with the next batch read and
// transformed in the background while the encoder runs. Also the raw-pixel reference features.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "worker/data/dataset.h"
#include "worker/model/vit.h"

namespace vicreg::eval {

// images: float [B, 3, S, S] on the encoder's device -> features [B, D].
using EncodeFn = std::function<at::Tensor(const at::Tensor& images)>;

struct ExtractOptions {
  int batch_size = 256;
  int image_size = 96;                           // EvalTransform output size (the encoder's input)
  std::array<double, 3> mean = {0.5, 0.5, 0.5};  // normalization (0..1 scale)
  std::array<double, 3> std = {0.5, 0.5, 0.5};
  c10::Device device = c10::Device(c10::kCPU);  // where the encoder runs; features come back to CPU
  bool progress = true;                         // progress line on stderr
  std::string label = "features";               // progress label
};

struct FeatureSet {
  at::Tensor features;  // fp32 [N, D] on CPU
  at::Tensor labels;    // int64 [N] (-1 for unlabeled samples)
  double seconds = 0;   // wall time of the extraction
};

// Features of `indices` (all samples when empty) of `dataset`, in that order.
FeatureSet ExtractFeatures(const EncodeFn& encode, const data::Dataset& dataset, const ExtractOptions& opts,
                           const std::vector<int64_t>& indices = {});
// Same with a ViT: eval mode and no autograd during the extraction, previous mode restored.
FeatureSet ExtractFeatures(model::VisionTransformer& encoder, const data::Dataset& dataset, const ExtractOptions& opts,
                           const std::vector<int64_t>& indices = {});

// Raw-pixel reference: images at their native resolution, scaled to 0..1, normalized with
// mean/std and flattened -> [N, C*H*W] (C = the stored channels: grayscale stays 1 channel).
FeatureSet RawPixelFeatures(const data::Dataset& dataset, std::array<double, 3> mean, std::array<double, 3> std,
                            int batch_size = 1024, bool progress = true, const std::string& label = "raw pixels");

}  // namespace vicreg::eval
