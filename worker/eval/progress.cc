#include "worker/eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace vicreg::eval {

Progress::Progress(std::string label, int64_t total, ProgressOptions opts)
    : label_(std::move(label)), total_(total), opts_(std::move(opts)) {
  tty_ = isatty(STDERR_FILENO) == 1;
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Finish(); }

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  const double t = elapsed_s();
  return t > 0 ? static_cast<double>(done_) / t : 0.0;
}

void Progress::Advance(int64_t n) {
  done_ += n;
  if (!opts_.enabled || done_ >= total_) return;  // the final line follows from Finish()
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (tty_ ? 0.1 : opts_.log_interval_s)) {
    last_print_ = now;
    Print(false);
  }
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (opts_.enabled) Print(true);
}

void Progress::Print(bool final_line) {
  const double r = rate();
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0;
  char line[512];
  if (final_line) {
    std::snprintf(line, sizeof line, "%s: %lld/%lld %s in %.1fs (%.1f %s/s)", label_.c_str(),
                  static_cast<long long>(done_), static_cast<long long>(total_), opts_.unit.c_str(), elapsed_s(), r,
                  opts_.unit.c_str());
  } else {
    const double eta = r > 0 ? static_cast<double>(total_ - done_) / r : 0.0;
    constexpr int kWidth = 24;
    char bar[kWidth + 1];
    const int filled = static_cast<int>(pct / 100.0 * kWidth);
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = '\0';
    std::snprintf(line, sizeof line, "%s: [%s] %lld/%lld (%.0f%%) %.1f %s/s ETA %.0fs", label_.c_str(), bar,
                  static_cast<long long>(done_), static_cast<long long>(total_), pct, r, opts_.unit.c_str(), eta);
  }
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line, final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

}  // namespace vicreg::eval
