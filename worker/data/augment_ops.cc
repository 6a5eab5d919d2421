#include "worker/data/augment_ops.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/errors.h"

namespace vicreg::data::ops {

Interp ParseInterp(const std::string& name) {
  if (name == "nearest") return Interp::kNearest;
  if (name == "bilinear") return Interp::kBilinear;
  if (name == "bicubic") return Interp::kBicubic;
  throw UserError("augment interpolation: unknown value '" + name + "' (valid: bicubic, bilinear, nearest)");
}

// ---- resampling matrices --------------------------------------------------------------------
namespace {

// PIL / torch _upsample_*_aa filters.
double AaBilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double AaBicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}
// torch upsample_bicubic2d (A = -0.75).
double Cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
double Cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

}  // namespace

SparseRows::SparseRows(int64_t r, int64_t c, int64_t k)
    : rows(r),
      cols(c),
      cap(k),
      count(static_cast<size_t>(r), 0),
      col(static_cast<size_t>(r * k)),
      w(static_cast<size_t>(r * k)) {}

void SparseRows::Add(int64_t r, int64_t c, float v) {
  // Drop negligible weights: Gaussian tails underflow to denormals, and denormal operands make
  // every GEMM and elementwise op that touches them ~10x slower on x86.
  if (std::fabs(v) < 1e-12f) return;
  int32_t& k = count[static_cast<size_t>(r)];
  VICREG_CHECK(k < cap && c >= 0 && c < cols, "SparseRows::Add out of capacity/range");
  col[static_cast<size_t>(r * cap + k)] = static_cast<int32_t>(c);
  w[static_cast<size_t>(r * cap + k)] = v;
  ++k;
}

void SparseRows::ToDense(float* out) const {
  std::fill(out, out + rows * cols, 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t k = 0; k < count[static_cast<size_t>(r)]; ++k)
      out[r * cols + col[static_cast<size_t>(r * cap + k)]] += w[static_cast<size_t>(r * cap + k)];
}

void SparseRows::AddColumnSums(float* out, float scale) const {
  for (int64_t r = 0; r < rows; ++r)
    for (int32_t k = 0; k < count[static_cast<size_t>(r)]; ++k)
      out[col[static_cast<size_t>(r * cap + k)]] += w[static_cast<size_t>(r * cap + k)] * scale;
}

SparseRows ResizeRows(int64_t full, int64_t offset, int64_t length, int64_t out, Interp interp, bool antialias) {
  VICREG_CHECK(length >= 1 && offset >= 0 && offset + length <= full && out >= 1, "bad resize segment");
  const double scale = static_cast<double>(length) / static_cast<double>(out);
  const double interp_size = interp == Interp::kBicubic ? 4.0 : 2.0;
  const double support = antialias && scale >= 1.0 ? interp_size * 0.5 * scale : interp_size * 0.5;
  const int64_t cap = interp == Interp::kNearest ? 1 : antialias ? static_cast<int64_t>(std::ceil(2 * support)) + 2 : 4;
  SparseRows m(out, full, cap);
  auto add = [&](int64_t row, int64_t src, double v) {
    src = std::clamp<int64_t>(src, 0, length - 1);  // taps stay inside the crop
    m.Add(row, offset + src, static_cast<float>(v));
  };
  if (interp == Interp::kNearest) {
    const float fscale = static_cast<float>(length) / static_cast<float>(out);  // torch computes it in float
    for (int64_t d = 0; d < out; ++d)
      add(d, std::min(static_cast<int64_t>(std::floor(static_cast<float>(d) * fscale)), length - 1), 1.0);
    return m;
  }
  if (antialias) {
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    std::vector<double> w(static_cast<size_t>(cap));
    for (int64_t d = 0; d < out; ++d) {
      const double center = scale * (d + 0.5);
      const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
      const int64_t xsize =
          std::min<int64_t>(std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), length) - xmin, cap);
      double total = 0;
      for (int64_t j = 0; j < xsize; ++j) {
        const double x = (j + xmin - center + 0.5) * invscale;
        w[static_cast<size_t>(j)] = interp == Interp::kBicubic ? AaBicubic(x) : AaBilinear(x);
        total += w[static_cast<size_t>(j)];
      }
      for (int64_t j = 0; j < xsize; ++j)
        add(d, xmin + j, total != 0.0 ? w[static_cast<size_t>(j)] / total : w[static_cast<size_t>(j)]);
    }
    return m;
  }
  for (int64_t d = 0; d < out; ++d) {
    double src = scale * (d + 0.5) - 0.5;
    if (interp == Interp::kBilinear) {
      src = std::max(src, 0.0);
      const int64_t i0 = static_cast<int64_t>(src);
      const int64_t i1 = i0 < length - 1 ? i0 + 1 : i0;
      const double l1 = std::clamp(src - static_cast<double>(i0), 0.0, 1.0);
      add(d, i0, 1.0 - l1);
      add(d, i1, l1);
    } else {
      const int64_t i = static_cast<int64_t>(std::floor(src));
      const double t = src - static_cast<double>(i);
      constexpr double A = -0.75;
      add(d, i - 1, Cubic2(t + 1.0, A));
      add(d, i, Cubic1(t, A));
      add(d, i + 1, Cubic1(1.0 - t, A));
      add(d, i + 2, Cubic2(2.0 - t, A));
    }
  }
  return m;
}

