#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <memory>
#include <vector>

#include "common/errors.h"
#include "common/fs.h"

namespace vicreg {
namespace {

spdlog::level::level_enum ParseLevel(const std::string& name) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace},       {"debug", spdlog::level::debug},  {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},         {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off},
  };
  for (const auto& [text, level] : kLevels) {
    if (name == text) return level;
  }
  throw UserError("log level: must be one of trace|debug|info|warn|error|critical|off, got \"" + name + "\"");
}

// "[2026-11-28 10:00:00.123] [info] [rank 1/4] message"; no rank part when rank < 0.
std::string Pattern(const LogOptions& opts) {
  std::string rank;
  if (opts.rank >= 0) rank = "[rank " + std::to_string(opts.rank) + "/" + std::to_string(opts.world_size) + "] ";
  return "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] " + rank + "%v";
}

}  // namespace

void InitLogging(const LogOptions& opts) {
  const spdlog::level::level_enum level = ParseLevel(opts.level);
  std::vector<spdlog::sink_ptr> sinks;
  if (opts.console) sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!opts.file.empty()) {
    size_t slash = opts.file.find_last_of('/');
    if (slash != std::string::npos && slash > 0) fs::MakeDirs(opts.file.substr(0, slash));
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file, /*truncate=*/false));
    } catch (const spdlog::spdlog_ex& e) {
      throw RuntimeFailure("cannot open log file '" + opts.file + "': " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("vicreg", sinks.begin(), sinks.end());
  logger->set_pattern(Pattern(opts));
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  // Replaces (and thereby closes) the previous default logger; safe to call again.
  spdlog::set_default_logger(logger);
  // File sinks buffer: push info lines out at least every second (log followers, SIGKILL).
  if (!opts.file.empty()) spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace vicreg
