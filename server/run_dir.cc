#include "server/run_dir.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace vicreg::server {
namespace {

using nlohmann::json;

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

}  // namespace

double FileMtime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
}

std::optional<WorkerProgress> ReadProgress(const RunDir& d) {
  auto j = ReadJson(d.Progress());
  if (!j) return std::nullopt;
  WorkerProgress p;
  p.step = Get<int64_t>(*j, "step", 0);
  p.total_steps = Get<int64_t>(*j, "total_steps", 0);
  p.epoch = Get<int64_t>(*j, "epoch", 0);
  p.num_epochs = Get<int64_t>(*j, "num_epochs", 0);
  p.loss = Get<double>(*j, "loss", 0);
  p.images_per_s = Get<double>(*j, "images_per_s", 0);
  p.time = Get<double>(*j, "time", 0);
  p.mtime = FileMtime(d.Progress());
  return p;
}

std::optional<WorkerResult> ReadResult(const RunDir& d) {
  auto j = ReadJson(d.Result());
  if (!j) return std::nullopt;
  WorkerResult r;
  r.status = Get<std::string>(*j, "status", "");
  r.reason = Get<std::string>(*j, "reason", "");
  r.step = Get<int64_t>(*j, "step", 0);
  r.epoch = Get<int64_t>(*j, "epoch", 0);
  return r;
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

std::vector<ExitRecord> ReadRankExits(const RunDir& d, int attempt) {
  std::vector<ExitRecord> out;
  std::string dir = d.AttemptRanks(attempt);
  DIR* dp = opendir(dir.c_str());
  if (!dp) return out;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    if (name.rfind("rank-", 0) != 0 || name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
    if (auto r = ReadExitRecord(dir + "/" + name)) out.push_back(*r);
  }
  closedir(dp);
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

std::vector<RankEndpoint> ReadEndpoints(const RunDir& d) {
  std::vector<RankEndpoint> out;
  std::string dir = d.Endpoints();
  DIR* dp = opendir(dir.c_str());
  if (!dp) return out;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    if (name.rfind("rank-", 0) != 0 || name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
    std::string path = dir + "/" + name;
    auto j = ReadJson(path);
    if (!j) continue;
    RankEndpoint ep;
    ep.rank = Get<int>(*j, "rank", -1);
    ep.pid = Get<int>(*j, "pid", 0);
    ep.host = Get<std::string>(*j, "host", "");
    ep.metrics = Get<std::string>(*j, "metrics", "");
    ep.mtime = FileMtime(path);
    if (ep.rank < 0) continue;
    out.push_back(ep);
  }
  closedir(dp);
  std::sort(out.begin(), out.end(), [](const RankEndpoint& a, const RankEndpoint& b) { return a.rank < b.rank; });
  return out;
}

std::vector<int> CheckpointEpochs(const RunDir& d) {
  std::vector<int> out;
  std::string dir = d.Checkpoints();
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

std::string TailFile(const std::string& path, int max_lines, int64_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  int64_t size = f.tellg();
  int64_t start = std::max<int64_t>(0, size - max_bytes);
  f.seekg(start);
  std::string data(static_cast<size_t>(size - start), '\0');
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  std::vector<std::string> lines;
  std::stringstream ss(data);
  std::string line;
  while (std::getline(ss, line)) lines.push_back(line);
  if (start > 0 && !lines.empty()) lines.erase(lines.begin());  // partial first line
  size_t first = lines.size() > static_cast<size_t>(max_lines) ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = first; i < lines.size(); ++i) {
    out += lines[i];
    if (i + 1 < lines.size()) out += '\n';
  }
  return out;
}

}  // namespace vicreg::server
