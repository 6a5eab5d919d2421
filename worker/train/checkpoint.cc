#include "worker/train/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <dirent.h>
#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

#include "common/errors.h"
#include "common/fs.h"
#include "worker/data/torch_archive.h"

namespace vicreg::train {

const std::vector<std::string> kCheckpointKeys = {"format", "model",       "optimizer",      "scheduler",      "scaler",
                                                  "epoch",  "global_step", "batch_in_epoch", "epoch_complete", "rng",
                                                  "config", "world_size",  "global_batch",   "nonfinite_total"};

namespace {

using GenericDict = c10::impl::GenericDict;

GenericDict NewDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

std::string Stem(const std::string& file) {
  auto dot = file.rfind('.');
  return dot == std::string::npos ? file : file.substr(0, dot);
}
std::string ManifestPathFor(const std::string& path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string file = slash == std::string::npos ? path : path.substr(slash + 1);
  return dir + Stem(file) + ".json";
}

std::string UtcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Typed access to a decoded dict with errors that name the file and the key.
class Reader {
 public:
  Reader(const GenericDict& d, std::string source, std::string prefix)
      : d_(d), source_(std::move(source)), prefix_(std::move(prefix)) {}
  const c10::IValue& Get(const std::string& key) const {
    auto it = d_.find(key);
    if (it == d_.end())
      throw UserError("checkpoint " + source_ + ": missing key '" + prefix_ + key +
                      "' (not a complete vicreg checkpoint; expected keys: " + Join() + ")");
    return it->value();
  }
  [[noreturn]] void Bad(const std::string& key, const std::string& want, const c10::IValue& v) const {
    throw UserError("checkpoint " + source_ + ": key '" + prefix_ + key + "' must be " + want + ", found " +
                    v.tagKind());
  }
  int64_t Int(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isInt()) Bad(key, "an int", v);
    return v.toInt();
  }
  double Double(const std::string& key) const {
    const auto& v = Get(key);
    if (v.isDouble()) return v.toDouble();
    if (v.isInt()) return static_cast<double>(v.toInt());
    Bad(key, "a float", v);
  }
  bool Bool(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isBool()) Bad(key, "a bool", v);
    return v.toBool();
  }
  std::string Str(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isString()) Bad(key, "a str", v);
    return v.toStringRef();
  }
  GenericDict Dict(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isGenericDict()) Bad(key, "a dict", v);
    return v.toGenericDict();
  }
  at::Tensor Tensor(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isTensor()) Bad(key, "a tensor", v);
    return v.toTensor();
  }
  const std::string& source() const { return source_; }

 private:
  static std::string Join() {
    std::string s;
    for (const auto& k : kCheckpointKeys) s += (s.empty() ? "" : ", ") + k;
    return s;
  }
  const GenericDict& d_;
  std::string source_, prefix_;
};

void CheckFinite(const CheckpointPayload& p) {
  for (const auto& [name, t] : p.model) {
    if (!t.defined() || !at::isFloatingType(t.scalar_type())) continue;
    if (!at::isfinite(t).all().item<bool>())
      throw RuntimeFailure("refusing to write a checkpoint at step " + std::to_string(p.global_step) +
                           ": model tensor '" + name + "' holds NaN or Inf");
  }
}

}  // namespace

std::vector<char> EncodeCheckpoint(const CheckpointPayload& p) {
  GenericDict d = NewDict();
  d.insert("format", std::string(kCheckpointFormat));
  c10::Dict<std::string, at::Tensor> model;
  for (const auto& [name, t] : p.model) model.insert(name, t.detach().cpu().contiguous());
  d.insert("model", model);
  if (p.optimizer.isGenericDict()) {
    d.insert("optimizer", p.optimizer);
  } else {
    VICREG_CHECK(p.optimizer.isNone(), "optimizer state must be a dict");
    d.insert("optimizer", NewDict());
  }
  GenericDict sched = NewDict();
  sched.insert("step", p.scheduler_step);
  d.insert("scheduler", sched);
  GenericDict scaler = NewDict();
  scaler.insert("enabled", p.scaler.enabled);
  scaler.insert("scale", p.scaler.scale);
  scaler.insert("growth_tracker", p.scaler.growth_tracker);
  d.insert("scaler", scaler);
  d.insert("epoch", p.epoch);
  d.insert("global_step", p.global_step);
  d.insert("batch_in_epoch", p.batch_in_epoch);
  d.insert("epoch_complete", p.epoch_complete);
  GenericDict rng = NewDict();
  rng.insert("torch_cpu", p.rng_cpu.defined() ? p.rng_cpu : at::empty({0}, at::kByte));
  c10::List<at::Tensor> cuda;
  for (const auto& t : p.rng_cuda) cuda.push_back(t.cpu());
  rng.insert("torch_cuda", cuda);
  d.insert("rng", rng);
  d.insert("config", p.config_yaml);
  d.insert("world_size", p.world_size);
  d.insert("global_batch", p.global_batch);
  d.insert("nonfinite_total", p.nonfinite_total);
  if (p.time_budget) {
    GenericDict tb = NewDict();
    tb.insert("total_steps", p.time_budget->total_steps);
    tb.insert("seconds_used", p.time_budget->seconds_used);
    d.insert("time_budget", tb);
  }
  return torch::pickle_save(c10::IValue(d));
}

