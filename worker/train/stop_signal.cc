#include "worker/train/stop_signal.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace vicreg::train {

namespace {
std::atomic<int> g_signal{0};
std::atomic<bool> g_installed{false};

void OnSignal(int signo) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, signo)) _exit(128 + signo);  // second signal: stop now
}

// Runs the handler currently installed for `sig` (ours, or a reporter that chains to ours, e.g.
// comm's collective tracker) in this ordinary thread.
void Dispatch(int sig, siginfo_t* info) {
  struct sigaction cur {};
  if (sigaction(sig, nullptr, &cur) != 0) return OnSignal(sig);
  if (cur.sa_flags & SA_SIGINFO) {
    if (cur.sa_sigaction != nullptr) cur.sa_sigaction(sig, info, nullptr);
  } else if (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN) {
    cur.sa_handler(sig);
  } else {
    OnSignal(sig);
  }
}
}  // namespace

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  if (g_installed.exchange(true)) return;
  // The stop signals are taken by a dedicated thread (sigwaitinfo) and blocked in the calling
  // thread, and so in every thread it creates later (loader, OpenMP pool, communicators). A handler
  // that interrupts the compute thread inside JIT-generated GEMM code (oneDNN's dnnl_sgemm) was
  // observed to corrupt the heap (~20% of SIGTERMs under CPU load); with the signals blocked there,
  // the kernel delivers them to the signal thread, or to a library thread started before this call
  // (which runs the async-signal-safe handler above).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (;;) {
      siginfo_t info{};
      const int sig = sigwaitinfo(&set, &info);
      if (sig > 0) Dispatch(sig, &info);
    }
  }).detach();
}

int StopSignal() { return g_signal.load(std::memory_order_relaxed); }
void RequestStop(int signo) { g_signal.store(signo); }
void ResetStop() { g_signal.store(0); }

}  // namespace vicreg::train
