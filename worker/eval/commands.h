// vicreg_eval's command line (README.md "Command-line interface"):
//   vicreg_eval [evaluate flags]           linear probe / kNN of checkpoints (the seed's interface)
//   vicreg_eval export  --checkpoint F --out encoder.safetensors
//   vicreg_eval extract --checkpoint F --dataset D --data-dir DIR --split S --out feats.safetensors
//   vicreg_eval convert --dataset D --data-dir DIR --split S --out cache.safetensors
// Each returns the process exit code: 0 ok, 2 invalid input/usage, 1 runtime failure.
#pragma once

namespace vicreg::eval {

int EvalMain(int argc, char** argv);  // dispatches on argv[1]
int EvaluateCommand(int argc, char** argv);
int ExportCommand(int argc, char** argv);
int ExtractCommand(int argc, char** argv);
int ConvertCommand(int argc, char** argv);

}  // namespace vicreg::eval
