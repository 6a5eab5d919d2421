// Augmentation: every primitive against torchvision 0.14 (reference_color.py, float64), crop
// sampling against torchvision's get_params statistics, and the properties of ViewAugmenter:
// determinism, identities at probability 0, exact flips, batch-slice invariance, the two orders.
#include "worker/data/augment.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/errors.h"
#include "tests/data/data_test_util.h"
#include "worker/data/augment_ops.h"

namespace vicreg::data {
namespace {

using testing::TempDir;

const std::string kScript = std::string(VICREG_SOURCE_DIR) + "/tests/data/reference_color.py";

// Collects reference cases, runs reference_color.py once, reads the outputs back.
class Reference {
 public:
  explicit Reference(const TempDir& dir) : dir_(dir) {}
  // x: CPU float64 [N, C, H, W]. Returns the case id.
  int Add(const std::string& op, const at::Tensor& x, nlohmann::json params) {
    const int id = static_cast<int>(cases_.size());
    nlohmann::json c = {{"op", op}, {"params", std::move(params)}, {"output", dir_ / ("out" + std::to_string(id))}};
    if (x.defined()) {
      const at::Tensor xc = x.to(at::kDouble).contiguous();
      const std::string in = dir_ / ("in" + std::to_string(id));
      std::ofstream f(in, std::ios::binary);
      f.write(reinterpret_cast<const char*>(xc.data_ptr<double>()), static_cast<std::streamsize>(xc.numel() * 8));
      c["input"] = in;
      c["shape"] = xc.sizes().vec();
    }
    cases_.push_back(c);
    return id;
  }
  void Run() {
    const std::string job = dir_ / "job.json";
    std::ofstream(job) << nlohmann::json{{"cases", cases_}}.dump();
    ASSERT_EQ(testing::RunPython(kScript, {job}), 0) << "reference_color.py failed";
  }
  at::Tensor Output(int id) const {
    const std::string out = dir_ / ("out" + std::to_string(id));
    std::ifstream sf(out + ".shape");
    std::vector<int64_t> shape;
    for (int64_t d; sf >> d;) shape.push_back(d);
    at::Tensor t = at::empty(shape, at::kDouble);
    std::ifstream f(out, std::ios::binary);
    f.read(reinterpret_cast<char*>(t.data_ptr<double>()), static_cast<std::streamsize>(t.numel() * 8));
    EXPECT_TRUE(f.good()) << "cannot read " << out;
    return t;
  }

