// vicreg_coordinator: the long-running job service (docs/ARCHITECTURE.md, docs/OPERATIONS.md).
// Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 invalid configuration, 1 runtime failure.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "common/errors.h"
#include "common/logging.h"
#include "server/coordinator.h"
#include "server/coordinator_options.h"

int main(int argc, char** argv) {
  using namespace vicreg;
  server::CoordinatorOptions options;
  try {
    int code = 0;
    if (!server::ParseCoordinatorArgs(argc, argv, &options, &code)) return code;
    server::FinalizeCoordinatorOptions(&options);
  } catch (const UserError& e) {
    std::cerr << "vicreg_coordinator: " << e.what() << "\n";
    return kExitUsage;
  }
  LogOptions lo;
  lo.level = options.log_level;
  InitLogging(lo);

  // SIGTERM/SIGINT are handled by a thread (sigwait), so they never interrupt the gRPC threads.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    server::Coordinator coordinator(options);
    coordinator.Start();
    std::atomic<bool> got_signal{false};
    std::thread signals([&] {
      int sig = 0;
      sigwait(&set, &sig);
      got_signal = true;
      spdlog::info("vicreg_coordinator: {} received, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      coordinator.Shutdown();
    });
    coordinator.Wait();
    coordinator.Shutdown();
    // Wake the signal thread if the shutdown came from elsewhere (the signal stays blocked).
    if (!got_signal) kill(getpid(), SIGTERM);
    signals.join();
  } catch (const UserError& e) {
    spdlog::error("vicreg_coordinator: {}", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    spdlog::error("vicreg_coordinator: {}", e.what());
    return kExitFailure;
  }
  return kExitOk;
}
