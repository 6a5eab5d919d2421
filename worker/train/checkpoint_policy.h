// When the training loop writes which checkpoint, and which ones retention must keep (the checkpoint.*
// and eval.* keys); checkpoint.h writes them, the Trainer asks this after every step.
//
//   epoch checkpoint  at the end of every checkpoint.every_epochs-th epoch, of epoch train.num_epochs, and
//                     at the run's last step (with train.time_budget_s that may end a partial epoch)
//   step checkpoint   every checkpoint.every_steps steps, and at a stop (signal, train.max_steps)
//   deferred          a periodic one that falls in a non-finite streak waits until a step succeeds again,
//                     so that "the last good checkpoint" precedes the streak (a stop still writes one:
//                     CheckpointManager refuses non-finite parameters; so does the run's last step)
//   retention         the newest checkpoint.keep_last, plus checkpoint.keep_epochs, eval.epochs and the
//                     multiples of eval.every_epochs (the coordinator evaluates those later)
#pragma once

#include <cstdint>
#include <string>

#include "common/config.h"
#include "worker/train/checkpoint.h"

namespace vicreg::train {

enum class CheckpointAction { kNone, kEpoch, kStep, kDeferred };

// Where the run stands after a step.
struct StepPosition {
  int64_t epoch = 1;       // 1-based
  int64_t step = 0;        // global steps done
  bool epoch_end = false;  // the step consumed the epoch's last batch
  bool stopping = false;   // the run stops after this step (stop signal or train.max_steps)
  bool run_end = false;    // the step is the last of the planned run (its lr schedule ends here)
  bool in_streak = false;  // the step was non-finite (consecutive non-finite steps > 0)
};

class CheckpointPolicy {
 public:
  explicit CheckpointPolicy(const config::JobConfig& cfg);
  CheckpointAction AfterStep(const StepPosition& at) const;
  // The CheckpointManager options for `dir` (<run_dir>/checkpoints): keep_last and the kept epochs.
  CheckpointManagerOptions Retention(const std::string& dir) const;

 private:
  config::JobConfig cfg_;
};

}  // namespace vicreg::train
