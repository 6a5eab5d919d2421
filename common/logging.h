// spdlog-based logging shared by all binaries. Every line is prefixed with the rank
// ("[rank 1/2]") once InitLogging knows it; optional per-rank file (<run_dir>/logs/rank-<r>.log).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace vicreg {

struct LogOptions {
  int rank = -1;  // -1: not a rank (coordinator, cli); no rank prefix
  int world_size = 1;
  std::string file;            // also append to this file ("" = console only)
  std::string level = "info";  // trace | debug | info | warn | error
  bool console = true;         // stderr
};

// Replaces the default logger. Safe to call again (e.g. after the rank becomes known).
void InitLogging(const LogOptions& opts);

}  // namespace vicreg
