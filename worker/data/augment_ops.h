// Batched augmentation primitives (the building blocks of ViewAugmenter, exposed for tests).
// Every tensor op works on float images in [0, 1], shape [N, 3, H, W], on any device; per-sample
// parameters are tensors of shape [N] on the images' device. The formulas are torchvision's
// (torchvision/transforms/functional_tensor.py, 0.14). The resampling/blur matrices are built on
// the CPU in plain C++ (they are parameters, not pixels) and moved to the device by the caller.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vicreg::data::ops {

enum class Interp { kNearest, kBilinear, kBicubic };
Interp ParseInterp(const std::string& name);  // "nearest" | "bilinear" | "bicubic"; UserError otherwise

// ---- spatial: separable linear maps -----------------------------------------------------------
// A 1-D linear map out[r] = sum_c m[r][c] * in[c] with a few nonzeros per row (resampling taps,
// blur kernels), built on the CPU. Entries of a row may repeat a column (they add up); weights
// below 1e-12 in magnitude are dropped (no denormals reach the GEMMs).
struct SparseRows {
  int64_t rows = 0, cols = 0, cap = 0;  // cap: max entries per row
  std::vector<int32_t> count;           // [rows]
  std::vector<int32_t> col;             // [rows * cap]
  std::vector<float> w;                 // [rows * cap]
  SparseRows() = default;
  SparseRows(int64_t rows, int64_t cols, int64_t cap);
  void Add(int64_t r, int64_t c, float v);
  // Dense row-major [rows, cols] into out (overwritten).
  void ToDense(float* out) const;
  // out[c] += sum_r m[r][c] * scale (column sums).
  void AddColumnSums(float* out, float scale) const;
};

// Resize of the segment [offset, offset + length) of an axis of `full` pixels to `out` pixels,
// as torchvision's resized_crop does on that axis (pixel centers, align_corners=False):
//   antialias=true : the convolution of torch's _upsample_*_aa / PIL (bicubic a=-0.5, support scaled
//                    when downsampling; what the PIL-based torchvision pipeline computes)
//   antialias=false: torch's upsample_bilinear2d / upsample_bicubic2d (A=-0.75, clamped taps)
//   nearest        : torch's "nearest" (floor(dst * in/out)), antialias ignored
// Taps never leave the segment (clamped to it), like cropping first and resizing the crop.
SparseRows ResizeRows(int64_t full, int64_t offset, int64_t length, int64_t out, Interp interp, bool antialias);
// m with every column index moved by +offset, as a map from `cols` inputs (a crop of the same
// length at another position).
SparseRows ShiftColumns(const SparseRows& m, int64_t offset, int64_t cols);
// out[s] = m[rows-1-s]: a horizontal flip applied after m.
SparseRows FlipRows(const SparseRows& m);
// torchvision's gaussian_blur along one axis of n pixels (odd ksize, sigma, reflect padding), as
// an [n, n] map. The kernel is _get_gaussian_kernel1d's, computed in float32.
SparseRows GaussianBlurRows(int64_t n, int64_t ksize, double sigma);
// a o b: (a o b)[r] = sum_k a[r][k] * b[k]   (apply b, then a).
SparseRows Compose(const SparseRows& a, const SparseRows& b);
// Dense row-major [a.rows, b.cols] of a o b into out (overwritten), without the sparse intermediate.
void ComposeToDense(const SparseRows& a, const SparseRows& b, float* out);
// Stacks per-sample maps (all the same shape) into a dense float CPU tensor [N, rows, cols].
at::Tensor StackDense(const std::vector<SparseRows>& ms);

// images: [N, C, H, W] float; my: [N, S1, H]; mx: [N, S2, W] (same device) -> [N, C, S1, S2]
// out[n, c] = my[n] @ images[n, c] @ mx[n]^T  (two batched GEMMs). The result may be a
// non-contiguous view (the GEMMs run in an [N, S1, C, S2] layout); callers that need
// contiguous memory fuse the copy with their next op.
at::Tensor Resample(const at::Tensor& images, const at::Tensor& my, const at::Tensor& mx);

// ---- photometric (torchvision formulas, float images in [0, 1]) -------------------------------
// x: [N, 3, H, W] -> [N, 1, H, W]: 0.2989 r + 0.587 g + 0.114 b (rgb_to_grayscale).
at::Tensor Grayscale(const at::Tensor& x);
// Mean of Grayscale(x) per sample -> [N] (adjust_contrast's mean).
at::Tensor GrayMean(const at::Tensor& x);
// Weighted mean of Grayscale(x): sum_hw wy[n,h] wx[n,w] gray[n,h,w] -> [N]. wy: [N, H], wx: [N, W],
// each summing to 1 (the mean that a resize with those column sums would have).
at::Tensor WeightedGrayMean(const at::Tensor& x, const at::Tensor& wy, const at::Tensor& wx);
// factor: [N]. clamp(f * x, 0, 1).
at::Tensor AdjustBrightness(const at::Tensor& x, const at::Tensor& factor);
// factor, mean: [N]. clamp(f * x + (1 - f) * mean, 0, 1).
at::Tensor AdjustContrast(const at::Tensor& x, const at::Tensor& factor, const at::Tensor& mean);
// factor: [N]. clamp(f * x + (1 - f) * gray(x), 0, 1).
at::Tensor AdjustSaturation(const at::Tensor& x, const at::Tensor& factor);
// shift: [N] in [-0.5, 0.5]. RGB -> HSV, h = (h + shift) mod 1, HSV -> RGB.
at::Tensor AdjustHue(const at::Tensor& x, const at::Tensor& shift);
// where(x >= threshold, 1 - x, x); threshold on the 0..1 scale.
at::Tensor Solarize(const at::Tensor& x, double threshold);
// In place: (x - mean[c]) / std[c].
void NormalizeInPlace(at::Tensor& x, const std::array<double, 3>& mean, const std::array<double, 3>& std);

}  // namespace vicreg::data::ops
