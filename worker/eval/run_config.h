// What vicreg_eval learns about the training run behind a checkpoint directory when the command line
// leaves it out (the seed's evaluation command names no data folder): the run's resolved config, read
// from a checkpoint's embedded copy or else from <run_dir>/job.yaml next to the checkpoints; the data
// location for a dataset from that config; and, per requested epoch without a checkpoint file, why
// there is none (never written, not reached yet, or deleted by retention).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/config.h"

namespace vicreg::eval {

// The resolved job config of a run and where it was read from, for messages:
// "the config embedded in run/checkpoints/epoch_0001.pt" or "run/job.yaml".
struct RunConfig {
  config::JobConfig job;
  std::string source;
};

// The config of the run that wrote `checkpoint` (a file, or "" to skip) or the checkpoints in
// `checkpoint_dir`: first the checkpoint's embedded config (`checkpoint`; else the first of
// `epochs` whose file exists; else the newest epoch file), then <checkpoint_dir>/../job.yaml.
// nullopt when neither exists; a checkpoint or job.yaml that exists but cannot be read is skipped
// with a warning naming it (the caller's own load reports the checkpoint properly).
std::optional<RunConfig> FindRunConfig(const std::string& checkpoint, const std::string& checkpoint_dir,
                                       const std::vector<int>& epochs);

// The data folder of `dataset` in `run`: the data_dir of an eval.datasets entry with that name,
// else data.data_dir when the run trained on `dataset`. Throws UserError (what to pass instead)
// when the run names no folder for it. `*what` says which key it was ("data.data_dir").
std::string DataDirFromRun(const RunConfig& run, const std::string& dataset, std::string* what);

// Why `dir` holds no epoch_XXXX.pt for `epoch`, in one sentence naming the config keys involved
// ("not kept: checkpoint.keep_last 3 keeps only the newest 3 checkpoints ..."). `run` may be
// nullopt (then the sentence says that no config was found to tell). Reads the manifests in `dir`
// and <dir>/../result.json to tell "not reached yet" and "the run ended before it".
std::string WhyNoCheckpoint(int epoch, const std::string& dir, const std::optional<RunConfig>& run);

}  // namespace vicreg::eval
