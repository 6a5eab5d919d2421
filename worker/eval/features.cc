#include "worker/eval/features.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <numeric>

#include "common/errors.h"
#include "worker/data/augment.h"
#include "worker/eval/progress.h"

namespace vicreg::eval {
namespace {

std::vector<int64_t> AllOr(const std::vector<int64_t>& indices, int64_t n) {
  if (!indices.empty()) {
    for (int64_t i : indices)
      if (i < 0 || i >= n)
        throw UserError("feature extraction: index " + std::to_string(i) + " out of range [0, " + std::to_string(n) +
                        ")");
    return indices;
  }
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

struct PreparedBatch {
  at::Tensor images;  // float [B, 3, S, S] (or uint8 [B, 3, H, W] for raw pixels)
  at::Tensor labels;  // int64 [B]
};

// Runs prepare(b) for batch b+1 in the background while consume(b) runs.
template <typename Prepare, typename Consume>
void Pipelined(int64_t num_batches, Prepare prepare, Consume consume) {
  if (num_batches == 0) return;
  auto next = std::async(std::launch::async, prepare, int64_t{0});
  for (int64_t b = 0; b < num_batches; ++b) {
    PreparedBatch cur = next.get();  // rethrows a reader error (UserError naming the file)
    if (b + 1 < num_batches) next = std::async(std::launch::async, prepare, b + 1);
    consume(b, cur);
  }
}

}  // namespace

FeatureSet ExtractFeatures(const EncodeFn& encode, const data::Dataset& dataset, const ExtractOptions& opts,
                           const std::vector<int64_t>& indices_in) {
  if (opts.batch_size < 1) throw UserError("--batch-size must be >= 1, got " + std::to_string(opts.batch_size));
  const auto t0 = std::chrono::steady_clock::now();
  const auto indices = AllOr(indices_in, dataset.size());
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t nb = (n + opts.batch_size - 1) / opts.batch_size;
  std::vector<at::Tensor> feats, labels;
  feats.reserve(static_cast<size_t>(nb));
  labels.reserve(static_cast<size_t>(nb));
  Progress progress(opts.label, n, ProgressOptions{opts.progress, 10.0, "img"});

  auto prepare = [&](int64_t b) {
    // -> images float [B, 3, S, S], labels [B]
    const int64_t start = b * opts.batch_size, len = std::min<int64_t>(opts.batch_size, n - start);
    std::vector<int64_t> idx(indices.begin() + start, indices.begin() + start + len);
    PreparedBatch pb;
    at::Tensor raw;
    dataset.Fetch(idx, &raw, &pb.labels);
    pb.images = data::EvalTransform(raw, opts.image_size, opts.mean, opts.std);
    return pb;
  };
  Pipelined(nb, prepare, [&](int64_t, PreparedBatch& pb) {
    at::NoGradGuard no_grad;
    auto f = encode(pb.images.to(opts.device));  // [B, D]
    VICREG_CHECK(f.dim() == 2 && f.size(0) == pb.images.size(0), "encoder must return [B, D]");
    feats.push_back(f.to(at::kCPU, at::kFloat));
    labels.push_back(pb.labels.to(at::kLong));
    progress.Advance(pb.images.size(0));
  });
  progress.Finish();
  FeatureSet out;
  out.features = feats.empty() ? at::zeros({0, 0}) : at::cat(feats, 0);
  out.labels = labels.empty() ? at::zeros({0}, at::kLong) : at::cat(labels, 0);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

FeatureSet ExtractFeatures(model::VisionTransformer& encoder, const data::Dataset& dataset, const ExtractOptions& opts,
                           const std::vector<int64_t>& indices) {
  const bool was_training = encoder->is_training();
  encoder->eval();
  struct Restore {
    model::VisionTransformer& e;
    bool training;
    ~Restore() { e->train(training); }
  } restore{encoder, was_training};
  return ExtractFeatures([&](const at::Tensor& x) { return encoder->forward(x); }, dataset, opts, indices);
}

FeatureSet RawPixelFeatures(const data::Dataset& dataset, std::array<double, 3> mean, std::array<double, 3> std,
                            int batch_size, bool progress_on, const std::string& label) {
  if (batch_size < 1) throw UserError("--batch-size must be >= 1, got " + std::to_string(batch_size));
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t n = dataset.size();
  const int c = dataset.channels() == 1 ? 1 : 3;
  const int64_t dim = static_cast<int64_t>(c) * dataset.height() * dataset.width();
  auto out_feats = at::empty({n, dim}, at::kFloat);  // [N, C*H*W]
  auto out_labels = at::empty({n}, at::kLong);
  const auto m = at::tensor({mean[0], mean[1], mean[2]}, at::kFloat).narrow(0, 0, c).view({1, c, 1, 1});
  const auto s = at::tensor({std[0], std[1], std[2]}, at::kFloat).narrow(0, 0, c).view({1, c, 1, 1});
  Progress progress(label, n, ProgressOptions{progress_on, 10.0, "img"});
  const int64_t nb = (n + batch_size - 1) / batch_size;
  auto prepare = [&](int64_t b) {
    const int64_t start = b * batch_size, len = std::min<int64_t>(batch_size, n - start);
    std::vector<int64_t> idx(static_cast<size_t>(len));
    std::iota(idx.begin(), idx.end(), start);
    PreparedBatch pb;
    dataset.Fetch(idx, &pb.images, &pb.labels);  // uint8 [B, 3, H, W]
    return pb;
  };
  Pipelined(nb, prepare, [&](int64_t b, PreparedBatch& pb) {
    const int64_t start = b * batch_size, len = pb.images.size(0);
    auto x = pb.images.narrow(1, 0, c).to(at::kFloat).div_(255.0).sub_(m).div_(s);  // [B, C, H, W]
    out_feats.narrow(0, start, len).copy_(x.reshape({len, dim}));
    out_labels.narrow(0, start, len).copy_(pb.labels);
    progress.Advance(len);
  });
  progress.Finish();
  FeatureSet out{out_feats, out_labels, 0};
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace vicreg::eval