 private:
  const TempDir& dir_;
  std::vector<nlohmann::json> cases_;
};

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

at::Tensor Doubles(const std::vector<double>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kDouble);
  std::copy(v.begin(), v.end(), t.data_ptr<double>());
  return t;
}

// Random images in [0, 1] with a few special pixels: an all-gray image, pure black/white rows,
// a primary-color row and ties between channels (hue edge cases).
at::Tensor TestImages(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::rand({n, 3, h, w}, gen, at::kDouble);
  x[0] = x[0][0].unsqueeze(0).expand({3, h, w});  // gray: r = g = b
  x[1].select(1, 0).zero_();                      // black row
  x[1].select(1, 1).fill_(1.0);                   // white row
  x[2].select(1, 0).zero_();
  x[2][0].select(0, 0).fill_(1.0);  // red row
  x[3][1] = x[3][0];                // r == g ties
  return x;
}

// One reference_color.py run (torch import ~3 s) serves every test of the fixture.
class Torchvision : public ::testing::Test {
 protected:
  struct Cases {
    TempDir tmp;
    Reference ref{tmp};
    bool ok = false;
    int brightness, contrast, saturation, hue, gray, solarize, blur5, blur9, crop_params;
    struct Crop {
      std::string interp;
      bool aa;
      int64_t size;
      int id;
    };
    std::vector<Crop> crops;
  };
  static void SetUpTestSuite();
  static void TearDownTestSuite() { cases_.reset(); }
  void SetUp() override {
    if (!cases_ || !cases_->ok)
      GTEST_SKIP() << "/usr/bin/python3 with torch + torchvision is needed (python3-torchvision)";
  }
  static std::unique_ptr<Cases> cases_;
};
std::unique_ptr<Torchvision::Cases> Torchvision::cases_;

const std::vector<double> kBright = {0, 0.6, 1, 1.4, 2, 0.9, 1.1, 1.3},
                          kContrast = {0.6, 1.4, 0, 1, 2, 0.75, 1.2, 0.95}, kSat = {0.8, 1.2, 0, 1, 2, 0.9, 1.05, 1.15},
                          kHue = {-0.5, -0.3, -0.1, 0, 0.05, 0.2, 0.5, 0.37},
                          kSigmas = {0.1, 0.5, 1.0, 2.0, 0.3, 1.7, 0.8, 1.2};
const std::vector<std::array<int64_t, 4>> kBoxes = {{0, 0, 16, 20}, {3, 5, 7, 9}, {0, 1, 16, 11},
                                                    {9, 0, 7, 20},  {2, 2, 1, 3}, {5, 7, 10, 13}};
constexpr int kCropSamples = 20000;

void Torchvision::SetUpTestSuite() {
  if (!testing::HavePythonTorchvision()) return;
  cases_ = std::make_unique<Cases>();
  Cases& c = *cases_;
  const at::Tensor x = TestImages(8, 9, 11, 7);
  c.brightness = c.ref.Add("brightness", x, {{"factors", kBright}});
  c.contrast = c.ref.Add("contrast", x, {{"factors", kContrast}});
  c.saturation = c.ref.Add("saturation", x, {{"factors", kSat}});
  c.hue = c.ref.Add("hue", x, {{"factors", kHue}});
  c.gray = c.ref.Add("grayscale", x, nlohmann::json::object());
  c.solarize = c.ref.Add("solarize", x, {{"threshold", 128.0 / 255.0}});
  const at::Tensor xb = TestImages(8, 12, 15, 8);
  c.blur5 = c.ref.Add("blur", xb, {{"kernel", 5}, {"sigmas", kSigmas}});
  c.blur9 = c.ref.Add("blur", xb, {{"kernel", 9}, {"sigmas", kSigmas}});
  const at::Tensor xc = TestImages(6, 16, 20, 9);
  nlohmann::json bj = nlohmann::json::array();
  for (const auto& bx : kBoxes) bj.push_back({bx[0], bx[1], bx[2], bx[3]});
  for (const char* interp : {"bicubic", "bilinear", "nearest"})
    for (bool aa : {true, false})
      for (int64_t size : {24, 7}) {
        if (std::string(interp) == "nearest" && aa) continue;
        c.crops.push_back({interp, aa, size,
                           c.ref.Add("resized_crop", xc,
                                     {{"boxes", bj}, {"size", size}, {"interpolation", interp}, {"antialias", aa}})});
      }
  c.crop_params = c.ref.Add("crop_params", at::Tensor(),
                            {{"n", kCropSamples},
                             {"height", 32},
                             {"width", 32},
                             {"scale", {0.2, 1.0}},
                             {"ratio", {3.0 / 4.0, 4.0 / 3.0}},
                             {"seed", 3}});
  c.ref.Run();
  c.ok = !::testing::Test::HasFatalFailure();
}

TEST_F(Torchvision, ColorOpsMatchFunctionalOnFloat64) {
  Cases& c = *cases_;
  Reference& ref = c.ref;
  const at::Tensor x = TestImages(8, 9, 11, 7);
  const auto& bright = kBright;
  const auto& contrast = kContrast;
  const auto& sat = kSat;
  const auto& hue = kHue;
  const auto& sigmas = kSigmas;
  const int b = c.brightness, cc = c.contrast, s = c.saturation, h = c.hue, g = c.gray, so = c.solarize, bl = c.blur5,
            bl9 = c.blur9;
  const at::Tensor xb = TestImages(8, 12, 15, 8);

  const at::Tensor f_b = Doubles(bright), f_c = Doubles(contrast), f_s = Doubles(sat), f_h = Doubles(hue);
  EXPECT_LT(MaxAbsDiff(ops::AdjustBrightness(x, f_b), ref.Output(b)), 1e-9);
  EXPECT_LT(MaxAbsDiff(ops::AdjustContrast(x, f_c, ops::GrayMean(x)), ref.Output(cc)), 1e-9);
  EXPECT_LT(MaxAbsDiff(ops::AdjustSaturation(x, f_s), ref.Output(s)), 1e-9);
  EXPECT_LT(MaxAbsDiff(ops::AdjustHue(x, f_h), ref.Output(h)), 1e-9);
  EXPECT_LT(MaxAbsDiff(ops::Grayscale(x), ref.Output(g)), 1e-12);
  EXPECT_LT(MaxAbsDiff(ops::Solarize(x, 128.0 / 255.0), ref.Output(so)), 1e-12);
  // The float32 path (what training uses) stays within 1e-3 of the float64 reference (it is ~1e-6).
  const at::Tensor xf = x.to(at::kFloat);
  EXPECT_LT(MaxAbsDiff(ops::AdjustBrightness(xf, f_b), ref.Output(b)), 1e-5);
  EXPECT_LT(MaxAbsDiff(ops::AdjustContrast(xf, f_c, ops::GrayMean(xf)), ref.Output(cc)), 1e-5);
  EXPECT_LT(MaxAbsDiff(ops::AdjustSaturation(xf, f_s), ref.Output(s)), 1e-5);
  EXPECT_LT(MaxAbsDiff(ops::AdjustHue(xf, f_h), ref.Output(h)), 1e-5);
  // Blur: per-sample sigma, kernel 5 and 9 (reflect padding) as separable maps.
  for (auto [id, k] : {std::pair<int, int>{bl, 5}, {bl9, 9}}) {
    std::vector<ops::SparseRows> gy, gx;
    for (double sg : sigmas) {
      gy.push_back(ops::GaussianBlurRows(12, k, sg));
      gx.push_back(ops::GaussianBlurRows(15, k, sg));
    }
    const at::Tensor ours = ops::Resample(xb, ops::StackDense(gy).to(at::kDouble), ops::StackDense(gx).to(at::kDouble));
    EXPECT_LT(MaxAbsDiff(ours, ref.Output(id)), 1e-6) << "kernel " << k;
  }
}

TEST_F(Torchvision, ResizedCropMatchesGeometry) {
  const Reference& ref = cases_->ref;
  const at::Tensor x = TestImages(6, 16, 20, 9);
  const auto& boxes = kBoxes;
  const auto& cases = cases_->crops;
  for (const auto& c : cases) {
    std::vector<ops::SparseRows> my, mx;
    for (const auto& bx : boxes) {
      my.push_back(ops::ResizeRows(16, bx[0], bx[2], c.size, ops::ParseInterp(c.interp), c.aa));
      mx.push_back(ops::ResizeRows(20, bx[1], bx[3], c.size, ops::ParseInterp(c.interp), c.aa));
    }
    const at::Tensor ours = ops::Resample(x, ops::StackDense(my).to(at::kDouble), ops::StackDense(mx).to(at::kDouble));
    EXPECT_LT(MaxAbsDiff(ours, ref.Output(c.id)), 2e-6) << c.interp << " antialias=" << c.aa << " size=" << c.size;
  }
}

TEST_F(Torchvision, CropAreasAndRatiosFollowGetParams) {
  const Reference& ref = cases_->ref;
  constexpr int kN = kCropSamples;
  const int id = cases_->crop_params;
  const at::Tensor tv = ref.Output(id);  // [n, 4]: top, left, h, w
  config::ViewAugmentConfig cfg;
  const ViewAugmenter aug(cfg, 96, {0, 0, 0}, {1, 1, 1});
  const auto ours = aug.SampleParams(kN, 32, 32, /*seed=*/11);
  // Histograms of the area fraction over 8 bins of [0, 1] and of log aspect ratio over 6 bins.
  auto hist = [](auto value_of, int n, double lo, double hi, int bins) {
    std::vector<double> hgram(static_cast<size_t>(bins), 0.0);
    for (int i = 0; i < n; ++i) {
      const int k = std::clamp(static_cast<int>((value_of(i) - lo) / (hi - lo) * bins), 0, bins - 1);
      hgram[static_cast<size_t>(k)] += 1.0 / n;
    }
    return hgram;
  };
  const auto tv_area =
      hist([&](int i) { return tv[i][2].item<double>() * tv[i][3].item<double>() / 1024.0; }, kN, 0, 1, 8);
  const auto our_area = hist([&](int i) { return double(ours[i].height * ours[i].width) / 1024.0; }, kN, 0, 1, 8);
  const auto tv_ratio =
      hist([&](int i) { return std::log(tv[i][3].item<double>() / tv[i][2].item<double>()); }, kN, -0.4, 0.4, 6);
  const auto our_ratio =
      hist([&](int i) { return std::log(double(ours[i].width) / ours[i].height); }, kN, -0.4, 0.4, 6);
  for (int k = 0; k < 8; ++k)
    EXPECT_NEAR(our_area[static_cast<size_t>(k)], tv_area[static_cast<size_t>(k)], 0.015) << "area bin " << k;
  for (int k = 0; k < 6; ++k)
    EXPECT_NEAR(our_ratio[static_cast<size_t>(k)], tv_ratio[static_cast<size_t>(k)], 0.015) << "ratio bin " << k;
  // The requested scale range is covered: areas (up to the integer rounding of the box sides)
  // lie in [0.2, 1], and spread over it: each fifth of the range holds at least 10%.
  std::vector<double> fifths(5, 0.0);
  for (const auto& p : ours) {
    const double a = double(p.height * p.width) / 1024.0;
    ASSERT_GE(a, 0.2 - 0.04);
    ASSERT_LE(a, 1.0);
    ASSERT_GE(p.top, 0);
    ASSERT_LE(p.top + p.height, 32);
    ASSERT_LE(p.left + p.width, 32);
    fifths[std::clamp(static_cast<size_t>((a - 0.2) / 0.16), size_t{0}, size_t{4})] += 1.0 / kN;
  }
  for (double f : fifths) EXPECT_GT(f, 0.05);  // measured: 0.098 in the top fifth (wide boxes get rejected)
}

// ---- ViewAugmenter properties ------------------------------------------------------------

config::ViewAugmentConfig AllOff() {
  config::ViewAugmentConfig c;
  c.crop_scale = {1.0, 1.0};
  c.crop_ratio = {1.0, 1.0};
  c.hflip_prob = c.jitter_prob = c.grayscale_prob = c.blur_prob = c.solarize_prob = 0.0;
  return c;
}

at::Tensor Uint8Images(int64_t n, int64_t side, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(0, 256, {n, 3, side, side}, gen, at::kByte);
}

TEST(ViewAugmenter, DeterministicGivenASeedAndDifferentAcrossSeeds) {
  const at::Tensor src = Uint8Images(16, 32, 1);
  config::AugmentConfig cfg;
  for (auto order : {AugmentOrder::kPhotometricFirst, AugmentOrder::kTorchvision}) {
    ViewAugmenterOptions o;
    o.order = order;
    const ViewAugmenter v2(cfg.view2, 48, {0.5, 0.4, 0.3}, {0.2, 0.25, 0.3}, o);
    const at::Tensor a = v2(src, 123), b = v2(src, 123), c = v2(src, 124);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{16, 3, 48, 48}));
    EXPECT_EQ(a.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(a, b));
    for (int64_t i = 0; i < 16; ++i) EXPECT_FALSE(at::allclose(a[i], c[i])) << "sample " << i;
  }
}

