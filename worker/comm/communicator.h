// Collective communication between the ranks of one job (docs/ARCHITECTURE.md "Distributed").
//
// Backends (single, mpi, gloo, nccl) implement this interface; only communicator_factory.cc
// knows which exist (#if VICREG_HAVE_*). Every rank must issue the same collectives in the
// same order. All collectives are blocking unless *Async; on NCCL "blocking" means ordered on
// the current CUDA stream (later kernels on that stream see the result), as in LibTorch.
//
// Failure contract: a collective that does not complete within CommunicatorOptions::timeout,
// or that fails because a peer died, throws RuntimeFailure whose message names the collective
// (name, sequence number, bytes) and, where it can be found out, the rank(s) that did not
// respond. After such a failure the communicator is broken: every later call throws, and at
// process exit the MPI runtime is aborted instead of finalized so that the launcher tears the
// whole job down (no orphans). Callers that want to stop all ranks at once call Abort().
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace vicreg::comm {

// Where this process sits in the job; from OpenMPI, PMIx/Slurm, torchrun env, or none.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string source = "none";  // "openmpi" | "pmix" | "slurm" | "torchrun" | "none"
  std::string job_token;        // launcher's id of this job step, same on all ranks ("" = unknown):
                                // PMIX_NAMESPACE, OMPI jobid, SLURM_JOB_ID.SLURM_STEP_ID, TORCHELASTIC_RUN_ID
  std::string master_addr;      // torchrun only (MASTER_ADDR / MASTER_PORT), "" / 0 otherwise
  int master_port = 0;
};

// Reads the process environment only. Precedence: OpenMPI (OMPI_COMM_WORLD_*), then PMIx/Slurm
// (PMIX_RANK, SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE, ...), then
// torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), else a single process.
// A malformed or inconsistent value throws UserError naming the variable, its value and what
// is valid (e.g. "OMPI_COMM_WORLD_RANK=3 is not below OMPI_COMM_WORLD_SIZE=2").
RankInfo DiscoverRank();

// Same, from an explicit environment (tests). env: "NAME=value" entries.
RankInfo DiscoverRankFromEnv(const std::vector<std::string>& env);

// The device this rank trains on: "cpu" -> "cpu"; "cuda" -> "cuda:<local_rank>".
// cuda_device_count: visible CUDA devices (-1 = do not check). Throws UserError when the
// local rank has no device of its own (e.g. 4 ranks per node on 2 visible GPUs).
std::string DeviceForRank(const RankInfo& info, const std::string& device, int cuda_device_count = -1);

// Handle for an asynchronous collective. Keeps its tensors alive until completion.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until done (NCCL: makes the current CUDA stream wait). Throws RuntimeFailure on
  // timeout / peer failure. Idempotent.
  virtual void Wait() = 0;
  // Non-blocking completion check; also drives progress for backends that need it (MPI).
  virtual bool Test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "single" | "mpi" | "gloo" | "nccl"
  virtual c10::Device device() const = 0;   // where tensors passed to collectives must live
  // True when *Async calls return before the data moved (real overlap is possible).
  virtual bool SupportsAsync() const = 0;

  // t: any shape, contiguous, on device(). In place: t <- sum over ranks.
  virtual void AllReduceSum(at::Tensor& t) = 0;
  virtual std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) = 0;
  // t: [B, ...] (same shape and dtype on all ranks) -> [world*B, ...], rank order.
  virtual at::Tensor AllGather(const at::Tensor& t) = 0;
  // t: any shape, contiguous. In place: t <- root's t.
  virtual void Broadcast(at::Tensor& t, int root) = 0;
  virtual void Barrier() = 0;
  // Called on fatal errors so that peers stop waiting (MPI_Abort / ncclCommAbort + exit):
  // prints "[rank r] aborting job (exit code c): reason" to stderr, never returns.
  [[noreturn]] virtual void Abort(int exit_code, const std::string& reason) = 0;
};

struct CommunicatorOptions {
  std::string backend = "auto";               // auto | single | mpi | gloo | nccl
                                              // (auto: nccl on cuda, mpi on cpu, gloo when built without MPI)
  std::string device = "cpu";                 // cpu | cuda
  std::chrono::milliseconds timeout{120000};  // per collective; 0 < timeout
  std::string rendezvous_dir;                 // gloo FileStore folder (the trainer passes <run_dir>/rendezvous);
                                              // "" = $TMPDIR or /tmp (single node only)
  bool report_termination = true;             // on SIGTERM/SIGINT (e.g. mpirun killing the job after a peer
                                              // died) print the collective this rank was waiting in
};

// Builds the backend for this process (world_size 1 -> single unless a backend is forced).
// Throws UserError for an unknown/unbuilt backend or a backend/device mismatch (e.g. nccl on cpu).
std::shared_ptr<Communicator> CreateCommunicator(const RankInfo& info, const CommunicatorOptions& opts);

// Names of the backends compiled into this binary (for --help and error messages).
std::vector<std::string> AvailableBackends();

}  // namespace vicreg::comm
