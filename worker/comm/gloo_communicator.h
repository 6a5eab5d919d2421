// Gloo backend through LibTorch's c10d::ProcessGroupGloo (CPU tensors over TCP).
//
// Rendezvous: a c10d::FileStore at <rendezvous_dir>/gloo-<job_token> (no open port; on several
// nodes the folder must be on a file system they share, as the run directory is), or, when the
// launcher configured MASTER_ADDR/MASTER_PORT (torchrun) and no rendezvous_dir is given, a
// TCPStore there. Gloo's own transport binds (gloo_address.h):
//   gloo_host if set; else the interfaces in GLOO_SOCKET_IFNAME; else 127.0.0.1 when every rank is
//   on this host (local_world_size == world_size); else an address of this host that reaches the
//   ranks on other hosts, found by exchanging hostnames and interfaces through the store.
//
// Timeouts come from Gloo (the process group's timeout). On a failure each rank writes
// "failed/<seq>/<rank>" to the store and, after a grace period, reports which ranks did not,
// i.e. the ranks that are dead, stopped or elsewhere:
//   "gloo allreduce #12 (64 bytes) failed on rank 0 of 2: <gloo message>; unresponsive rank(s): 1"
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

struct GlooCommunicatorOptions {
  std::chrono::milliseconds timeout{120000};
  std::string rendezvous_dir;  // FileStore folder (must be shared by all ranks; "" = TCPStore or $TMPDIR)
  std::string job_token;       // unique per job launch, same on all ranks (names the FileStore file)
  std::string master_addr;     // TCPStore host when rendezvous_dir is "" (torchrun)
  int master_port = 0;
  std::string gloo_host;      // address to bind ("" = choose, see above)
  std::string socket_ifname;  // "" = $GLOO_SOCKET_IFNAME
  std::chrono::milliseconds probe_grace{1000};
  // Called by Abort() after printing the reason (e.g. MPI_Abort when launched by mpirun);
  // default: std::_Exit(exit_code).
  std::function<void(int)> abort_hook;
};

std::shared_ptr<Communicator> CreateGlooCommunicator(const RankInfo& info, const GlooCommunicatorOptions& opts);

}  // namespace vicreg::comm