TEST(ViewAugmenter, ProbabilityZeroAndFullCropIsTheEvalTransformForAnySeed) {
  const at::Tensor src = Uint8Images(5, 32, 2);
  const std::array<double, 3> mean = {0.49, 0.48, 0.45}, sd = {0.25, 0.24, 0.26};
  for (int size : {32, 48}) {
    for (auto order : {AugmentOrder::kPhotometricFirst, AugmentOrder::kTorchvision}) {
      ViewAugmenterOptions o;
      o.order = order;
      const ViewAugmenter aug(AllOff(), size, mean, sd, o);
      const at::Tensor a = aug(src, 1), b = aug(src, 999999);
      EXPECT_TRUE(at::equal(a, b)) << "size " << size;
      EXPECT_LT(MaxAbsDiff(a, EvalTransform(src, size, mean, sd)), 1e-5) << "size " << size;
    }
  }
  // Same size: exactly normalize(x / 255).
  const ViewAugmenter same(AllOff(), 32, mean, sd);
  at::Tensor expect = src.to(at::kDouble) / 255.0;
  for (int c = 0; c < 3; ++c) expect.select(1, c).sub_(mean[c]).div_(sd[c]);
  EXPECT_LT(MaxAbsDiff(same(src, 5), expect), 1e-5);
}

