// Collective communication between the ranks of one job (DESIGN.md section 6).
// Backends (single, mpi, gloo, nccl) implement this interface; only communicator_factory.cc
// knows which exist (#if VICREG_HAVE_*). All collectives are blocking unless *Async.
// A collective that does not complete within the configured timeout throws RuntimeFailure
// naming the collective and, where known, the rank that did not respond.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace vicreg::dist {

// Where this process sits in the job; from OpenMPI, PMIx/Slurm, torchrun env, or none.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string source = "none";   // "openmpi" | "pmix" | "slurm" | "torchrun" | "none"
};
RankInfo DiscoverRank();         // reads the environment only

// Handle for an asynchronous collective.
class Work {
 public:
  virtual ~Work() = default;
  virtual void Wait() = 0;       // throws RuntimeFailure on timeout / peer failure
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;   // "single" | "mpi" | "gloo" | "nccl"

  // t: any shape, contiguous, on the backend's device. In place: t <- sum over ranks.
  virtual void AllReduceSum(at::Tensor& t) = 0;
  virtual std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) = 0;
  // t: [B, ...] (same B on all ranks) -> [world*B, ...], rank order.
  virtual at::Tensor AllGather(const at::Tensor& t) = 0;
  // In place: t <- root's t.
  virtual void Broadcast(at::Tensor& t, int root) = 0;
  virtual void Barrier() = 0;
  // Called on fatal errors so that peers stop waiting (MPI_Abort / ncclCommAbort); never returns.
  [[noreturn]] virtual void Abort(int exit_code, const std::string& reason) = 0;
};

struct CommunicatorOptions {
  std::string backend = "auto";                  // auto | single | mpi | gloo | nccl
  std::string device = "cpu";                    // cpu | cuda
  std::chrono::milliseconds timeout{120000};
  std::string rendezvous_dir;                    // FileStore location for gloo ("" = run dir/tmp)
};

// Builds the backend for this process (world_size 1 -> single unless a backend is forced).
std::shared_ptr<Communicator> CreateCommunicator(const RankInfo& info, const CommunicatorOptions& opts);

}  // namespace vicreg::dist
