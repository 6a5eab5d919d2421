// A progress line on stderr for long loops (feature extraction): count, percent, rate, ETA.
// On a terminal the line is redrawn in place (at most 10 times/s); otherwise (logs, the
// coordinator's pipes) a full line is printed every `log_interval_s` seconds and at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vicreg::eval {

struct ProgressOptions {
  bool enabled = true;
  double log_interval_s = 10.0;  // non-terminal output: seconds between lines
  std::string unit = "img";
};

class Progress {
 public:
  Progress(std::string label, int64_t total, ProgressOptions opts = {});
  void Advance(int64_t n);  // n more items done
  void Finish();            // final line (idempotent; also called by the destructor)
  ~Progress();
  double elapsed_s() const;
  double rate() const;  // items per second so far

 private:
  void Print(bool final_line);
  std::string label_;
  int64_t total_, done_ = 0;
  ProgressOptions opts_;
  bool tty_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace vicreg::eval
