// NCCL backend (CUDA tensors; built with VICREG_WITH_NCCL, compile-checked without it).
//
// Bootstrap: rank 0's ncclUniqueId travels through `broadcast_bytes` (MPI_Bcast when launched
// by mpirun/srun, else the Gloo store), then ncclCommInitRank on cuda:<local_rank>.
// Stream semantics: blocking collectives are enqueued on the current CUDA stream (later work on
// that stream sees the result; the host does not wait). *Async collectives run on a side stream
// that first waits for the current stream; Work::Wait() makes the current stream wait for them,
// so gradient all-reduces overlap with the rest of the backward pass.
// Timeouts: a watchdog thread polls every enqueued collective's CUDA event and
// ncclCommGetAsyncError; a collective older than the timeout (or an async NCCL error) prints
// "[rank r/w] nccl allreduce #57 (... bytes) did not complete within 120.0 s ...", calls
// ncclCommAbort (unblocking the GPU) and ends the process through `abort_hook` (MPI_Abort), so
// the launcher tears the job down.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

struct NcclCommunicatorOptions {
  std::chrono::milliseconds timeout{120000};
  int device_index = 0;                                               // cuda:<local_rank>
  std::function<void(std::string& bytes, int root)> broadcast_bytes;  // required when world_size > 1
  std::function<void(int exit_code)> abort_hook;                      // default: std::_Exit
  std::chrono::milliseconds watchdog_period{100};
};

std::shared_ptr<Communicator> CreateNcclCommunicator(const RankInfo& info, const NcclCommunicatorOptions& opts);

}  // namespace vicreg::comm
