// `vicreg_eval export --format torch`: a training checkpoint (worker/train/checkpoint.h) rewritten as
// what a PyTorch user continues from (docs/CHECKPOINTS.md "Continuing in Python"): a torch.save-
// compatible zip holding
//   format        "vicreg-torch-export-v1"
//   model         {name: tensor}: the checkpoint's state_dict (encoder.* timm keys, projector.*)
//   optimizer     torch.optim.AdamW.state_dict() layout: {"state": {i: {"step": float tensor,
//                 "exp_avg", "exp_avg_sq"}}, "param_groups": [{"lr", "betas", "eps", "weight_decay",
//                 "amsgrad", "foreach", "maximize", "capturable", "params": [i, ...]}]}, params numbered
//                 through group 0 (weight decay) then group 1 (no decay), as torch numbers them
//   param_names   [[names of group 0], [names of group 1]]: build the groups from the model's
//                 named_parameters() in this order, then AdamW(groups).load_state_dict(optimizer)
//   scheduler, scaler, epoch, global_step, config: as in the checkpoint
// Only AdamW runs have a torch.optim equivalent; a LARS checkpoint is refused with the reason.
#pragma once

#include <cstdint>
#include <string>

namespace vicreg::eval {

struct TorchExportSummary {
  int64_t tensors = 0;       // model entries
  int64_t parameters = 0;    // trainable parameters (both groups)
  int64_t with_state = 0;    // parameters with optimizer state
  int64_t epoch = 0;
};

// Throws UserError naming the checkpoint (unreadable, no embedded config, LARS, or optimizer state
// that does not fit the model the config describes).
TorchExportSummary ExportTorchCheckpoint(const std::string& checkpoint, const std::string& out);

}  // namespace vicreg::eval
