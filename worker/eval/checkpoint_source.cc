#include "worker/eval/checkpoint_source.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "common/config_loader.h"
#include "common/errors.h"
#include "worker/model/encoder_io.h"
#include "worker/train/checkpoint.h"

namespace vicreg::eval {

std::string EpochCheckpointPath(const std::string& dir, int epoch) {
  return dir + "/" + train::CheckpointManager::EpochFileName(epoch);
}

std::vector<int> ListEpochCheckpoints(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw UserError("--checkpoint_dir " + dir + ": not a directory");
  std::vector<int> epochs;
  DIR* d = opendir(dir.c_str());
  if (!d) throw UserError("--checkpoint_dir " + dir + ": cannot list the directory");
  while (const dirent* e = readdir(d)) {
    // epoch_0007.pt exactly (not epoch_0007.pt.tmp.123, not epoch_0007.json)
    const std::string name = e->d_name;
    if (name.size() <= 9 || name.compare(0, 6, "epoch_") != 0 || name.compare(name.size() - 3, 3, ".pt") != 0) continue;
    const std::string digits = name.substr(6, name.size() - 9);
    if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    const int epoch = std::stoi(digits);
    if (name == train::CheckpointManager::EpochFileName(epoch)) epochs.push_back(epoch);
  }
  closedir(d);
  std::sort(epochs.begin(), epochs.end());
  return epochs;
}

void CheckSameArchitecture(const config::ModelConfig& a_in, const std::string& a_source,
                           const config::ModelConfig& b_in, const std::string& b_source) {
  const auto a = model::VitOptions::FromConfig(a_in), b = model::VitOptions::FromConfig(b_in);
  std::vector<std::string> diffs;
  auto cmp = [&](const char* field, double x, double y) {
    if (x != y) {
      std::ostringstream os;
      os << "model." << field << " is " << x << " in " << a_source << " but " << y << " in " << b_source;
      diffs.push_back(os.str());
    }
  };
  cmp("image_size", a.image_size, b.image_size);
  cmp("patch_size", a.patch_size, b.patch_size);
  cmp("in_chans", a.in_chans, b.in_chans);
  cmp("embed_dim", a.embed_dim, b.embed_dim);
  cmp("depth", a.depth, b.depth);
  cmp("num_heads", a.num_heads, b.num_heads);
  cmp("mlp_ratio", a.mlp_ratio, b.mlp_ratio);
  if (!diffs.empty()) {
    std::string msg = "the model config does not match the checkpoint's architecture:";
    for (const auto& d : diffs) msg += "\n  " + d;
    throw ArchitectureMismatch(msg);
  }
}

CheckpointEncoder LoadCheckpointEncoder(const std::string& path, const std::optional<GivenModelConfig>& given) {
  auto payload = train::CheckpointManager::Load(path, /*require_manifest=*/false);
  CheckpointEncoder out;
  out.path = path;
  out.epoch = payload.epoch;
  if (!payload.config_yaml.empty()) {
    const auto job = config::ParseJobYaml(payload.config_yaml, path + " (embedded config)");
    out.model = config::ResolveModel(job.model);
    out.job = job;
    if (given) CheckSameArchitecture(given->model, given->source, out.model, path);
  } else if (given) {
    out.model = config::ResolveModel(given->model);
  } else {
    throw UserError("checkpoint " + path + " carries no config; pass --model_config or --job to name the architecture");
  }
  out.state = model::EncoderStateFromModelState(payload.model, path);
  return out;
}

model::VisionTransformer BuildEncoder(const config::ModelConfig& m, int image_size) {
  auto opts = model::VitOptions::FromConfig(m);
  if (image_size > 0 && image_size % opts.patch_size != 0)
    throw UserError("--image-size " + std::to_string(image_size) + ": must be a multiple of the encoder's patch size " +
                    std::to_string(opts.patch_size) + " (the model was trained at " + std::to_string(opts.image_size) +
                    ")");
  if (image_size > 0) opts.image_size = image_size;
  opts.drop_path_rate = 0.0;
  opts.Validate();
  model::VisionTransformer vit(opts);
  vit->eval();
  return vit;
}

}  // namespace vicreg::eval