CheckpointPayload DecodeCheckpoint(const std::vector<char>& bytes, const std::string& source) {
  c10::IValue root;
  try {
    root = vicreg::data::LoadTorchArchive(bytes.data(), bytes.size());  // reads clamped to `bytes` (torch_archive.h)
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw UserError("checkpoint " + source + ": not a readable torch archive (" + what +
                    "); the file is truncated or corrupted");
  }
  if (!root.isGenericDict())
    throw UserError("checkpoint " + source + ": top level must be a dict, found " + root.tagKind());
  GenericDict d = root.toGenericDict();
  Reader r(d, source, "");
  std::string format = r.Str("format");
  if (format != kCheckpointFormat)
    throw UserError("checkpoint " + source + ": format '" + format + "' is not supported (expected '" +
                    kCheckpointFormat + "')");
  CheckpointPayload p;
  GenericDict model = r.Dict("model");
  if (model.size() == 0) throw UserError("checkpoint " + source + ": key 'model' is an empty state_dict");
  p.model.reserve(model.size());
  for (const auto& kv : model) {
    if (!kv.key().isString() || !kv.value().isTensor())
      throw UserError("checkpoint " + source + ": 'model' must map names to tensors");
    p.model.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
  }
  r.Dict("optimizer");
  p.optimizer = r.Get("optimizer");
  GenericDict sched = r.Dict("scheduler");
  p.scheduler_step = Reader(sched, source, "scheduler.").Int("step");
  GenericDict scaler = r.Dict("scaler");
  Reader rs(scaler, source, "scaler.");
  p.scaler.enabled = rs.Bool("enabled");
  p.scaler.scale = rs.Double("scale");
  p.scaler.growth_tracker = rs.Int("growth_tracker");
  p.epoch = r.Int("epoch");
  p.global_step = r.Int("global_step");
  p.batch_in_epoch = r.Int("batch_in_epoch");
  p.epoch_complete = r.Bool("epoch_complete");
  GenericDict rng = r.Dict("rng");
  Reader rr(rng, source, "rng.");
  p.rng_cpu = rr.Tensor("torch_cpu");
  const auto& cuda = rr.Get("torch_cuda");
  if (!cuda.isList()) rr.Bad("torch_cuda", "a list of tensors", cuda);
  for (const auto& v : cuda.toListRef()) {
    if (!v.isTensor()) rr.Bad("torch_cuda", "a list of tensors", v);
    p.rng_cuda.push_back(v.toTensor());
  }
  p.config_yaml = r.Str("config");
  p.world_size = r.Int("world_size");
  p.global_batch = r.Int("global_batch");
  p.nonfinite_total = r.Int("nonfinite_total");
  if (d.contains("time_budget")) {  // optional (checkpoint.h)
    Reader rt(r.Dict("time_budget"), source, "time_budget.");
    CheckpointPayload::TimeBudgetState tb{rt.Int("total_steps"), rt.Double("seconds_used")};
    if (tb.total_steps < 1 || !(tb.seconds_used >= 0) || !std::isfinite(tb.seconds_used))
      throw UserError("checkpoint " + source + ": inconsistent time_budget (total_steps " +
                      std::to_string(tb.total_steps) + ", seconds_used " + std::to_string(tb.seconds_used) +
                      "); expected total_steps >= 1 and seconds_used >= 0");
    p.time_budget = tb;
  }
  if (p.epoch < 1 || p.global_step < 0 || p.batch_in_epoch < 0)
    throw UserError("checkpoint " + source + ": inconsistent progress (epoch " + std::to_string(p.epoch) +
                    ", global_step " + std::to_string(p.global_step) + ", batch_in_epoch " +
                    std::to_string(p.batch_in_epoch) + ")");
  return p;
}