TEST(ViewAugmenter, HorizontalFlipIsAnExactMirror) {
  const at::Tensor src = Uint8Images(6, 20, 3);
  auto cfg = AllOff();
  cfg.crop_scale = {0.3, 1.0};  // flips are applied after a random crop
  cfg.crop_ratio = {0.75, 1.33};
  const ViewAugmenter noflip(cfg, 24, {0, 0, 0}, {1, 1, 1});
  cfg.hflip_prob = 1.0;
  const ViewAugmenter flip(cfg, 24, {0, 0, 0}, {1, 1, 1});
  const auto p_flip = flip.SampleParams(6, 20, 20, 77);
  for (const auto& p : p_flip) EXPECT_TRUE(p.flip);
  auto p_plain = p_flip;
  for (auto& p : p_plain) p.flip = false;
  EXPECT_LT(MaxAbsDiff(flip.Apply(src, p_flip), noflip.Apply(src, p_plain).flip({3})), 1e-6);
}

TEST(ViewAugmenter, GrayscaleAndSolarizeAtProbabilityOne) {
  const at::Tensor src = Uint8Images(4, 16, 4);
  auto cfg = AllOff();
  cfg.grayscale_prob = 1.0;
  const at::Tensor g = ViewAugmenter(cfg, 16, {0, 0, 0}, {1, 1, 1})(src, 1);
  const at::Tensor x = src.to(at::kFloat) / 255.0;
  EXPECT_LT(MaxAbsDiff(g, ops::Grayscale(x).expand({-1, 3, -1, -1})), 1e-6);
  cfg = AllOff();
  cfg.solarize_prob = 1.0;
  cfg.solarize_threshold = 100;
  const at::Tensor s = ViewAugmenter(cfg, 16, {0, 0, 0}, {1, 1, 1})(src, 1);
  EXPECT_LT(MaxAbsDiff(s, at::where(src >= 100, 1.0 - x, x)), 1e-6);
}

