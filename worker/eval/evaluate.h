// The evaluation pipeline behind `vicreg_eval` (docs/ARCHITECTURE.md "Evaluation"): for each requested epoch
// checkpoint, load the encoder (projector discarded), extract train/test features once, run the
// linear probe and/or weighted kNN; plus the reference rows (raw pixels, random-init encoder).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "worker/eval/checkpoint_source.h"
#include "worker/eval/eval_report.h"
#include "worker/eval/knn.h"
#include "worker/eval/linear_probe.h"

namespace vicreg::eval {

struct EvaluateOptions {
  std::string checkpoint_dir;             // epoch_XXXX.pt files ...
  std::string checkpoint_file;            // ... or one file (then epochs is ignored)
  std::vector<int> epochs;                // empty = every epoch_XXXX.pt in checkpoint_dir
  std::optional<GivenModelConfig> given;  // --model_config / --job
  std::string dataset;  // cifar10 | cifar100 | stl10 | fashion_mnist | mnist | image_folder | tensor_cache
  std::string data_dir;
  int resize = 0;                           // image_folder: DatasetSpec::resize
  int64_t limit_train = 0, limit_test = 0;  // first N (0 = all)
  std::vector<double> mean, std;            // normalization; empty = the train split's own statistics
  bool linear = true, knn = true;
  LinearProbeOptions linear_opts;
  KnnOptions knn_opts;
  int batch_size = 256;
  std::string device = "cpu";  // feature extraction: cpu | cuda | cuda:N (probes run on CPU)
  int image_size = 0;          // 0 = the model's; otherwise pos_embed is resampled
  bool references = true;      // raw_pixels + random_init rows
  uint64_t random_init_seed = 0;
  bool progress = true;
  std::string out_json;  // when set: JSON + CSV rewritten after each checkpoint
};

struct EvaluateResult {
  EvalReport report;
  int evaluated = 0;                  // checkpoints evaluated
  std::vector<std::string> failures;  // "epoch 3: <reason>" for checkpoints that exist but failed to load
};

// Throws UserError for invalid input that stops everything (dataset, flags, no checkpoint dir).
// A missing epoch is reported in report.missing_epochs; a checkpoint that exists but cannot be
// loaded is reported there too, with the reason in failures.
EvaluateResult RunEvaluation(const EvaluateOptions& opts);

// Writes report JSON to `json_path` and CSV beside it (atomically), creating the directory.
void WriteReportFiles(const EvalReport& report, const std::string& json_path);

}  // namespace vicreg::eval
