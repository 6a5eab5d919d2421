#include "worker/data/augment.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>

#include "common/errors.h"
#include "worker/data/augment_ops.h"
#include "worker/data/random.h"

namespace vicreg::data {

AugmentOrder AugmentOrderFromConfig(const config::AugmentConfig& augment) {
  return augment.order == "torchvision" ? AugmentOrder::kTorchvision : AugmentOrder::kPhotometricFirst;
}
namespace {

using ops::SparseRows;

void Require(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw UserError("augment: " + field + " " + what);
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// torchvision RandomResizedCrop.get_params, with the same draws in the same order.
void SampleCrop(SampleRng& rng, int64_t height, int64_t width, const std::array<double, 2>& scale,
                const std::array<double, 2>& ratio, ViewParams* p) {
  const double area = static_cast<double>(height) * width;
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.Uniform(scale[0], scale[1]);
    const double aspect = std::exp(rng.Uniform(log_r0, log_r1));
    // Python's round() is round-half-to-even, like nearbyint in the default rounding mode.
    const int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      p->top = rng.Below(height - h + 1);
      p->left = rng.Below(width - w + 1);
      p->height = h;
      p->width = w;
      return;
    }
  }
  // Fallback to a central crop.
  const double in_ratio = static_cast<double>(width) / height;
  int64_t w, h;
  if (in_ratio < ratio[0]) {
    w = width;
    h = static_cast<int64_t>(std::nearbyint(w / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    h = height;
    w = static_cast<int64_t>(std::nearbyint(h * ratio[1]));
  } else {
    w = width;
    h = height;
  }
  h = std::clamp<int64_t>(h, 1, height);
  w = std::clamp<int64_t>(w, 1, width);
  p->top = (height - h) / 2;
  p->left = (width - w) / 2;
  p->height = h;
  p->width = w;
}

// Indices of the samples selected by `pick` (computed on the CPU: no device sync).
template <typename Pick>
std::vector<int64_t> Select(const std::vector<ViewParams>& params, Pick pick) {
  std::vector<int64_t> idx;
  for (size_t b = 0; b < params.size(); ++b)
    if (pick(params[b])) idx.push_back(static_cast<int64_t>(b));
  return idx;
}

at::Tensor ToDevice(const std::vector<int64_t>& v, const at::Device& device) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return device.is_cpu() ? t : t.to(device);
}

// Applies fn to the samples `idx` of x (all of them without gather/scatter when idx covers x).
template <typename Fn>
void ForSubset(at::Tensor& x, const std::vector<int64_t>& idx, const at::Tensor& idx_dev, Fn fn) {
  if (idx.empty()) return;
  if (static_cast<int64_t>(idx.size()) == x.size(0)) {
    x = fn(x, idx_dev);
    return;
  }
  at::Tensor sub = fn(x.index_select(0, idx_dev), idx_dev);
  x.index_copy_(0, idx_dev, sub);
}

}  // namespace

ViewAugmenter::ViewAugmenter(const config::ViewAugmentConfig& cfg, int image_size, std::array<double, 3> mean,
                             std::array<double, 3> std, ViewAugmenterOptions opts)
    : cfg_(cfg), image_size_(image_size), mean_(mean), std_(std), opts_(opts) {
  // cfg passed config::Validate (augment.viewN.*); image_size and std come from the caller.
  Require(image_size >= 1, "image_size", "must be >= 1, got " + std::to_string(image_size));
  for (double s : std) Require(s > 0, "std", "values must be > 0, got " + Num(s));
  interp_ = static_cast<int>(ops::ParseInterp(cfg.interpolation));
  int k = static_cast<int>(std::nearbyint(cfg.blur_kernel_fraction * image_size));
  if (k % 2 == 0) ++k;
  blur_kernel_ = std::max(k, 3);
}

std::vector<ViewParams> ViewAugmenter::SampleParams(int64_t batch, int64_t src_h, int64_t src_w, uint64_t seed,
                                                    int64_t first_sample) const {
  std::vector<ViewParams> out(static_cast<size_t>(batch));
  const auto& c = cfg_;
  for (int64_t k = 0; k < batch; ++k) {
    SampleRng rng(MixSeed(seed, static_cast<uint64_t>(first_sample + k)));
    ViewParams& p = out[static_cast<size_t>(k)];
    SampleCrop(rng, src_h, src_w, c.crop_scale, c.crop_ratio, &p);
    p.flip = rng.Bernoulli(c.hflip_prob);
    p.jitter = rng.Bernoulli(c.jitter_prob);
    // ColorJitter.get_params: a random permutation of the four ops, then the factors.
    for (int i = 3; i > 0; --i)
      std::swap(p.order[static_cast<size_t>(i)], p.order[static_cast<size_t>(rng.Below(i + 1))]);
    p.factors[0] = rng.Uniform(std::max(0.0, 1.0 - c.brightness), 1.0 + c.brightness);
    p.factors[1] = rng.Uniform(std::max(0.0, 1.0 - c.contrast), 1.0 + c.contrast);
    p.factors[2] = rng.Uniform(std::max(0.0, 1.0 - c.saturation), 1.0 + c.saturation);
    p.factors[3] = rng.Uniform(-c.hue, c.hue);
    p.grayscale = rng.Bernoulli(c.grayscale_prob);
    p.blur = rng.Bernoulli(c.blur_prob);
    p.sigma = rng.Uniform(c.blur_sigma[0], c.blur_sigma[1]);
    p.solarize = rng.Bernoulli(c.solarize_prob);
  }
  return out;
}

at::Tensor ViewAugmenter::operator()(const at::Tensor& images, uint64_t seed, int64_t first_sample) const {
  VICREG_CHECK(images.dim() == 4 && images.size(1) == 3, "ViewAugmenter expects images [B, 3, H, W]");
  return Apply(images, SampleParams(images.size(0), images.size(2), images.size(3), seed, first_sample));
}

at::Tensor ViewAugmenter::Apply(const at::Tensor& images, const std::vector<ViewParams>& params) const {
  VICREG_CHECK(images.dim() == 4 && images.size(1) == 3, "ViewAugmenter expects images [B, 3, H, W]");
  VICREG_CHECK(static_cast<int64_t>(params.size()) == images.size(0), "one ViewParams per image");
  // uint8 [0, 255] -> float [0, 1]; always a fresh tensor (later steps work in place).
  at::Tensor x = images.scalar_type() == at::kByte ? images.to(at::kFloat).div_(255.0)
                                                   : images.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (images.size(0) == 0) return at::empty({0, 3, image_size_, image_size_}, x.options());
  return opts_.order == AugmentOrder::kPhotometricFirst ? ApplyPhotometricFirst(std::move(x), params)
                                                        : ApplyTorchvision(std::move(x), params);
}

void ViewAugmenter::JitterAndGray(at::Tensor& x, const std::vector<ViewParams>& params, const at::Tensor& mean_wy,
                                  const at::Tensor& mean_wx) const {
  const at::Device dev = x.device();
  const int64_t b = x.size(0);
  const bool enabled[4] = {cfg_.brightness > 0, cfg_.contrast > 0, cfg_.saturation > 0, cfg_.hue > 0};
  if (cfg_.jitter_prob > 0 && (enabled[0] || enabled[1] || enabled[2] || enabled[3])) {
    at::Tensor factors = at::empty({b, 4}, at::kFloat);
    float* f = factors.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i)
      for (int k = 0; k < 4; ++k)
        f[i * 4 + k] = static_cast<float>(params[static_cast<size_t>(i)].factors[static_cast<size_t>(k)]);
    factors = factors.to(dev);
    for (int step = 0; step < 4; ++step) {
      for (int op = 0; op < 4; ++op) {
        if (!enabled[op]) continue;
        const auto idx =
            Select(params, [&](const ViewParams& p) { return p.jitter && p.order[static_cast<size_t>(step)] == op; });
        if (idx.empty()) continue;
        const at::Tensor idx_dev = ToDevice(idx, dev);
        ForSubset(x, idx, idx_dev, [&](const at::Tensor& sub, const at::Tensor& id) {
          const at::Tensor fac = factors.index_select(0, id).select(1, op);  // [n]
          switch (op) {
            case 0: return ops::AdjustBrightness(sub, fac);
            case 1: {
              const at::Tensor mean = mean_wy.defined() ? ops::WeightedGrayMean(sub, mean_wy.index_select(0, id),
                                                                                mean_wx.index_select(0, id))
                                                        : ops::GrayMean(sub);
              return ops::AdjustContrast(sub, fac, mean);
            }
            case 2: return ops::AdjustSaturation(sub, fac);
            default: return ops::AdjustHue(sub, fac);
          }
        });
      }
    }
  }
  const auto gidx = Select(params, [](const ViewParams& p) { return p.grayscale; });
  if (!gidx.empty())
    ForSubset(x, gidx, ToDevice(gidx, dev), [](const at::Tensor& sub, const at::Tensor&) {
      return ops::Grayscale(sub).expand({-1, 3, -1, -1}).contiguous();
    });
}