CheckpointManager::CheckpointManager(CheckpointManagerOptions opts) : opts_(std::move(opts)) {
  VICREG_CHECK(!opts_.dir.empty(), "checkpoint dir must be set");
  VICREG_CHECK(opts_.keep_last >= 1, "keep_last must be >= 1");
}

std::string CheckpointManager::EpochFileName(int64_t epoch) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "epoch_%04lld.pt", static_cast<long long>(epoch));
  return buf;
}
std::string CheckpointManager::StepFileName(int64_t global_step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "step_%08lld.pt", static_cast<long long>(global_step));
  return buf;
}

std::string CheckpointManager::Save(const std::string& file_name, const std::string& kind, const CheckpointPayload& p) {
  VICREG_CHECK(file_name.find('/') == std::string::npos && file_name.size() > 3 &&
                   file_name.compare(file_name.size() - 3, 3, ".pt") == 0,
               "bad checkpoint file name " + file_name);
  CheckFinite(p);
  fs::MakeDirs(opts_.dir);
  const std::string path = opts_.dir + "/" + file_name;
  const std::string manifest = ManifestPathFor(path);
  std::vector<char> bytes = EncodeCheckpoint(p);
  std::string_view view(bytes.data(), bytes.size());
  // An older checkpoint of the same name stops counting as complete before its archive is replaced.
  if (fs::Exists(manifest) && ::unlink(manifest.c_str()) != 0)
    throw RuntimeFailure("cannot remove " + manifest + ": " + std::strerror(errno));
  fs::AtomicWriteFile(path, view);
  nlohmann::json m = {{"file", file_name},
                      {"bytes", bytes.size()},
                      {"crc32", fs::Crc32(view)},
                      {"epoch", p.epoch},
                      {"global_step", p.global_step},
                      {"kind", kind},
                      {"format", kCheckpointFormat},
                      {"created", UtcNow()}};
  fs::AtomicWriteFile(manifest, m.dump(2) + "\n");
  fs::AtomicWriteFile(opts_.dir + "/latest", file_name + "\n");
  ApplyRetention(file_name);
  return path;
}

CheckpointPayload CheckpointManager::Load(const std::string& path, bool require_manifest) {
  if (!fs::Exists(path)) throw UserError("checkpoint " + path + ": file does not exist");
  const std::string manifest_path = ManifestPathFor(path);
  std::optional<nlohmann::json> manifest;
  if (fs::Exists(manifest_path)) {
    try {
      manifest = nlohmann::json::parse(fs::ReadFile(manifest_path));
    } catch (const nlohmann::json::exception& e) {
      throw UserError("checkpoint manifest " + manifest_path + ": not valid JSON (" + e.what() + ")");
    }
  } else if (require_manifest) {
    throw UserError("checkpoint " + path + ": its manifest " + manifest_path +
                    " is missing, so the checkpoint is incomplete (the writer stopped before finishing it)");
  } else {
    spdlog::warn("checkpoint {}: no manifest {}; size and CRC32 cannot be verified, checking the archive only", path,
                 manifest_path);
  }
  std::string data = fs::ReadFile(path);
  if (manifest) {
    int64_t want_bytes = -1;
    int64_t want_crc = -1;
    try {
      want_bytes = manifest->at("bytes").get<int64_t>();
      want_crc = manifest->at("crc32").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw UserError("checkpoint manifest " + manifest_path + ": needs integer fields 'bytes' and 'crc32' (" +
                      e.what() + ")");
    }
    if (static_cast<int64_t>(data.size()) != want_bytes)
      throw UserError("checkpoint " + path + ": size is " + std::to_string(data.size()) + " bytes but its manifest " +
                      "says " + std::to_string(want_bytes) + " (truncated or overwritten)");
    uint32_t crc = fs::Crc32(data);
    if (static_cast<int64_t>(crc) != want_crc)
      throw UserError("checkpoint " + path + ": CRC32 is " + std::to_string(crc) + " but its manifest says " +
                      std::to_string(want_crc) + " (the file is corrupted)");
  }
  std::vector<char> bytes(data.begin(), data.end());
  data.clear();
  data.shrink_to_fit();
  return DecodeCheckpoint(bytes, path);
}

