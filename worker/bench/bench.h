// vicreg_bench subcommand registry: each benchmark lives in its own bench_<name>.cc and
// registers itself with VICREG_BENCH; bench_main.cc dispatches on argv[1].
// Every benchmark prints one JSON object per result line with an images_per_s (or bytes_per_s) field.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace vicreg::bench {

using Clock = std::chrono::steady_clock;
// Seconds since t0 (what every benchmark times with).
inline double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

using BenchFn = std::function<int(int argc, char** argv)>;  // argv[0] = the subcommand name

struct BenchEntry {
  std::string help;
  BenchFn fn;
};
std::map<std::string, BenchEntry>& Registry();

struct Registrar {
  Registrar(const std::string& name, const std::string& help, BenchFn fn) {
    Registry()[name] = BenchEntry{help, std::move(fn)};
  }
};

}  // namespace vicreg::bench

#define VICREG_BENCH(name, help, fn) static ::vicreg::bench::Registrar vicreg_bench_registrar_##fn(name, help, fn)
