// The only file that knows which backends are compiled in (VICREG_HAVE_MPI/GLOO/NCCL).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>

#include "common/errors.h"
#include "worker/comm/collective_tracker.h"
#include "worker/comm/communicator.h"
#include "worker/comm/single_communicator.h"
#if VICREG_HAVE_MPI
#include "worker/comm/mpi_communicator.h"
#endif
#if VICREG_HAVE_GLOO
#include "worker/comm/gloo_communicator.h"
#endif
#if VICREG_HAVE_NCCL
#include "worker/comm/nccl_communicator.h"
#endif

namespace vicreg::comm {
namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// Launched by an MPI launcher whose runtime this binary can join (mpirun, srun --mpi=pmix).
[[maybe_unused]] bool MpiLaunched(const RankInfo& info) { return info.source == "openmpi" || info.source == "pmix"; }

// A job-unique token, identical on all ranks, for naming rendezvous files.
std::string JobToken(const RankInfo& info) {
  if (!info.job_token.empty()) return info.job_token;
#if VICREG_HAVE_MPI
  if (MpiLaunched(info)) {
    std::string token;
    if (info.rank == 0) {
      std::random_device rd;
      std::ostringstream os;
      os << "mpi." << std::hex << rd() << rd() << "." << std::chrono::steady_clock::now().time_since_epoch().count();
      token = os.str();
    }
    MpiBroadcastBytes(token, 0);
    return token;
  }
#endif
  return "";
}

}  // namespace

std::vector<std::string> AvailableBackends() {
  std::vector<std::string> v{"single"};
#if VICREG_HAVE_MPI
  v.push_back("mpi");
#endif
#if VICREG_HAVE_GLOO
  v.push_back("gloo");
#endif
#if VICREG_HAVE_NCCL
  v.push_back("nccl");
#endif
  return v;
}

std::shared_ptr<Communicator> CreateCommunicator(const RankInfo& info, const CommunicatorOptions& opts) {
  static const std::vector<std::string> kKnown = {"auto", "single", "mpi", "gloo", "nccl"};
  if (std::find(kKnown.begin(), kKnown.end(), opts.backend) == kKnown.end()) {
    throw UserError("resources.backend='" + opts.backend +
                    "' is invalid: valid values are auto, single, mpi, gloo, nccl");
  }
  if (opts.device != "cpu" && opts.device != "cuda") {
    throw UserError("resources.device='" + opts.device + "' is invalid: valid values are cpu, cuda");
  }
  if (opts.timeout.count() <= 0) {
    throw UserError("resources.collective_timeout_s=" + std::to_string(opts.timeout.count() / 1000.0) +
                    " is invalid: must be > 0");
  }
  const auto built = AvailableBackends();
  std::string backend = opts.backend;
  if (backend == "auto") {
    if (info.world_size == 1) {
      backend = "single";
    } else if (opts.device == "cuda") {
      backend = "nccl";
    } else {
      backend = std::find(built.begin(), built.end(), "mpi") != built.end() ? "mpi" : "gloo";
    }
  }
  if (std::find(built.begin(), built.end(), backend) == built.end()) {
    throw UserError("resources.backend=" + backend + " is not built into this binary (built: " + Join(built) +
                    "); rebuild with -DVICREG_WITH_" +
                    (backend == "nccl"  ? std::string("CUDA=ON -DVICREG_WITH_NCCL=ON")
                     : backend == "mpi" ? std::string("MPI=ON")
                                        : std::string("GLOO=ON")));
  }
  if (backend == "nccl" && opts.device != "cuda") {
    throw UserError("resources.backend=nccl needs resources.device=cuda (got '" + opts.device +
                    "'); use mpi or gloo on cpu");
  }
  if ((backend == "mpi" || backend == "gloo") && opts.device == "cuda") {
    throw UserError("resources.backend=" + backend + " moves CPU tensors only; use nccl with resources.device=cuda");
  }
  if (backend == "single") {
    if (info.world_size != 1) {
      throw UserError("resources.backend=single but this process is rank " + std::to_string(info.rank) + " of " +
                      std::to_string(info.world_size) + " (launcher: " + info.source +
                      "); use auto, mpi, gloo or nccl for several ranks");
    }
    return CreateSingleCommunicator(opts.device == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU));
  }
  if (opts.report_termination) InstallTerminationReporter(info.rank, info.world_size);

#if VICREG_HAVE_MPI
  if (backend == "mpi") {
    MpiCommunicatorOptions o;
    o.timeout = opts.timeout;
    if (const char* v = std::getenv("VICREG_MPI_BUSY_POLL_US")) {
      char* end = nullptr;
      const long long us = std::strtoll(v, &end, 10);
      if (!*v || *end || us < 0 || us > 10000000) {
        throw UserError(std::string("environment variable VICREG_MPI_BUSY_POLL_US='") + v +
                        "' is invalid: microseconds in 0..10000000");
      }
      o.busy_poll = std::chrono::microseconds(us);
    }
    return CreateMpiCommunicator(info, o);
  }
#endif
#if VICREG_HAVE_GLOO
  if (backend == "gloo") {
    GlooCommunicatorOptions o;
    o.timeout = opts.timeout;
    o.rendezvous_dir = opts.rendezvous_dir;
    o.job_token = JobToken(info);
    o.master_addr = info.master_addr;
    o.master_port = info.master_port;
    return CreateGlooCommunicator(info, o);
  }
#endif
#if VICREG_HAVE_NCCL
  if (backend == "nccl") {
    NcclCommunicatorOptions o;
    o.timeout = opts.timeout;
    o.device_index = info.local_rank;
#if VICREG_HAVE_MPI
    if (MpiLaunched(info)) {
      o.broadcast_bytes = [](std::string& bytes, int root) { MpiBroadcastBytes(bytes, root); };
      o.abort_hook = [](int code) { MpiAbort(code); };
    }
#endif
#if VICREG_HAVE_GLOO
    if (!o.broadcast_bytes && info.world_size > 1) {
      GlooCommunicatorOptions g;
      g.timeout = opts.timeout;
      g.rendezvous_dir = opts.rendezvous_dir;
      g.job_token = JobToken(info) + ".nccl-bootstrap";
      g.master_addr = info.master_addr;
      g.master_port = info.master_port;
      std::shared_ptr<Communicator> boot = CreateGlooCommunicator(info, g);
      o.broadcast_bytes = [boot](std::string& bytes, int root) {
        at::Tensor n = at::tensor({static_cast<int64_t>(bytes.size())}, at::kLong);
        boot->Broadcast(n, root);
        at::Tensor buf = at::zeros({n.item<int64_t>()}, at::kByte);
        if (boot->rank() == root) std::memcpy(buf.data_ptr(), bytes.data(), bytes.size());
        boot->Broadcast(buf, root);
        bytes.assign(static_cast<const char*>(buf.data_ptr()), static_cast<size_t>(buf.numel()));
      };
    }
#endif
    if (!o.broadcast_bytes && info.world_size > 1) {
      throw UserError(
          "the nccl backend needs a way to share its unique id: launch with mpirun/srun (MPI) or build "
          "with Gloo");
    }
    return CreateNcclCommunicator(info, o);
  }
#endif
  throw InternalError("backend " + backend + " listed as built but not constructed");
}

}  // namespace vicreg::comm
