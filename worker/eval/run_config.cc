#include "worker/eval/run_config.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/run_contract.h"
#include "worker/eval/checkpoint_source.h"
#include "worker/train/checkpoint.h"

namespace vicreg::eval {
namespace {

// "<dir>/.." without resolving symlinks: the run directory of <run>/checkpoints.
std::string RunDirOf(const std::string& checkpoint_dir) {
  std::filesystem::path p(checkpoint_dir.empty() ? "." : checkpoint_dir);
  if (!p.has_filename()) p = p.parent_path();  // "run/checkpoints/" -> "run/checkpoints"
  return (p / "..").lexically_normal().string();
}

std::string List(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::optional<RunConfig> FromCheckpoint(const std::string& path) {
  try {
    auto payload = train::CheckpointManager::Load(path, /*require_manifest=*/false);
    if (payload.config_yaml.empty()) return std::nullopt;
    return RunConfig{config::ParseJobYaml(payload.config_yaml, path + " (embedded config)"),
                     "the config embedded in " + path};
  } catch (const std::exception& e) {
    spdlog::warn("cannot read the run's config from {}: {}", path, e.what());
    return std::nullopt;
  }
}

}  // namespace

std::optional<RunConfig> FindRunConfig(const std::string& checkpoint, const std::string& checkpoint_dir,
                                       const std::vector<int>& epochs) {
  std::string candidate = checkpoint;
  std::string dir = checkpoint_dir;
  if (!checkpoint.empty()) {
    dir = std::filesystem::path(checkpoint).parent_path().string();
  } else {
    for (int e : epochs) {
      if (fs::Exists(EpochCheckpointPath(dir, e))) {
        candidate = EpochCheckpointPath(dir, e);
        break;
      }
    }
    if (candidate.empty()) {
      std::vector<int> present;
      try {
        present = ListEpochCheckpoints(dir);
      } catch (const UserError&) {  // not a directory: the evaluation itself says so
      }
      if (!present.empty()) candidate = EpochCheckpointPath(dir, present.back());
    }
  }
  if (!candidate.empty() && fs::Exists(candidate)) {
    if (auto rc = FromCheckpoint(candidate)) return rc;
  }
  const std::string job = contract::RunPaths(RunDirOf(dir)).job_yaml();
  if (fs::Exists(job)) {
    try {
      return RunConfig{config::LoadJobFile(job), job};
    } catch (const std::exception& e) {
      spdlog::warn("cannot read the run's config from {}: {}", job, e.what());
    }
  }
  return std::nullopt;
}

std::string DataDirFromRun(const RunConfig& run, const std::string& dataset, std::string* what) {
  const auto& j = run.job;
  for (size_t i = 0; i < j.eval.datasets.size(); ++i) {
    const auto& d = j.eval.datasets[i];
    if (d.name == dataset && !d.data_dir.empty()) {
      *what = "eval.datasets[" + std::to_string(i) + "].data_dir";
      return d.data_dir;
    }
  }
  if (j.data.dataset == dataset) {
    *what = "data.data_dir";
    return j.data.data_dir;
  }
  for (size_t i = 0; i < j.eval.datasets.size(); ++i) {
    if (j.eval.datasets[i].name == dataset) {  // "empty = data.data_dir"
      *what = "data.data_dir (eval.datasets[" + std::to_string(i) + "] names " + dataset + " without a data_dir)";
      return j.data.data_dir;
    }
  }
  throw UserError("--data-dir is required: the run trained on " + j.data.dataset + " (data.data_dir \"" +
                  j.data.data_dir + "\" in " + run.source + ") and names no folder for " + dataset +
                  " (no eval.datasets entry); pass --data-dir DIR, the folder holding the " + dataset + " files");
}

std::string WhyNoCheckpoint(int epoch, const std::string& dir, const std::optional<RunConfig>& run) {
  const std::string file = EpochCheckpointPath(dir, epoch);
  // What the run has written so far: the newest complete epoch checkpoint (manifests survive
  // retention only with their checkpoint, so this is the newest one present) and result.json.
  int64_t newest = 0;
  try {
    train::CheckpointManagerOptions mo;
    mo.dir = dir;
    for (const auto& ci : train::CheckpointManager(mo).List())
      if (ci.kind == "epoch") newest = std::max(newest, ci.epoch);
  } catch (const std::exception&) {
  }
  const auto result = contract::ReadResult(contract::RunPaths(RunDirOf(dir)));
  auto not_reached = [&]() -> std::string {
    if (result) {
      std::string s = "not written: the run ended (" + std::string(contract::RunStatusName(result->status)) +
                      " at epoch " + std::to_string(result->epoch) + ", step " + std::to_string(result->step);
      if (!result->reason.empty()) s += ": " + result->reason;
      return s + ") before epoch " + std::to_string(epoch) + " finished";
    }
    return "not written yet: the newest epoch checkpoint is epoch " + std::to_string(newest) +
           " (the run is still going, or stopped without writing result.json)";
  };
  if (!run) {
    std::string s = "no checkpoint " + file + ", and no run config was found to tell why (no readable checkpoint in " +
                    dir + ", no " + contract::RunPaths(RunDirOf(dir)).job_yaml() + ")";
    if (newest > 0) s += "; the newest epoch checkpoint is epoch " + std::to_string(newest);
    return s;
  }
  const auto& j = run->job;
  const int n = j.train.num_epochs;
  const int every = j.checkpoint.every_epochs;
  const std::string from = " (" + run->source + ")";
  if (epoch < 1 || epoch > n)
    return "does not exist: the run trains train.num_epochs " + std::to_string(n) + " epochs" + from;
  const bool written = epoch == n || (every > 0 && epoch % every == 0);
  if (!written)
    return "never written: checkpoint.every_epochs " + std::to_string(every) +
           (every == 0 ? " writes only the last epoch's checkpoint (" + std::to_string(n) + ")"
                       : " writes epoch checkpoints at multiples of " + std::to_string(every) +
                             " and at the last epoch (" + std::to_string(n) + ") only") +
           from;
  if (epoch > newest) return not_reached();
  std::set<int> kept(j.checkpoint.keep_epochs.begin(), j.checkpoint.keep_epochs.end());
  kept.insert(j.eval.epochs.begin(), j.eval.epochs.end());
  if (j.eval.every_epochs > 0 && epoch % j.eval.every_epochs == 0) kept.insert(epoch);
  if (kept.count(epoch))
    return "gone: retention keeps epoch " + std::to_string(epoch) +
           " (checkpoint.keep_epochs / eval.epochs), so the file was removed or never copied here" + from;
  return "not kept: retention deleted it; checkpoint.keep_last " + std::to_string(j.checkpoint.keep_last) +
         " keeps only the newest " + std::to_string(j.checkpoint.keep_last) +
         " checkpoints, and epoch " + std::to_string(epoch) + " is not in checkpoint.keep_epochs " +
         List(j.checkpoint.keep_epochs) + " or eval.epochs " + List(j.eval.epochs) + from +
         "; list the epochs to evaluate in checkpoint.keep_epochs before training";
}

}  // namespace vicreg::eval
