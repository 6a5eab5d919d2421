// Wires the coordinator together: state dir (locked), store, scheduler, launcher, eval runner,
// job manager, gRPC server (service + health + reflection, optional TLS) and the metrics/SD
// HTTP endpoint. Used by vicreg_coordinator's main and by in-process tests.
#pragma once

#include <memory>
#include <string>

#include "server/coordinator_options.h"

namespace vicreg::server {

class Coordinator {
 public:
  // Validates nothing: pass options through FinalizeCoordinatorOptions first.
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();
  // Locks the state dir, opens the store, recovers jobs, starts serving. Throws UserError
  // (bad configuration) or RuntimeFailure (port in use, state dir locked, ...).
  void Start();
  // Blocks until Shutdown() is called (from another thread or a signal handler thread).
  void Wait();
  // Stops serving. Running jobs keep running and are re-adopted by the next start.
  void Shutdown();

  std::string grpc_address() const;     // "127.0.0.1:50051" (the bound port)
  std::string metrics_address() const;  // "127.0.0.1:9400" or "" when off

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::server
