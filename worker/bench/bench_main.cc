// vicreg_bench: throughput benchmarks (docs/ARCHITECTURE.md "Benchmarks"). `vicreg_bench --help` lists them.
#include <cstdio>
#include <cstring>
#include <exception>

#include "common/build_info.h"
#include "common/errors.h"
#include "worker/bench/bench.h"
#include "worker/comm/torch_build_info.h"

namespace vicreg::bench {
std::map<std::string, BenchEntry>& Registry() {
  static std::map<std::string, BenchEntry> r;
  return r;
}
}  // namespace vicreg::bench

int main(int argc, char** argv) {
  auto& reg = vicreg::bench::Registry();
  if (vicreg::PrintVersionIfAsked(argc, argv, "vicreg_bench", vicreg::comm::TorchBuildFields())) return vicreg::kExitOk;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fprintf(argc < 2 ? stderr : stdout,
                 "usage: vicreg_bench <benchmark> [options]  (<benchmark> --help for options)\n"
                 "       vicreg_bench --version\n\nbenchmarks:\n");
    for (const auto& [name, e] : reg)
      std::fprintf(argc < 2 ? stderr : stdout, "  %-10s %s\n", name.c_str(), e.help.c_str());
    return argc < 2 ? vicreg::kExitUsage : vicreg::kExitOk;
  }
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    std::fprintf(stderr, "vicreg_bench: unknown benchmark '%s'; valid:", argv[1]);
    for (const auto& [name, e] : reg) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return vicreg::kExitUsage;
  }
  try {
    return it->second.fn(argc - 1, argv + 1);
  } catch (const vicreg::UserError& e) {
    std::fprintf(stderr, "vicreg_bench %s: %s\n", argv[1], e.what());
    return vicreg::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vicreg_bench %s: %s\n", argv[1], e.what());
    return vicreg::kExitFailure;
  }
}