TEST(ViewAugmenter, ASampleDependsOnlyOnItsGlobalPosition) {
  // W ranks x B == 1 rank x W*B: rank r augments its slice with first_sample = r * B.
  const at::Tensor src = Uint8Images(12, 32, 5);
  config::AugmentConfig cfg;
  const ViewAugmenter aug(cfg.view1, 40, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25});
  const at::Tensor whole = aug(src, 42, 0);
  for (int r = 0; r < 3; ++r) {
    const at::Tensor part = aug(src.narrow(0, r * 4, 4), 42, r * 4);
    EXPECT_LT(MaxAbsDiff(part, whole.narrow(0, r * 4, 4)), 1e-6) << "rank " << r;
  }
}

// Smooth images (low-frequency sinusoids) as uint8 [n, 3, side, side].
at::Tensor SmoothImages(int64_t n, int64_t side) {
  const at::Tensor t = at::arange(side, at::kDouble) / side;
  at::Tensor out = at::empty({n, 3, side, side}, at::kDouble);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      const double fx = 1.0 + (i + c) % 3, fy = 1.0 + (i * 2 + c) % 2, ph = 0.7 * i + c;
      out[i][c] =
          0.5 + 0.4 * at::sin(2 * M_PI * fy * t + ph).unsqueeze(1) * at::cos(2 * M_PI * fx * t + ph).unsqueeze(0);
    }
  return (out * 255).round().to(at::kByte);
}