SparseRows ShiftColumns(const SparseRows& m, int64_t offset, int64_t cols) {
  VICREG_CHECK(offset >= 0 && offset + m.cols <= cols, "shifted map outside the input");
  SparseRows out = m;
  out.cols = cols;
  for (auto& c : out.col) c += static_cast<int32_t>(offset);
  return out;
}

SparseRows FlipRows(const SparseRows& m) {
  SparseRows f(m.rows, m.cols, m.cap);
  for (int64_t r = 0; r < m.rows; ++r) {
    const int64_t src = m.rows - 1 - r;
    f.count[static_cast<size_t>(r)] = m.count[static_cast<size_t>(src)];
    std::copy_n(&m.col[static_cast<size_t>(src * m.cap)], m.cap, &f.col[static_cast<size_t>(r * m.cap)]);
    std::copy_n(&m.w[static_cast<size_t>(src * m.cap)], m.cap, &f.w[static_cast<size_t>(r * m.cap)]);
  }
  return f;
}

SparseRows GaussianBlurRows(int64_t n, int64_t ksize, double sigma) {
  VICREG_CHECK(ksize >= 1 && ksize % 2 == 1 && sigma > 0 && n >= 1, "gaussian kernel size must be odd and sigma > 0");
  // _get_gaussian_kernel1d in float32: x = linspace(-half, half), pdf = exp(-0.5 (x / sigma)^2), normalized.
  std::vector<float> k(static_cast<size_t>(ksize));
  float total = 0.f;
  const float s = static_cast<float>(sigma);
  for (int64_t t = 0; t < ksize; ++t) {
    const float x = static_cast<float>(t) - static_cast<float>(ksize - 1) * 0.5f;
    const float r = x / s;
    k[static_cast<size_t>(t)] = std::exp(-0.5f * r * r);
    total += k[static_cast<size_t>(t)];
  }
  for (auto& v : k) v /= total;
  const int64_t khalf = ksize / 2;
  const int64_t half = std::min<int64_t>(khalf, n - 1);  // reflect padding needs pad < n
  SparseRows m(n, n, 2 * half + 1);
  for (int64_t i = 0; i < n; ++i) {
    float row = 0.f;
    for (int64_t off = -half; off <= half; ++off) row += k[static_cast<size_t>(off + khalf)];
    for (int64_t off = -half; off <= half; ++off) {
      int64_t j = i + off;
      if (j < 0) j = -j;  // reflect: ... 2 1 | 0 1 2 ... (edge not repeated)
      if (j > n - 1) j = 2 * (n - 1) - j;
      // Images narrower than the kernel (half < khalf) keep rows summing to 1; otherwise row == 1.
      m.Add(i, j, half < khalf ? k[static_cast<size_t>(off + khalf)] / row : k[static_cast<size_t>(off + khalf)]);
    }
  }
  return m;
}

SparseRows Compose(const SparseRows& a, const SparseRows& b) {
  VICREG_CHECK(a.cols == b.rows, "maps do not chain");
  SparseRows out(a.rows, b.cols, a.cap * b.cap);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int32_t i = 0; i < a.count[static_cast<size_t>(r)]; ++i) {
      const float wa = a.w[static_cast<size_t>(r * a.cap + i)];
      const int64_t k = a.col[static_cast<size_t>(r * a.cap + i)];
      for (int32_t j = 0; j < b.count[static_cast<size_t>(k)]; ++j)
        out.Add(r, b.col[static_cast<size_t>(k * b.cap + j)], wa * b.w[static_cast<size_t>(k * b.cap + j)]);
    }
  return out;
}

