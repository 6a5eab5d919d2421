#include "server/checkpoint_files.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/fs.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

double ParseUtc(const std::string& s) {
  std::tm tm{};
  if (s.size() < 19 || strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<double>(timegm(&tm));
}

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

}  // namespace

std::vector<CheckpointFile> ListCheckpointFiles(const std::string& dir) {
  std::vector<CheckpointFile> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::string latest;
  try {
    latest = fs::ReadFile(dir + "/latest");
    latest.erase(std::remove_if(latest.begin(), latest.end(), [](char c) { return c == '\n' || c == '\r'; }),
                 latest.end());
  } catch (const std::exception&) {
  }
  for (const auto& n : names) {
    // <stem>.json beside <stem>.pt, stems epoch_NNNN / step_NNNNNNNN only.
    if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0) continue;
    if (n.rfind("epoch_", 0) != 0 && n.rfind("step_", 0) != 0) continue;
    const std::string pt = n.substr(0, n.size() - 5) + ".pt";
    struct stat st{};
    if (::stat((dir + "/" + pt).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    nlohmann::json m = nlohmann::json::parse(fs::ReadFile(dir + "/" + n), nullptr, false);
    if (m.is_discarded() || !m.is_object()) continue;
    CheckpointFile c;
    c.file = pt;
    c.kind = m.value("kind", n.rfind("epoch_", 0) == 0 ? "epoch" : "step");
    if (!m.contains("epoch") || !m["epoch"].is_number_integer() || !m.contains("global_step") ||
        !m["global_step"].is_number_integer())
      continue;
    c.epoch = m["epoch"].get<int64_t>();
    c.global_step = m["global_step"].get<int64_t>();
    c.bytes = m.contains("bytes") && m["bytes"].is_number_integer() ? m["bytes"].get<int64_t>() : st.st_size;
    c.created_unix = m.contains("created") && m["created"].is_string() ? ParseUtc(m["created"].get<std::string>()) : 0;
    if (c.created_unix <= 0) c.created_unix = static_cast<double>(st.st_mtime);
    c.latest = pt == latest;
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const CheckpointFile& a, const CheckpointFile& b) {
    if (a.global_step != b.global_step) return a.global_step < b.global_step;
    if (a.kind != b.kind) return a.kind == "step";
    return a.file < b.file;
  });
  return out;
}

void ExportEncoderFile(const std::string& eval_binary, const std::string& checkpoint, const std::string& out,
                       double timeout_s) {
  CommandResult r = RunCommand({eval_binary, "export", "--checkpoint", checkpoint, "--out", out}, timeout_s);
  if (r.exit_code != 0) {
    std::string why = r.timed_out ? "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s"
                                  : "exited with status " + std::to_string(r.exit_code);
    throw std::runtime_error("vicreg_eval export " + why + ": " + Tail(r.err + r.out, 1500));
  }
}

}  // namespace vicreg::server
