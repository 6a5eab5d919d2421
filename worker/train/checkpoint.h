// Training checkpoints: <run_dir>/checkpoints/{epoch_0001.pt, step_00001234.pt, *.json, latest}.
//
// File format: a TorchScript-pickle zip archive (torch::pickle_save of a dict), so Python opens it with
// `torch.load(path)`. Top-level keys (all present in every checkpoint, kCheckpointKeys):
//   format            str   "vicreg-checkpoint-v1"
//   model             dict  state_dict of VicregModel: parameters + buffers ("encoder.<timm key>", "projector.*")
//   optimizer         dict  optimizer state (see optimizer.h SaveState)
//   scheduler         dict  {"step": int}  iterations the lr schedule has seen
//   scaler            dict  {"enabled": bool, "scale": float, "growth_tracker": int}  (fp16 loss scaler)
//   epoch             int   epoch the checkpoint belongs to (1-based)
//   global_step       int   training iterations completed (skipped non-finite steps included)
//   batch_in_epoch    int   batches of `epoch` already consumed (== batches_per_epoch for an epoch-end checkpoint)
//   epoch_complete    bool  true for epoch-end checkpoints (resume starts at epoch + 1)
//   rng               dict  {"torch_cpu": uint8 tensor, "torch_cuda": [uint8 tensor per device]}
//   config            str   the resolved job YAML (config::ToYaml)
//   world_size        int   ranks that wrote it (informational; any world size with the same global batch resumes)
//   global_batch      int   ranks * batch_size
//   nonfinite_total   int   skipped non-finite steps so far
// and, only in a run with train.time_budget_s (optional: older checkpoints and runs without one lack it):
//   time_budget       dict  {"total_steps": int, "seconds_used": float}  the plan and the training time so far
//
// Durability: the archive is written with fs::AtomicWriteFile (tmp + fsync + rename), then its manifest
// `<stem>.json` {file, bytes, crc32, epoch, global_step, kind, created}, then `latest` (atomically). A
// checkpoint counts as complete only once its manifest exists and matches. Load() verifies size and CRC32
// against the manifest (the zip container itself does not detect flipped bytes), that the archive parses
// and that every key has the right type.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::train {

inline constexpr const char* kCheckpointFormat = "vicreg-checkpoint-v1";
extern const std::vector<std::string> kCheckpointKeys;

struct ScalerState {
  bool enabled = false;
  double scale = 65536.0;
  int64_t growth_tracker = 0;
};

// Everything needed to continue a run exactly.
struct CheckpointPayload {
  std::vector<std::pair<std::string, at::Tensor>> model;  // state_dict, in module order
  c10::IValue optimizer;                                  // a dict (optimizer.h SaveState)
  int64_t scheduler_step = 0;
  ScalerState scaler;
  int64_t epoch = 0;
  int64_t global_step = 0;
  int64_t batch_in_epoch = 0;
  bool epoch_complete = false;
  at::Tensor rng_cpu;                // uint8, at::Generator::get_state()
  std::vector<at::Tensor> rng_cuda;  // one per visible device (empty on CPU)
  std::string config_yaml;
  int64_t world_size = 1;
  int64_t global_batch = 0;
  int64_t nonfinite_total = 0;
  // train.time_budget_s: the planned total steps and the training seconds used (time_budget.h).
  struct TimeBudgetState {
    int64_t total_steps = 0;
    double seconds_used = 0;
  };
  std::optional<TimeBudgetState> time_budget;
};

// Serialization without files (exposed for tests and for vicreg_eval).
std::vector<char> EncodeCheckpoint(const CheckpointPayload& p);
// Throws UserError naming `source` and the missing/mistyped key.
CheckpointPayload DecodeCheckpoint(const std::vector<char>& bytes, const std::string& source);

struct CheckpointManagerOptions {
  std::string dir;               // <run_dir>/checkpoints
  int keep_last = 3;             // newest N complete checkpoints are kept ...
  std::vector<int> keep_epochs;  // ... plus the epoch checkpoints of these epochs
};

struct CheckpointInfo {  // one complete checkpoint, as described by its manifest
  std::string file;      // "epoch_0003.pt"
  std::string path;      // dir + "/" + file
  int64_t bytes = 0;
  uint32_t crc32 = 0;
  int64_t epoch = 0;
  int64_t global_step = 0;
  std::string kind;  // "epoch" | "step"
};

class CheckpointManager {
 public:
  explicit CheckpointManager(CheckpointManagerOptions opts);

  // "epoch_0003.pt" / "step_00001234.pt".
  static std::string EpochFileName(int64_t epoch);
  static std::string StepFileName(int64_t global_step);

  // Writes `file_name` (archive, manifest, latest), then applies retention. Creates the directory.
  // Throws RuntimeFailure (and writes nothing) if a model tensor holds NaN/Inf. Returns the path.
  std::string Save(const std::string& file_name, const std::string& kind, const CheckpointPayload& p);

  // Loads and verifies one checkpoint. The manifest beside it (<stem>.json) is required unless
  // require_manifest is false (then only the archive's structure is checked, with a warning).
  // Throws UserError naming the file and what is wrong (size, crc, parse, missing key).
  static CheckpointPayload Load(const std::string& path, bool require_manifest = true);

  // Complete checkpoints (manifest present and parseable) in this directory, oldest first
  // (by global_step, then epoch checkpoints after step checkpoints of the same step).
  std::vector<CheckpointInfo> List() const;
  // The file name `latest` points to, or "" when there is none.
  std::string Latest() const;

  // Resume resolution:
  //   "none" / ""  -> nullopt (fresh start)
  //   "auto"       -> `latest` if it loads; otherwise (warning naming the problem) the newest previous
  //                   complete checkpoint that loads; nullopt if the directory holds no checkpoint at all;
  //                   UserError if checkpoints exist but none is valid.
  //   PATH         -> exactly that file (UserError if it is missing or bad).
  // Returns the path and the loaded payload (so the caller does not read it twice).
  std::optional<std::pair<std::string, CheckpointPayload>> Resume(const std::string& spec) const;

  const CheckpointManagerOptions& options() const { return opts_; }

 private:
  void ApplyRetention(const std::string& protect_file);
  CheckpointManagerOptions opts_;
};

}  // namespace vicreg::train