at::Tensor ViewAugmenter::ApplyPhotometricFirst(at::Tensor x, const std::vector<ViewParams>& params) const {
  const at::Device dev = x.device();
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3), s = image_size_;
  const auto interp = static_cast<ops::Interp>(interp_);
  // Resize maps depend on the crop length only (the offset shifts their columns): at most one
  // per distinct length and axis per batch.
  std::unordered_map<int64_t, SparseRows> base_y, base_x;
  auto resize = [&](std::unordered_map<int64_t, SparseRows>& cache, int64_t full, int64_t offset, int64_t length) {
    auto it = cache.find(length);
    if (it == cache.end())
      it = cache.emplace(length, ops::ResizeRows(length, 0, length, s, interp, opts_.antialias)).first;
    return ops::ShiftColumns(it->second, offset, full);
  };
  // Per sample: crop + resize (+ flip) (+ blur) as one map per axis, and the crop's column sums.
  at::Tensor my = at::empty({b, s, h}, at::kFloat), mx = at::empty({b, s, w}, at::kFloat);
  at::Tensor wy = at::zeros({b, h}, at::kFloat), wx = at::zeros({b, w}, at::kFloat);
  for (int64_t i = 0; i < b; ++i) {
    const ViewParams& p = params[static_cast<size_t>(i)];
    SparseRows ry = resize(base_y, h, p.top, p.height);
    SparseRows rx = resize(base_x, w, p.left, p.width);
    // Contrast blends toward the mean of the resized crop = a weighted mean of the source pixels
    // with the column sums of the resize maps (flip and blur do not change the mean).
    ry.AddColumnSums(wy.data_ptr<float>() + i * h, 1.0f / static_cast<float>(s));
    rx.AddColumnSums(wx.data_ptr<float>() + i * w, 1.0f / static_cast<float>(s));
    if (p.flip) rx = ops::FlipRows(rx);
    float* dy = my.data_ptr<float>() + i * s * h;
    float* dx = mx.data_ptr<float>() + i * s * w;
    if (p.blur) {  // the blur runs on the output grid: blur o (flip o) resize
      const SparseRows g = ops::GaussianBlurRows(s, blur_kernel_, p.sigma);
      ops::ComposeToDense(g, ry, dy);
      ops::ComposeToDense(g, rx, dx);
    } else {
      ry.ToDense(dy);
      rx.ToDense(dx);
    }
  }
  const bool need_mean = cfg_.jitter_prob > 0 && cfg_.contrast > 0;
  JitterAndGray(x, params, need_mean ? wy.to(dev) : at::Tensor(), need_mean ? wx.to(dev) : at::Tensor());
  // Every row of the maps sums to 1, so My ((x - m) / s) Mx^T = (My x Mx^T - m) / s: normalizing
  // the source costs 1/9 of a pass at 32 -> 96 px; the clamp to [0, 1] and the solarization then
  // use per-channel bounds in normalized units.
  ops::NormalizeInPlace(x, mean_, std_);
  const at::Tensor view = ops::Resample(x, my.to(dev), mx.to(dev));  // [B, 3, S, S] view
  at::Tensor out = at::empty({b, 3, s, s}, view.options());
  for (int c = 0; c < 3; ++c) {  // clamp + make contiguous
    at::Tensor oc = out.select(1, c);
    at::clamp_out(oc, view.select(1, c), -mean_[c] / std_[c], (1.0 - mean_[c]) / std_[c]);
  }
  const auto sidx = Select(params, [](const ViewParams& p) { return p.solarize; });
  if (!sidx.empty()) {
    ForSubset(out, sidx, ToDevice(sidx, dev), [&](const at::Tensor& sub, const at::Tensor&) {
      at::Tensor res = sub;  // a gathered copy, or `out` itself when every sample is solarized
      for (int c = 0; c < 3; ++c) {
        // raw: x >= t -> 1 - x;  normalized (z = (x - m)/s): z >= (t - m)/s -> (1 - 2m)/s - z
        at::Tensor z = res.select(1, c);
        at::Tensor mask = at::empty_like(z);
        at::ge_out(mask, z, (cfg_.solarize_threshold / 255.0 - mean_[c]) / std_[c]);
        z.addcmul_(mask, z.mul(-2.0).add_((1.0 - 2.0 * mean_[c]) / std_[c]));
      }
      return res;
    });
  }
  return out;
}