TEST(ViewAugmenter, PhotometricFirstOrderStaysCloseToTorchvisionOrder) {
  // The default order runs color jitter/grayscale on the source pixels; on natural (smooth)
  // images it agrees with torchvision's order up to clamping and the hue nonlinearity at edges.
  const at::Tensor src = SmoothImages(32, 32);
  config::AugmentConfig base;
  ViewAugmenterOptions tv;
  tv.order = AugmentOrder::kTorchvision;
  for (int view = 1; view <= 2; ++view) {
    const auto& cfg = view == 1 ? base.view1 : base.view2;
    const ViewAugmenter fast(cfg, 96, {0, 0, 0}, {1, 1, 1}), exact(cfg, 96, {0, 0, 0}, {1, 1, 1}, tv);
    const auto params = fast.SampleParams(32, 32, 32, 99);
    const at::Tensor d = (fast.Apply(src, params) - exact.Apply(src, params)).abs();
    std::printf("view %d: photometric-first vs torchvision order: mean |diff| %.5f, max %.5f\n", view,
                d.mean().item<double>(), d.max().item<double>());
    EXPECT_LT(d.mean().item<double>(), 0.01) << "view " << view;
    EXPECT_LT(d.max().item<double>(), 0.25) << "view " << view;
  }
}

TEST(ViewAugmenter, OrdersAgreeWhereTheyAreMathematicallyEqual) {
  // Crop, flip, clamp and solarize (no color jitter, grayscale or blur): the default order works
  // in normalized units after the resize (normalized source, per-channel clamp bounds and
  // solarization threshold); it must equal torchvision's order with a final normalization.
  const at::Tensor src = Uint8Images(24, 32, 8);
  auto cfg = AllOff();
  cfg.crop_scale = {0.2, 1.0};
  cfg.crop_ratio = {0.75, 1.33};
  cfg.hflip_prob = 0.5;
  cfg.solarize_prob = 0.5;
  const std::array<double, 3> mean = {0.49, 0.48, 0.45}, sd = {0.25, 0.24, 0.26};
  ViewAugmenterOptions tv;
  tv.order = AugmentOrder::kTorchvision;
  for (int size : {48, 20}) {
    const ViewAugmenter fast(cfg, size, mean, sd), exact(cfg, size, mean, sd, tv);
    const auto params = fast.SampleParams(24, 32, 32, 3);
    int solarized = 0;
    for (const auto& p : params) solarized += p.solarize;
    EXPECT_GT(solarized, 3);
    EXPECT_LT(MaxAbsDiff(fast.Apply(src, params), exact.Apply(src, params)), 2e-5) << "size " << size;
  }
}

TEST(ViewAugmenter, RejectsInvalidSizeAndStd) {
  // The view's parameters are config::Validate's (tests/common/config_errors_test.cc); what the
  // augmenter is given besides them is checked here.
  EXPECT_THROW(ViewAugmenter(AllOff(), 0, {0, 0, 0}, {1, 1, 1}), UserError);
  EXPECT_THROW(ViewAugmenter(AllOff(), 32, {0, 0, 0}, {1, 0, 1}), UserError);
}

TEST(EvalTransform, ResizesAndNormalizes) {
  const at::Tensor src = Uint8Images(3, 28, 6);
  const at::Tensor out = EvalTransform(src, 32, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5});
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_GE(out.min().item<double>(), -1.0 - 1e-6);
  EXPECT_LE(out.max().item<double>(), 1.0 + 1e-6);
  const at::Tensor same = EvalTransform(src, 28, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5});
  EXPECT_LT(MaxAbsDiff(same, (src.to(at::kDouble) / 255.0 - 0.5) / 0.5), 1e-6);
  // Float input in [0, 1] is accepted and never modified in place.
  const at::Tensor f = src.to(at::kFloat) / 255.0, f_copy = f.clone();
  EXPECT_LT(MaxAbsDiff(EvalTransform(f, 28, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}), same), 1e-6);
  config::AugmentConfig cfg;
  ViewAugmenter(cfg.view2, 28, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5})(f, 3);
  EXPECT_TRUE(at::equal(f, f_copy));
}

}  // namespace
}  // namespace vicreg::data
