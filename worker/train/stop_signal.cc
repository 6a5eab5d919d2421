#include "worker/train/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace vicreg::train {

namespace {
std::atomic<int> g_signal{0};

void OnSignal(int signo) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, signo)) _exit(128 + signo);  // second signal: stop now
}
}  // namespace

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int StopSignal() { return g_signal.load(std::memory_order_relaxed); }
void RequestStop(int signo) { g_signal.store(signo); }
void ResetStop() { g_signal.store(0); }

}  // namespace vicreg::train
