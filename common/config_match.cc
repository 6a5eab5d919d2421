// ClosestMatch: the did-you-mean of config keys, enum values and CLI flags.
#include <algorithm>
#include <cctype>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/config_loader.h"

namespace vicreg::config {
namespace {

// Lower case, '-' -> '_', leading dashes dropped ("--Learning-Rate" -> "learning_rate").
std::string Normalize(const std::string& s) {
  size_t start = s.find_first_not_of('-');
  std::string out;
  for (size_t i = start == std::string::npos ? s.size() : start; i < s.size(); ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    out += c == '-' ? '_' : c;
  }
  return out;
}

size_t Levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// "learning_rate" -> "lr"
std::string Initials(const std::string& s) {
  std::string out;
  bool word_start = true;
  for (char c : s) {
    if (c == '_') {
      word_start = true;
    } else {
      if (word_start) out += c;
      word_start = false;
    }
  }
  return out;
}

// Names users bring from other tools (PyTorch scripts, facebookresearch/vicreg, torchrun).
const std::vector<std::pair<std::string, std::string>>& Synonyms() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"lr", "learning_rate"},
      {"base_lr", "learning_rate"},
      {"epochs", "num_epochs"},
      {"n_epochs", "num_epochs"},
      {"sim_coeff", "lambda_invariance"},
      {"std_coeff", "mu_variance"},
      {"cov_coeff", "nu_covariance"},
      {"world_size", "ranks"},
      {"nprocs", "ranks"},
      {"np", "ranks"},
      {"gpus", "ranks"},
      {"workers", "num_workers"},
      {"arch", "backbone_name"},
      {"model", "backbone_name"},
      {"model_name", "backbone_name"},
      {"backbone", "backbone_name"},
      {"img_size", "image_size"},
      {"input_size", "image_size"},
      {"resolution", "image_size"},
      {"patch", "patch_size"},
      {"dim", "embed_dim"},
      {"heads", "num_heads"},
      {"layers", "depth"},
      {"mlp", "proj_hidden_dim"},
      {"amp", "precision"},
      {"dtype", "precision"},
      {"clip_grad", "grad_clip"},
      {"clip", "grad_clip"},
      {"wd", "weight_decay"},
      {"bs", "batch_size"},
      {"dataset_name", "dataset"},
      {"root", "data_dir"},
      {"data_path", "data_dir"},
      {"data_root", "data_dir"},
      {"path", "data_dir"},
      {"gpu", "cuda"},
      {"float32", "fp32"},
      {"bfloat16", "bf16"},
      {"float16", "fp16"},
      {"half", "fp16"},
      {"adam", "adamw"},
  };
  return table;
}

}  // namespace

std::string ClosestMatch(const std::string& key, const std::vector<std::string>& valid) {
  // Valid names are short: a key this long is nothing's typo, and the edit distances below cost
  // len(key) x len(name) each (a megabyte key from a request must not cost seconds).
  constexpr size_t kMaxKeyChars = 128;
  if (key.size() > kMaxKeyChars) return "";
  const std::string k = Normalize(key);
  if (k.empty() || valid.empty()) return "";
  std::vector<std::string> norm;
  norm.reserve(valid.size());
  for (const auto& v : valid) norm.push_back(Normalize(v));

  // 1. Same name up to case and dashes.
  for (size_t i = 0; i < valid.size(); ++i) {
    if (norm[i] == k) return valid[i];
  }
  // 2. A known synonym whose target is valid here.
  for (const auto& [alias, target] : Synonyms()) {
    if (alias != k) continue;
    for (size_t i = 0; i < valid.size(); ++i) {
      if (norm[i] == target) return valid[i];
    }
  }
  // 3. Initials of a multi-word key ("wd" -> "weight_decay").
  if (k.size() >= 2 && k.find('_') == std::string::npos) {
    for (size_t i = 0; i < valid.size(); ++i) {
      if (norm[i].find('_') != std::string::npos && Initials(norm[i]) == k) return valid[i];
    }
  }
  // 4. Small edit distance (typos): up to 1 for short keys, 2 for medium, 3 for long ones.
  const size_t limit = k.size() <= 3 ? 1 : k.size() <= 6 ? 2 : 3;
  size_t best = std::numeric_limits<size_t>::max();
  std::string best_key;
  for (size_t i = 0; i < valid.size(); ++i) {
    size_t d = Levenshtein(k, norm[i]);
    if (d < best) best = d, best_key = valid[i];
  }
  if (best <= limit && best < k.size()) return best_key;
  // 5. One contains the other as a name part ("warmup" -> "warmup_epochs", "num_epoch" -> "num_epochs").
  best = std::numeric_limits<size_t>::max();
  best_key.clear();
  for (size_t i = 0; i < valid.size(); ++i) {
    const std::string& v = norm[i];
    bool contains =
        (k.size() >= 3 && v.find(k) != std::string::npos) || (v.size() >= 3 && k.find(v) != std::string::npos);
    if (!contains) continue;
    size_t d = Levenshtein(k, v);
    if (d < best) best = d, best_key = valid[i];
  }
  return best_key;
}

}  // namespace vicreg::config
