// Process-wide MPI runtime (internal to worker/comm; needs <mpi.h>): initialized once with
// MPI_THREAD_SERIALIZED (every MPI call in this process goes through Lock()), finalized at exit,
// or aborted at exit when a collective failed so that the launcher tears the whole job down.
#pragma once

#include <mpi.h>

#include <mutex>
#include <string>

namespace vicreg::comm::mpi {

class Environment {
 public:
  // MPI_Init_thread on first use (adopts an MPI that someone else initialized). Throws
  // RuntimeFailure if MPI cannot provide at least MPI_THREAD_SERIALIZED.
  static Environment& Get();

  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }
  int world_rank() const { return world_rank_; }
  int world_size() const { return world_size_; }

  // After a failed collective: at exit call MPI_Abort (peers may be stuck; MPI_Finalize would hang).
  void MarkBroken(int exit_code);
  bool broken() const;
  // MPI_Abort(MPI_COMM_WORLD, code): the launcher kills every rank. Never returns.
  [[noreturn]] void Abort(int exit_code);

  static std::string ErrorString(int err);

 private:
  Environment();
  static void AtExit();

  std::mutex mu_;
  int world_rank_ = 0;
  int world_size_ = 1;
  bool we_initialized_ = false;
};

}  // namespace vicreg::comm::mpi
