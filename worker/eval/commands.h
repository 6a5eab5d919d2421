// vicreg_eval's command line (README.md "Command-line interface"), one CLI11 app with subcommands:
//   vicreg_eval [evaluate flags]           linear probe / kNN of checkpoints (the seed's interface)
//   vicreg_eval evaluate [evaluate flags]  the same, named
//   vicreg_eval export  --checkpoint F --out encoder.safetensors
//   vicreg_eval extract --checkpoint F --dataset D --data-dir DIR --split S --out feats.safetensors
//   vicreg_eval convert --dataset D --data-dir DIR --split S --out cache.safetensors
// Each returns the process exit code: 0 ok, 2 invalid input/usage, 1 runtime failure.
#pragma once

namespace vicreg::eval {

int EvalMain(int argc, char** argv);

}  // namespace vicreg::eval
