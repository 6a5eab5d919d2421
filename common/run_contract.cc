#include "common/run_contract.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/fs.h"

namespace vicreg::contract {
namespace {

using nlohmann::json;

double UnixNow() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// JSON has no NaN/Inf: written as null (read back as the fallback).
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::optional<json> ReadJson(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

template <typename T>
T Get(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    return fallback;
  }
}

double MtimeSeconds(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
}

// Files "rank-<r>.json" of a directory.
std::vector<std::string> RankJsonFiles(const std::string& dir) {
  std::vector<std::string> out;
  DIR* dp = opendir(dir.c_str());
  if (!dp) return out;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    if (name.rfind("rank-", 0) != 0 || name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
    out.push_back(dir + "/" + name);
  }
  closedir(dp);
  return out;
}

}  // namespace

RunPaths::RunPaths(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

const char* RunStatusName(RunStatus s) {
  switch (s) {
    case RunStatus::kSucceeded: return "succeeded";
    case RunStatus::kFailed: return "failed";
    default: return "unknown";
  }
}

RunStatus ParseRunStatus(std::string_view text) {
  if (text == "succeeded") return RunStatus::kSucceeded;
  if (text == "failed") return RunStatus::kFailed;
  return RunStatus::kUnknown;
}

void WriteResult(const RunPaths& run, const RunResult& r) {
  nlohmann::ordered_json j;
  j["status"] = RunStatusName(r.status);
  j["reason"] = r.reason;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  j["checkpoint"] = r.checkpoint;
  j["wall_s"] = Num(r.wall_s);
  j["time"] = UnixNow();
  fs::AtomicWriteFile(run.result_json(), j.dump(2) + "\n");
}

std::optional<RunResult> ReadResult(const std::string& path) {
  auto j = ReadJson(path);
  if (!j) return std::nullopt;
  RunResult r;
  r.status = ParseRunStatus(Get<std::string>(*j, "status", ""));
  r.reason = Get<std::string>(*j, "reason", "");
  r.step = Get<int64_t>(*j, "step", 0);
  r.epoch = Get<int64_t>(*j, "epoch", 0);
  r.checkpoint = Get<std::string>(*j, "checkpoint", "");
  r.wall_s = Get<double>(*j, "wall_s", 0);
  return r;
}

void WriteProgress(const RunPaths& run, const Progress& p) {
  nlohmann::ordered_json j;
  j["step"] = p.step;
  j["total_steps"] = p.total_steps;
  j["epoch"] = p.epoch;
  j["num_epochs"] = p.num_epochs;
  j["loss"] = Num(p.loss);
  j["images_per_s"] = Num(p.images_per_s);
  j["time"] = UnixNow();
  fs::AtomicWriteFile(run.progress_json(), j.dump() + "\n");
}

std::optional<ProgressSnapshot> ReadProgress(const RunPaths& run) {
  auto j = ReadJson(run.progress_json());
  if (!j) return std::nullopt;
  ProgressSnapshot s;
  Progress& p = s.progress;
  p.step = Get<int64_t>(*j, "step", 0);
  p.total_steps = Get<int64_t>(*j, "total_steps", 0);
  p.epoch = Get<int64_t>(*j, "epoch", 0);
  p.num_epochs = Get<int64_t>(*j, "num_epochs", 0);
  p.loss = Get<double>(*j, "loss", 0);
  p.images_per_s = Get<double>(*j, "images_per_s", 0);
  s.time = Get<double>(*j, "time", 0);
  s.mtime = MtimeSeconds(run.progress_json());
  return s;
}

void WriteEndpoint(const RunPaths& run, const Endpoint& e) {
  nlohmann::ordered_json j;
  j["rank"] = e.rank;
  j["local_rank"] = e.local_rank;
  j["pid"] = e.pid;
  j["host"] = e.host;
  j["metrics"] = e.metrics.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.metrics);
  fs::AtomicWriteFile(run.endpoint_json(e.rank), j.dump() + "\n");
}

std::vector<Endpoint> ReadEndpoints(const RunPaths& run) {
  std::vector<Endpoint> out;
  for (const std::string& path : RankJsonFiles(run.endpoints_dir())) {
    auto j = ReadJson(path);
    if (!j) continue;
    Endpoint ep;
    ep.rank = Get<int>(*j, "rank", -1);
    ep.local_rank = Get<int>(*j, "local_rank", 0);
    ep.pid = Get<int64_t>(*j, "pid", 0);
    ep.host = Get<std::string>(*j, "host", "");
    ep.metrics = Get<std::string>(*j, "metrics", "");
    ep.mtime = MtimeSeconds(path);
    if (ep.rank < 0) continue;
    out.push_back(ep);
  }
  std::sort(out.begin(), out.end(), [](const Endpoint& a, const Endpoint& b) { return a.rank < b.rank; });
  return out;
}

void WriteJobYaml(const std::string& path, const std::string& yaml) { fs::AtomicWriteFile(path, yaml); }

std::vector<int> CheckpointEpochs(const RunPaths& run) {
  std::vector<int> out;
  const std::string dir = run.checkpoints_dir();
  DIR* dp = opendir(dir.c_str());
  if (!dp) return out;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    // epoch_0001.pt (complete checkpoints only: temporaries have another suffix)
    if (name.rfind("epoch_", 0) != 0 || name.size() < 10 || name.substr(name.size() - 3) != ".pt") continue;
    std::string digits = name.substr(6, name.size() - 9);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.push_back(std::stoi(digits));
  }
  closedir(dp);
  std::sort(out.begin(), out.end());
  return out;
}

std::string TailLines(const std::string& path, int max_lines, int64_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  const int64_t size = f.tellg();
  const int64_t start = std::max<int64_t>(0, size - max_bytes);
  f.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  std::vector<std::string> lines;
  std::stringstream ss(data);
  std::string line;
  while (std::getline(ss, line)) lines.push_back(line);
  if (start > 0 && !lines.empty()) lines.erase(lines.begin());  // partial first line
  const size_t first = lines.size() > static_cast<size_t>(max_lines) ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = first; i < lines.size(); ++i) {
    out += lines[i];
    if (i + 1 < lines.size()) out += '\n';
  }
  return out;
}

std::optional<ExitRecord> ReadExitRecord(const std::string& path) {
  auto j = ReadJson(path);
  if (!j) return std::nullopt;
  ExitRecord r;
  r.rank = Get<int>(*j, "rank", -1);
  r.pid = Get<int>(*j, "pid", 0);
  r.exit_code = Get<int>(*j, "exit_code", -1);
  r.signal = Get<int>(*j, "signal", 0);
  r.finished = Get<double>(*j, "finished", 0);
  return r;
}

std::vector<ExitRecord> ReadRankExits(const RunPaths& run, int attempt) {
  std::vector<ExitRecord> out;
  for (const std::string& path : RankJsonFiles(run.attempt_ranks_dir(attempt))) {
    if (auto r = ReadExitRecord(path)) out.push_back(*r);
  }
  std::sort(out.begin(), out.end(), [](const ExitRecord& a, const ExitRecord& b) {
    return a.finished != b.finished ? a.finished < b.finished : a.rank < b.rank;
  });
  return out;
}

std::optional<LauncherInfo> ReadLauncherInfo(const std::string& path) {
  auto j = ReadJson(path);
  if (!j) return std::nullopt;
  LauncherInfo i;
  i.pid = Get<int>(*j, "pid", 0);
  i.start_ticks = Get<uint64_t>(*j, "start_ticks", 0);
  if (i.pid <= 0) return std::nullopt;
  return i;
}

}  // namespace vicreg::contract
