// Online monitoring during training (solo-learn style), for the trainer to call:
//
//   OnlineLinearProbe: a linear classifier on DETACHED encoder features, trained alongside the
//   encoder (one optimizer step per training step on the batch's labels). Its running top-1 is
//   a cheap, noisy signal that features become linearly useful. It never touches the encoder's
//   gradients, nor the global RNG (zero init), so training stays bit-reproducible with it on.
//
//     OnlineLinearProbe probe({.feature_dim = 384, .num_classes = 10}, device);
//     auto s = probe.Update(features.detach(), labels);   // per step: loss, batch top-1
//     report.online_linear_top1 = probe.running_top1();   // at log steps
//     probe.ResetStats();                                  // e.g. at each epoch start
//
//   OnlineKnn: every few epochs, kNN top-1 of a fixed held-out subset of a labeled dataset
//   (queries) against a fixed bank drawn from the rest of it, both embedded with the current
//   encoder (EvalTransform, no augmentation, eval mode). The subsets are chosen once, seeded.
//
//     OnlineKnn knn(dataset, {.query_size = 2000, .bank_size = 10000, .image_size = 96, ...});
//     report.online_knn_top1 = knn.Evaluate(model->encoder()).top1;
//
// In a multi-rank job: call Update on every rank with its local batch and all-reduce
// (correct(), seen()) for the global accuracy; run OnlineKnn on rank 0 only (or on all ranks,
// it is deterministic).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "worker/data/dataset.h"
#include "worker/eval/features.h"
#include "worker/eval/knn.h"
#include "worker/model/vit.h"

namespace vicreg::eval {

struct OnlineLinearProbeOptions {
  int feature_dim = 384;
  int num_classes = 10;
  std::string optimizer = "adam";  // adam | sgd
  double lr = 1e-3;
  double momentum = 0.9;  // sgd only
  double weight_decay = 0.0;
};

struct OnlineProbeStep {
  double loss = 0;        // cross-entropy of this batch (before the update)
  double batch_top1 = 0;  // accuracy on this batch (before the update)
  int64_t samples = 0;    // labeled rows used (rows with label < 0 are ignored)
};

class OnlineLinearProbe {
 public:
  // Throws UserError on invalid options (naming the field).
  explicit OnlineLinearProbe(const OnlineLinearProbeOptions& opts, c10::Device device = c10::Device(c10::kCPU));
  ~OnlineLinearProbe();
  OnlineLinearProbe(OnlineLinearProbe&&) noexcept;
  OnlineLinearProbe& operator=(OnlineLinearProbe&&) noexcept;

  // features: [B, D] (any float dtype/device; detached here), labels: int64 [B].
  OnlineProbeStep Update(const at::Tensor& features, const at::Tensor& labels);
  // features: [B, D] -> logits [B, C] (no grad).
  at::Tensor Predict(const at::Tensor& features) const;

  double running_top1() const;  // correct / seen since the last ResetStats (0 if none)
  int64_t correct() const;
  int64_t seen() const;
  void ResetStats();
  // Parameters ("weight" [C, D], "bias" [C]) e.g. to save them beside a checkpoint.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct OnlineKnnOptions {
  int64_t query_size = 2000;  // held-out queries (eval.online_knn_subset)
  int64_t bank_size = 10000;  // bank drawn from the remaining samples (0 = all of them)
  KnnOptions knn;             // k = 20, T = 0.07
  ExtractOptions extract;     // batch size, image size, mean/std, device, progress
  uint64_t seed = 0;          // which samples are queries / bank
};

class OnlineKnn {
 public:
  // dataset must be labeled; throws UserError if it is not or is too small (< 2 samples).
  OnlineKnn(std::shared_ptr<const data::Dataset> dataset, OnlineKnnOptions opts);
  // Embeds queries and bank with `encode` ([B,3,S,S] -> [B,D]) and returns the kNN accuracy.
  KnnResult Evaluate(const EncodeFn& encode) const;
  // Same with a ViT (eval mode, no grad; its previous mode is restored).
  KnnResult Evaluate(model::VisionTransformer& encoder) const;
  const std::vector<int64_t>& query_indices() const { return queries_; }
  const std::vector<int64_t>& bank_indices() const { return bank_; }

 private:
  std::shared_ptr<const data::Dataset> dataset_;
  OnlineKnnOptions opts_;
  std::vector<int64_t> queries_, bank_;
};

}  // namespace vicreg::eval
