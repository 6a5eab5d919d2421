// MPI backend (CPU tensors). Collectives are MPI non-blocking collectives completed by polling
// MPI_Test against a deadline, because blocking MPI collectives never time out. While polling,
// each rank also answers liveness probes on a private control communicator, so that a rank
// whose collective timed out can tell which peers are alive and where they are waiting:
//   "mpi allreduce #57 (16384 bytes) did not complete within 5.0 s on rank 0 of 3:
//    rank 1 did not answer a liveness probe (dead, stopped, or busy outside collectives);
//    rank 2 is waiting in mpi allreduce #57"
// On timeout or MPI error the communicator throws RuntimeFailure and marks the MPI runtime
// broken: at exit it calls MPI_Abort, so mpirun / srun kills every rank (no orphans).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

struct MpiCommunicatorOptions {
  std::chrono::milliseconds timeout{120000};
  // How long a timed-out rank waits for peers to answer the liveness probe (clamped to
  // [100 ms, 5 s] and to the timeout).
  std::chrono::milliseconds probe_grace{1000};
  // How long a wait polls without sleeping (then 20..200 us sleeps). Env VICREG_MPI_BUSY_POLL_US
  // overrides (the factory reads it).
  std::chrono::microseconds busy_poll{50000};
};

// Initializes MPI (once per process) and checks that MPI's view of the world matches `info`
// (RuntimeFailure otherwise, e.g. a worker built against another MPI than the launcher's).
std::shared_ptr<Communicator> CreateMpiCommunicator(const RankInfo& info, const MpiCommunicatorOptions& opts);

// Broadcasts `bytes` from `root` over MPI_COMM_WORLD (used to bootstrap other backends:
// the NCCL unique id, the Gloo rendezvous token). Initializes MPI if needed.
void MpiBroadcastBytes(std::string& bytes, int root);

// MPI_Abort(MPI_COMM_WORLD, code) if MPI is initialized (the launcher kills every rank), then
// std::_Exit(code). For other backends' Abort() when the job was launched through MPI.
[[noreturn]] void MpiAbort(int exit_code);

}  // namespace vicreg::comm