std::vector<CheckpointInfo> CheckpointManager::List() const {
  std::vector<CheckpointInfo> out;
  DIR* d = ::opendir(opts_.dir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  for (const auto& n : names) {
    if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0) continue;
    const std::string mpath = opts_.dir + "/" + n;
    try {
      auto m = nlohmann::json::parse(fs::ReadFile(mpath));
      CheckpointInfo ci;
      ci.file = m.at("file").get<std::string>();
      if (ci.file.find('/') != std::string::npos || Stem(ci.file) + ".json" != n) continue;
      ci.path = opts_.dir + "/" + ci.file;
      if (!fs::Exists(ci.path)) continue;
      ci.bytes = m.at("bytes").get<int64_t>();
      ci.crc32 = m.at("crc32").get<uint32_t>();
      ci.epoch = m.at("epoch").get<int64_t>();
      ci.global_step = m.at("global_step").get<int64_t>();
      ci.kind = m.value("kind", std::string("step"));
      out.push_back(std::move(ci));
    } catch (const std::exception& e) {
      spdlog::warn("ignoring unreadable checkpoint manifest {}: {}", mpath, e.what());
    }
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    if (a.global_step != b.global_step) return a.global_step < b.global_step;
    if (a.kind != b.kind) return a.kind == "step";  // the epoch checkpoint of the same step is "newer"
    return a.file < b.file;
  });
  return out;
}

std::string CheckpointManager::Latest() const {
  const std::string p = opts_.dir + "/latest";
  if (!fs::Exists(p)) return "";
  std::string s = fs::ReadFile(p);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.find('/') != std::string::npos) {
    spdlog::warn("{}: ignoring '{}' (must be a file name inside {})", p, s, opts_.dir);
    return "";
  }
  return s;
}

void CheckpointManager::ApplyRetention(const std::string& protect_file) {
  auto all = List();
  std::set<std::string> keep;
  keep.insert(protect_file);
  std::string latest = Latest();
  if (!latest.empty()) keep.insert(latest);
  const int n = static_cast<int>(all.size());
  for (int i = std::max(0, n - opts_.keep_last); i < n; ++i) keep.insert(all[i].file);
  for (const auto& ci : all) {
    if (ci.kind == "epoch" &&
        std::find(opts_.keep_epochs.begin(), opts_.keep_epochs.end(), ci.epoch) != opts_.keep_epochs.end())
      keep.insert(ci.file);
  }
  for (const auto& ci : all) {
    if (keep.count(ci.file)) continue;
    // Manifest first: a crash in between leaves an archive without manifest, which never counts as complete.
    const std::string manifest = ManifestPathFor(ci.path);
    if (::unlink(manifest.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("retention: cannot remove {}: {}", manifest, std::strerror(errno));
      continue;
    }
    if (::unlink(ci.path.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("retention: cannot remove {}: {}", ci.path, std::strerror(errno));
    else
      spdlog::debug("retention: removed {}", ci.path);
  }
}

std::optional<std::pair<std::string, CheckpointPayload>> CheckpointManager::Resume(const std::string& spec) const {
  if (spec.empty() || spec == "none") return std::nullopt;
  if (spec != "auto") {
    if (!fs::Exists(spec))
      throw UserError("--resume " + spec + ": no such checkpoint file (use auto, none, or a path to a .pt file)");
    return std::make_pair(spec, Load(spec, /*require_manifest=*/false));
  }
  std::vector<std::string> problems;
  const std::string latest = Latest();
  if (!latest.empty()) {
    const std::string path = opts_.dir + "/" + latest;
    try {
      return std::make_pair(path, Load(path));
    } catch (const UserError& e) {
      spdlog::warn("--resume auto: latest checkpoint is unusable: {}; falling back to the previous one", e.what());
      problems.push_back(e.what());
    }
  }
  auto all = List();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (it->file == latest) continue;
    try {
      auto p = Load(it->path);
      if (!latest.empty())
        spdlog::warn("--resume auto: resuming from {} (step {}) instead of {}", it->file, it->global_step, latest);
      return std::make_pair(it->path, std::move(p));
    } catch (const UserError& e) {
      spdlog::warn("--resume auto: skipping {}: {}", it->file, e.what());
      problems.push_back(e.what());
    }
  }
  if (problems.empty()) {  // nothing complete was ever checkpointed: fresh start
    std::vector<std::string> orphans;
    if (DIR* d = ::opendir(opts_.dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 3 && n.compare(n.size() - 3, 3, ".pt") == 0) orphans.push_back(n);
      }
      ::closedir(d);
    }
    if (!orphans.empty())
      spdlog::warn(
          "--resume auto: ignoring {} incomplete checkpoint(s) without a manifest in {} (e.g. {}); "
          "starting from scratch",
          orphans.size(), opts_.dir, orphans.front());
    return std::nullopt;
  }
  std::string msg = "--resume auto: no usable checkpoint in " + opts_.dir + ":";
  for (const auto& p : problems) msg += "\n  " + p;
  msg += "\n(remove the damaged files or pass --resume none with a new --run-dir to start over)";
  throw UserError(msg);
}

}  // namespace vicreg::train
