// The encoder of a training checkpoint (worker/train/checkpoint.h) for vicreg_eval: the
// checkpoint's embedded resolved config gives the architecture; a config given on the command
// line (--model_config / --job) must agree with it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/errors.h"
#include "worker/model/tensor_file.h"
#include "worker/model/vit.h"

namespace vicreg::eval {

// The model config given on the command line contradicts the checkpoint's architecture.
class ArchitectureMismatch : public UserError {
 public:
  using UserError::UserError;
};

// A model config from the command line and where it came from ("--model_config m.yaml").
struct GivenModelConfig {
  config::ModelConfig model;
  std::string source;
};

struct CheckpointEncoder {
  std::string path;
  int64_t epoch = 0;
  config::ModelConfig model;  // resolved (presets expanded)
  std::optional<config::JobConfig> job;  // the checkpoint's embedded config (absent in very old checkpoints)
  model::NamedTensors state;  // timm keys (the "encoder." prefix dropped, projector discarded)
};

// "<dir>/epoch_0007.pt"
std::string EpochCheckpointPath(const std::string& dir, int epoch);
// Epochs of the epoch_XXXX.pt files in `dir`, ascending. Throws UserError if dir is not a directory.
std::vector<int> ListEpochCheckpoints(const std::string& dir);

// Loads (verifying size/CRC against the manifest when there is one) and extracts the encoder.
// Throws UserError naming the file: unreadable/corrupt checkpoint, no config anywhere, or an
// architecture that disagrees with `given` (naming the field and both values).
CheckpointEncoder LoadCheckpointEncoder(const std::string& path, const std::optional<GivenModelConfig>& given);

// Throws ArchitectureMismatch naming the differing field unless a and b describe the same encoder
// (backbone geometry and image size).
void CheckSameArchitecture(const config::ModelConfig& a, const std::string& a_source, const config::ModelConfig& b,
                           const std::string& b_source);

// A VisionTransformer for `model` at `image_size` (0 = model.image_size), eval mode.
model::VisionTransformer BuildEncoder(const config::ModelConfig& model, int image_size = 0);

}  // namespace vicreg::eval
