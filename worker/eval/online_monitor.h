// The online monitors of a training run (eval.online_linear, eval.online_knn_every_epochs), as the
// trainer's OnlineMonitor (worker/train/online_monitor.h), on top of online_probe.h:
//   linear: a linear classifier on detached encoder features of view 1, one step per training step on the
//           rank's labeled batch; the report carries the global running top-1 since the epoch started.
//   kNN:    every N epochs (at the last step of the epoch), kNN top-1 of eval.online_knn_subset held-out
//           images of the evaluation dataset (eval.datasets[0], else the training dataset) against a bank of
//           the rest, embedded with the current encoder (eval mode, no augmentation).
// Neither touches the encoder's gradients nor the global RNG, so resumed runs stay bit-identical. The linear
// probe's weights are not checkpointed: after a resume it starts again from zero (it is a monitor).
//
//   train::TrainerOptions opts;
//   opts.online_monitors = eval::MakeOnlineMonitor;   // what vicreg_worker does
#pragma once

#include <c10/core/Device.h>

#include <memory>

#include "common/config.h"
#include "worker/data/dataset.h"
#include "worker/train/online_monitor.h"

namespace vicreg::eval {

// A train::OnlineMonitorFactory. Throws UserError (naming eval.online_linear / eval.online_knn_every_epochs)
// when a monitor is enabled but its dataset has no labels.
std::unique_ptr<train::OnlineMonitor> MakeOnlineMonitor(const config::JobConfig& cfg,
                                                        std::shared_ptr<const data::Dataset> train_set, int feature_dim,
                                                        c10::Device device);

}  // namespace vicreg::eval