void ComposeToDense(const SparseRows& a, const SparseRows& b, float* out) {
  VICREG_CHECK(a.cols == b.rows, "maps do not chain");
  std::fill(out, out + a.rows * b.cols, 0.f);
  for (int64_t r = 0; r < a.rows; ++r) {
    float* row = out + r * b.cols;
    for (int32_t i = 0; i < a.count[static_cast<size_t>(r)]; ++i) {
      const float wa = a.w[static_cast<size_t>(r * a.cap + i)];
      const int64_t k = a.col[static_cast<size_t>(r * a.cap + i)];
      const int32_t* bc = &b.col[static_cast<size_t>(k * b.cap)];
      const float* bw = &b.w[static_cast<size_t>(k * b.cap)];
      for (int32_t j = 0; j < b.count[static_cast<size_t>(k)]; ++j) row[bc[j]] += wa * bw[j];
    }
  }
}

at::Tensor StackDense(const std::vector<SparseRows>& ms) {
  VICREG_CHECK(!ms.empty(), "no maps to stack");
  const int64_t r = ms[0].rows, c = ms[0].cols;
  at::Tensor t = at::empty({static_cast<int64_t>(ms.size()), r, c}, at::kFloat);
  float* p = t.data_ptr<float>();
  for (const auto& m : ms) {
    VICREG_CHECK(m.rows == r && m.cols == c, "maps of different shapes");
    m.ToDense(p);
    p += r * c;
  }
  return t;
}

// images: [N, C, H, W]; my: [N, S1, H]; mx: [N, S2, W] -> [N, C, S1, S2] (a permuted view)
at::Tensor Resample(const at::Tensor& images, const at::Tensor& my, const at::Tensor& mx) {
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t s1 = my.size(1), s2 = mx.size(1);
  // Vertical first, all channels in one GEMM per sample: [N, S1, H] @ [N, H, C*W] -> [N, S1, C*W].
  const at::Tensor rows = images.permute({0, 2, 1, 3}).reshape({n, h, c * w});
  const at::Tensor t = at::bmm(my, rows).view({n, s1 * c, w});
  // Horizontal: [N, S1*C, W] @ [N, W, S2] -> [N, S1, C, S2], returned as a [N, C, S1, S2] view.
  return at::bmm(t, mx.transpose(1, 2)).view({n, s1, c, s2}).permute({0, 2, 1, 3});
}

// ---- photometric ----------------------------------------------------------------------------

// x: [N, 3, H, W] -> [N, 1, H, W]
at::Tensor Grayscale(const at::Tensor& x) {
  return (x.select(1, 0) * 0.2989 + x.select(1, 1) * 0.587 + x.select(1, 2) * 0.114).unsqueeze(1);
}

// x: [N, 3, H, W] -> [N]
at::Tensor GrayMean(const at::Tensor& x) {
  at::Tensor m = x.mean({2, 3});  // [N, 3]
  return m.select(1, 0) * 0.2989 + m.select(1, 1) * 0.587 + m.select(1, 2) * 0.114;
}

// x: [N, 3, H, W], wy: [N, H], wx: [N, W] -> [N]
at::Tensor WeightedGrayMean(const at::Tensor& x, const at::Tensor& wy, const at::Tensor& wx) {
  const int64_t n = x.size(0);
  at::Tensor g = Grayscale(x).squeeze(1);          // [N, H, W]
  at::Tensor row = at::bmm(wy.unsqueeze(1), g);    // [N, 1, W]
  return at::bmm(row, wx.unsqueeze(2)).view({n});  // [N]
}

namespace {
// [N] -> [N, 1, 1, 1] in x's dtype/device.
at::Tensor PerSample(const at::Tensor& v, const at::Tensor& x) { return v.view({-1, 1, 1, 1}).to(x.options()); }
}  // namespace

// x: [N, 3, H, W], factor: [N]
at::Tensor AdjustBrightness(const at::Tensor& x, const at::Tensor& factor) {
  return (x * PerSample(factor, x)).clamp_(0.0, 1.0);
}