at::Tensor ViewAugmenter::ApplyTorchvision(at::Tensor x, const std::vector<ViewParams>& params) const {
  const at::Device dev = x.device();
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3), s = image_size_;
  const auto interp = static_cast<ops::Interp>(interp_);
  std::vector<SparseRows> my(static_cast<size_t>(b)), mx(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    const ViewParams& p = params[static_cast<size_t>(i)];
    my[static_cast<size_t>(i)] = ops::ResizeRows(h, p.top, p.height, s, interp, opts_.antialias);
    SparseRows rx = ops::ResizeRows(w, p.left, p.width, s, interp, opts_.antialias);
    mx[static_cast<size_t>(i)] = p.flip ? ops::FlipRows(rx) : std::move(rx);
  }
  const at::Tensor view = ops::Resample(x, ops::StackDense(my).to(dev), ops::StackDense(mx).to(dev));
  at::Tensor out = at::empty({b, 3, s, s}, view.options());
  at::clamp_out(out, view, 0.0, 1.0);
  JitterAndGray(out, params, at::Tensor(), at::Tensor());
  const auto bidx = Select(params, [](const ViewParams& p) { return p.blur; });
  if (!bidx.empty()) {
    std::vector<SparseRows> g;
    for (int64_t i : bidx) g.push_back(ops::GaussianBlurRows(s, blur_kernel_, params[static_cast<size_t>(i)].sigma));
    const at::Tensor gm = ops::StackDense(g).to(dev);  // [n, S, S]
    ForSubset(out, bidx, ToDevice(bidx, dev),
              [&](const at::Tensor& sub, const at::Tensor&) { return ops::Resample(sub, gm, gm).contiguous(); });
  }
  return Finish(std::move(out), params);
}

