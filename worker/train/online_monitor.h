// Optional online monitoring during training (eval.online_linear, eval.online_knn_every_epochs), on top of
// worker/eval/online_probe.h:
//   linear: a linear classifier on detached encoder features of view 1, one step per training step on the
//           rank's labeled batch; the report carries the global running top-1 since the epoch started.
//   kNN:    every N epochs (at the last step of the epoch), kNN top-1 of eval.online_knn_subset held-out
//           images of the evaluation dataset (eval.datasets[0], else the training dataset) against a bank of
//           the rest, embedded with the current encoder (eval mode, no augmentation).
// Neither touches the encoder's gradients nor the global RNG, so resumed runs stay bit-identical. The linear
// probe's weights are not checkpointed: after a resume it starts again from zero (it is a monitor).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <optional>

#include "common/config.h"
#include "worker/data/dataset.h"
#include "worker/model/vit.h"

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::train {

class OnlineMonitor {
 public:
  // Throws UserError (naming eval.online_linear / eval.online_knn_every_epochs) when a monitor is enabled
  // but its dataset has no labels.
  OnlineMonitor(const config::JobConfig& cfg, std::shared_ptr<const data::Dataset> train_set, int feature_dim,
                c10::Device device);
  ~OnlineMonitor();

  bool enabled() const;
  // features: [B, D] this rank's encoder features (detached here), labels: int64 [B] (-1 = unlabeled).
  void Update(const at::Tensor& features, const at::Tensor& labels);
  // Global running top-1 of the linear probe since the last ResetEpoch; collective when comm has several
  // ranks (every rank must call it at the same step). nullopt when the probe is off or saw no labels.
  std::optional<double> LinearTop1(comm::Communicator* comm);
  void ResetEpoch();
  // True if the kNN monitor runs at the end of `epoch`.
  bool KnnDue(int64_t epoch) const;
  double KnnTop1(model::VisionTransformer& encoder);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::train