// x: [N, 3, H, W], factor, mean: [N]
at::Tensor AdjustContrast(const at::Tensor& x, const at::Tensor& factor, const at::Tensor& mean) {
  return at::lerp(PerSample(mean, x).expand_as(x), x, PerSample(factor, x)).clamp_(0.0, 1.0);
}

// x: [N, 3, H, W], factor: [N]
at::Tensor AdjustSaturation(const at::Tensor& x, const at::Tensor& factor) {
  return at::lerp(Grayscale(x).expand_as(x), x, PerSample(factor, x)).clamp_(0.0, 1.0);
}

// x: [N, 3, H, W], shift: [N]
at::Tensor AdjustHue(const at::Tensor& x, const at::Tensor& shift) {
  // torchvision _rgb2hsv / _hsv2rgb, rewritten with the same math in fewer passes:
  //   v = max, chroma c = max - min, h6 = 6 h in [0, 6)
  //   channel n (r: 5, g: 3, b: 1): k = (n + h6) mod 6, out = v - c * clamp(min(k, 4 - k), 0, 1)
  // which equals torchvision's p/q/t table (p = v(1-s) = v - c, q = v - c f, t = v - c (1 - f)).
  // Masks are float 0/1 tensors (comparisons written into float outputs) instead of at::where,
  // and "mod 6" is k - 6 floor(k / 6): both several times faster on CPU than where/remainder.
  const at::Tensor r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  const at::Tensor maxc = at::amax(x, {1});  // [N, H, W]
  const at::Tensor cr = maxc - at::amin(x, {1});
  // 1 / chroma; gray pixels (chroma 0) get a finite value: their numerators are 0.
  const double tiny = x.scalar_type() == at::kDouble ? 1e-300 : 1e-30;
  const at::Tensor inv = at::clamp_min(cr, tiny).reciprocal_();
  at::Tensor mr = at::empty_like(maxc), mg = at::empty_like(maxc);
  at::eq_out(mr, maxc, r);  // r is max
  at::eq_out(mg, maxc, g);
  mg.sub_(mg * mr);                              // g is max and r is not
  const at::Tensor mb = at::rsub(mr + mg, 1.0);  // neither r nor g is max
  // hue sector in units of 60 degrees: (g - b)/c | 2 + (b - r)/c | 4 + (r - g)/c
  at::Tensor h6 = (g - b).mul_(inv).mul_(mr);
  h6.addcmul_((b - r).mul_(inv).add_(2.0), mg);
  h6.addcmul_((r - g).mul_(inv).add_(4.0), mb);
  h6.add_(shift.view({-1, 1, 1}).to(x.options()) * 6.0);
  h6.sub_(at::floor(h6 * (1.0 / 6.0)).mul_(6.0));  // mod 6
  at::Tensor out = at::empty_like(x);
  const double n_of[3] = {5.0, 3.0, 1.0};
  for (int ch = 0; ch < 3; ++ch) {
    at::Tensor k = h6 + n_of[ch];
    k.sub_(at::floor(k * (1.0 / 6.0)).mul_(6.0));  // mod 6
    at::Tensor a = at::minimum(k, at::rsub(k, 4.0)).clamp_(0.0, 1.0);
    at::Tensor o = out.select(1, ch);
    at::sub_out(o, maxc, a.mul_(cr));
  }
  return out;
}

at::Tensor Solarize(const at::Tensor& x, double threshold) {
  // x + [x >= t] (1 - 2x): the mask written as float, no at::where (slow on CPU).
  at::Tensor m = at::empty_like(x);
  at::ge_out(m, x, threshold);
  return at::addcmul(x, m, x.mul(-2.0).add_(1.0));
}

void NormalizeInPlace(at::Tensor& x, const std::array<double, 3>& mean, const std::array<double, 3>& std) {
  // (x - m) / s as x * (1/s) + (-m/s): two broadcast passes.
  at::Tensor scale = at::empty({1, 3, 1, 1}, at::kFloat), shift = at::empty({1, 3, 1, 1}, at::kFloat);
  for (int c = 0; c < 3; ++c) {
    scale.data_ptr<float>()[c] = static_cast<float>(1.0 / std[static_cast<size_t>(c)]);
    shift.data_ptr<float>()[c] = static_cast<float>(-mean[static_cast<size_t>(c)] / std[static_cast<size_t>(c)]);
  }
  x.mul_(scale.to(x.options())).add_(shift.to(x.options()));  // x.options(): dtype and device of x
}

}  // namespace vicreg::data::ops