at::Tensor ViewAugmenter::Finish(at::Tensor x, const std::vector<ViewParams>& params) const {
  const auto sidx = Select(params, [](const ViewParams& p) { return p.solarize; });
  if (!sidx.empty()) {
    const double thr = cfg_.solarize_threshold / 255.0;
    ForSubset(x, sidx, ToDevice(sidx, x.device()),
              [&](const at::Tensor& sub, const at::Tensor&) { return ops::Solarize(sub, thr); });
  }
  ops::NormalizeInPlace(x, mean_, std_);
  return x;
}

at::Tensor EvalTransform(const at::Tensor& images, int image_size, std::array<double, 3> mean,
                         std::array<double, 3> std) {
  VICREG_CHECK(images.dim() == 4 && images.size(1) == 3, "EvalTransform expects images [B, 3, H, W]");
  if (image_size < 1) throw UserError("eval transform: image_size must be >= 1, got " + std::to_string(image_size));
  for (double s : std)
    if (!(s > 0)) throw UserError("eval transform: std values must be > 0, got " + Num(s));
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  at::Tensor x = images.scalar_type() == at::kByte ? images.to(at::kFloat).div_(255.0)
                                                   : images.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (b > 0 && (h != image_size || w != image_size)) {
    const at::Device dev = x.device();
    const at::Tensor my = ops::StackDense({ops::ResizeRows(h, 0, h, image_size, ops::Interp::kBicubic, true)}).to(dev);
    const at::Tensor mx = ops::StackDense({ops::ResizeRows(w, 0, w, image_size, ops::Interp::kBicubic, true)}).to(dev);
    x = ops::Resample(x, my.expand({b, -1, -1}), mx.expand({b, -1, -1})).clamp(0.0, 1.0);  // contiguous
  }
  ops::NormalizeInPlace(x, mean, std);
  return x;
}

}  // namespace vicreg::data
