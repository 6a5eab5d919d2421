// Rank discovery from the launcher's environment (OpenMPI, PMIx/Slurm, torchrun) and device choice.
#include <cerrno>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/comm/communicator.h"

extern char** environ;

namespace vicreg::comm {
namespace {

using Env = std::map<std::string, std::string>;

std::optional<std::string> Get(const Env& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end()) return std::nullopt;
  return it->second;
}

// Strict integer parse: the whole value must be a base-10 integer in [min_value, INT_MAX].
int ParseInt(const std::string& name, const std::string& value, int min_value) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || end != value.c_str() + value.size() || errno == ERANGE || v > 0x7fffffffL) {
    throw UserError("environment variable " + name + "='" + value + "' is not an integer");
  }
  if (v < min_value) {
    throw UserError("environment variable " + name + "=" + value +
                    " is invalid: must be >= " + std::to_string(min_value));
  }
  return static_cast<int>(v);
}

std::optional<int> GetInt(const Env& env, const std::string& name, int min_value) {
  auto v = Get(env, name);
  if (!v) return std::nullopt;
  return ParseInt(name, *v, min_value);
}

void RequireBelow(const std::string& a_name, int a, const std::string& b_name, int b) {
  if (a >= b) {
    throw UserError("environment variable " + a_name + "=" + std::to_string(a) + " is not below " + b_name + "=" +
                    std::to_string(b) + " (valid: 0.." + std::to_string(b - 1) + ")");
  }
}

void RequireEqual(const std::string& a_name, int a, const std::string& b_name, int b) {
  if (a != b) {
    throw UserError("inconsistent launcher environment: " + a_name + "=" + std::to_string(a) + " but " + b_name + "=" +
                    std::to_string(b) + " (they must name the same value)");
  }
}

// Slurm's compressed per-node task counts, e.g. "2(x3),1" -> {2, 2, 2, 1}.
std::vector<int> ParseTasksPerNode(const std::string& name, const std::string& value) {
  std::vector<int> out;
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    int repeat = 1;
    auto paren = item.find('(');
    std::string count = item;
    if (paren != std::string::npos) {
      if (item.size() < paren + 4 || item.compare(paren, 2, "(x") != 0 || item.back() != ')') {
        throw UserError("environment variable " + name + "='" + value +
                        "' is malformed: expected counts like '2(x3),1'");
      }
      count = item.substr(0, paren);
      repeat = ParseInt(name, item.substr(paren + 2, item.size() - paren - 3), 1);
    }
    const int c = ParseInt(name, count, 1);
    out.insert(out.end(), repeat, c);
  }
  if (out.empty()) throw UserError("environment variable " + name + " is empty: expected counts like '2(x3),1'");
  return out;
}

RankInfo FromOpenMpi(const Env& env) {
  RankInfo r;
  r.source = "openmpi";
  auto size = GetInt(env, "OMPI_COMM_WORLD_SIZE", 1);
  if (!size) throw UserError("environment variable OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
  r.rank = *GetInt(env, "OMPI_COMM_WORLD_RANK", 0);
  r.world_size = *size;
  RequireBelow("OMPI_COMM_WORLD_RANK", r.rank, "OMPI_COMM_WORLD_SIZE", r.world_size);
  r.local_rank = GetInt(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0).value_or(r.world_size == 1 ? 0 : -1);
  r.local_world_size = GetInt(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1).value_or(r.world_size == 1 ? 1 : -1);
  if (r.local_rank < 0 || r.local_world_size < 0) {
    throw UserError(
        "OpenMPI environment without OMPI_COMM_WORLD_LOCAL_RANK/OMPI_COMM_WORLD_LOCAL_SIZE: "
        "launch with OpenMPI's mpirun (>= 1.5)");
  }
  RequireBelow("OMPI_COMM_WORLD_LOCAL_RANK", r.local_rank, "OMPI_COMM_WORLD_LOCAL_SIZE", r.local_world_size);
  if (r.local_world_size > r.world_size) {
    RequireBelow("OMPI_COMM_WORLD_LOCAL_SIZE", r.local_world_size - 1, "OMPI_COMM_WORLD_SIZE", r.world_size);
  }
  if (auto pmix = GetInt(env, "PMIX_RANK", 0)) RequireEqual("PMIX_RANK", *pmix, "OMPI_COMM_WORLD_RANK", r.rank);
  r.job_token = Get(env, "PMIX_NAMESPACE").value_or(Get(env, "OMPI_MCA_ess_base_jobid").value_or(""));
  return r;
}

// srun task (with or without PMIx). Only a launched step counts: inside a batch script or an
// salloc shell SLURM_PROCID/SLURM_NTASKS describe the allocation, not this process.
RankInfo FromSlurm(const Env& env) {
  RankInfo r;
  const bool pmix = Get(env, "PMIX_RANK").has_value();
  r.source = pmix ? "pmix" : "slurm";
  std::string size_name = "SLURM_STEP_NUM_TASKS";
  auto size = GetInt(env, size_name, 1);
  if (!size) size = GetInt(env, size_name = "SLURM_NTASKS", 1);
  if (!size) size = GetInt(env, size_name = "SLURM_NPROCS", 1);
  std::optional<int> procid = GetInt(env, "SLURM_PROCID", 0);
  std::optional<int> pmix_rank = GetInt(env, "PMIX_RANK", 0);
  if (procid && pmix_rank) RequireEqual("PMIX_RANK", *pmix_rank, "SLURM_PROCID", *procid);
  const std::string rank_name = procid ? "SLURM_PROCID" : "PMIX_RANK";
  r.rank = procid ? *procid : *pmix_rank;
  if (!size) {
    throw UserError("environment variable " + rank_name +
                    " is set but the world size is unknown: none of SLURM_STEP_NUM_TASKS, SLURM_NTASKS, "
                    "SLURM_NPROCS is set (launch with srun, or with OpenMPI's mpirun)");
  }
  r.world_size = *size;
  RequireBelow(rank_name, r.rank, size_name, r.world_size);
  if (auto nt = GetInt(env, "SLURM_NTASKS", 1); nt && size_name == "SLURM_STEP_NUM_TASKS" && *nt < r.world_size) {
    RequireEqual("SLURM_NTASKS", *nt, "SLURM_STEP_NUM_TASKS", r.world_size);
  }
  // Local rank / size.
  r.local_rank = GetInt(env, "SLURM_LOCALID", 0).value_or(-1);
  int local_size = -1;
  std::string local_size_name;
  for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    if (auto v = Get(env, name)) {
      auto counts = ParseTasksPerNode(name, *v);
      const int node = GetInt(env, "SLURM_NODEID", 0).value_or(0);
      if (node >= static_cast<int>(counts.size())) {
        throw UserError("environment variable SLURM_NODEID=" + std::to_string(node) + " has no entry in " + name +
                        "='" + *v + "'");
      }
      local_size = counts[node];
      local_size_name = name;
      break;
    }
  }
  if (local_size < 0) {
    if (auto n = GetInt(env, "SLURM_NTASKS_PER_NODE", 1)) {
      local_size = *n;
      local_size_name = "SLURM_NTASKS_PER_NODE";
    } else if (GetInt(env, "SLURM_NNODES", 1).value_or(1) == 1) {
      local_size = r.world_size;
      local_size_name = size_name;
    }
  }
  if (r.local_rank < 0) r.local_rank = (local_size == r.world_size) ? r.rank : -1;
  if (r.local_rank < 0 || local_size < 0) {
    throw UserError(
        "Slurm environment without SLURM_LOCALID / SLURM_STEP_TASKS_PER_NODE: cannot tell the local "
        "rank (launch the ranks with srun)");
  }
  r.local_world_size = local_size;
  RequireBelow("SLURM_LOCALID", r.local_rank, local_size_name, r.local_world_size);
  if (r.local_world_size > r.world_size) {
    throw UserError("environment variable " + local_size_name + " gives " + std::to_string(r.local_world_size) +
                    " tasks on this node, more than " + size_name + "=" + std::to_string(r.world_size));
  }
  if (auto ns = Get(env, "PMIX_NAMESPACE")) {
    r.job_token = *ns;
  } else if (auto job = Get(env, "SLURM_JOB_ID")) {
    r.job_token = "slurm." + *job + "." + Get(env, "SLURM_STEP_ID").value_or("0");
  }
  return r;
}

RankInfo FromTorchrun(const Env& env) {
  RankInfo r;
  r.source = "torchrun";
  auto size = GetInt(env, "WORLD_SIZE", 1);
  auto rank = GetInt(env, "RANK", 0);
  if (!size) throw UserError("environment variable RANK is set but WORLD_SIZE is not (torchrun sets both)");
  if (!rank) throw UserError("environment variable WORLD_SIZE is set but RANK is not (torchrun sets both)");
  r.rank = *rank;
  r.world_size = *size;
  RequireBelow("RANK", r.rank, "WORLD_SIZE", r.world_size);
  r.local_rank = GetInt(env, "LOCAL_RANK", 0).value_or(r.world_size == 1 ? 0 : -1);
  r.local_world_size = GetInt(env, "LOCAL_WORLD_SIZE", 1).value_or(r.world_size == 1 ? 1 : -1);
  if (r.local_rank < 0) throw UserError("environment variable RANK is set but LOCAL_RANK is not (torchrun sets both)");
  if (r.local_world_size < 0) {
    // Older launchers omit LOCAL_WORLD_SIZE; single node is the only safe assumption.
    r.local_world_size = r.world_size;
  }
  RequireBelow("LOCAL_RANK", r.local_rank, "LOCAL_WORLD_SIZE", r.local_world_size);
  if (r.local_world_size > r.world_size) {
    throw UserError("environment variable LOCAL_WORLD_SIZE=" + std::to_string(r.local_world_size) +
                    " is larger than WORLD_SIZE=" + std::to_string(r.world_size));
  }
  if (auto addr = Get(env, "MASTER_ADDR")) {
    r.master_addr = *addr;
    auto port = Get(env, "MASTER_PORT");
    if (!port) throw UserError("environment variable MASTER_ADDR is set but MASTER_PORT is not");
    r.master_port = ParseInt("MASTER_PORT", *port, 1);
    if (r.master_port > 65535)
      throw UserError("environment variable MASTER_PORT=" + *port + " is not a TCP port (1..65535)");
  }
  r.job_token = Get(env, "TORCHELASTIC_RUN_ID").value_or("");
  if (r.job_token.empty() && !r.master_addr.empty()) {
    r.job_token = "torchrun." + r.master_addr + "." + std::to_string(r.master_port);
  }
  return r;
}

RankInfo Discover(const Env& env) {
  if (Get(env, "OMPI_COMM_WORLD_RANK") || Get(env, "OMPI_COMM_WORLD_SIZE")) {
    if (!Get(env, "OMPI_COMM_WORLD_RANK")) {
      throw UserError("environment variable OMPI_COMM_WORLD_SIZE is set but OMPI_COMM_WORLD_RANK is not");
    }
    return FromOpenMpi(env);
  }
  const bool slurm_step = Get(env, "SLURM_STEP_ID").has_value() && Get(env, "SLURM_PROCID").has_value();
  if (Get(env, "PMIX_RANK") || slurm_step) return FromSlurm(env);
  if (Get(env, "RANK") || Get(env, "WORLD_SIZE")) return FromTorchrun(env);
  return RankInfo{};
}

}  // namespace

RankInfo DiscoverRankFromEnv(const std::vector<std::string>& entries) {
  Env env;
  for (const auto& e : entries) {
    auto eq = e.find('=');
    if (eq == std::string::npos) continue;
    env[e.substr(0, eq)] = e.substr(eq + 1);
  }
  return Discover(env);
}

RankInfo DiscoverRank() {
  std::vector<std::string> entries;
  for (char** e = environ; e && *e; ++e) entries.emplace_back(*e);
  return DiscoverRankFromEnv(entries);
}

std::string DeviceForRank(const RankInfo& info, const std::string& device, int cuda_device_count) {
  if (device == "cpu") return "cpu";
  if (device != "cuda") {
    throw UserError("resources.device='" + device + "' is invalid: valid values are cpu, cuda");
  }
  if (cuda_device_count == 0) {
    throw UserError("resources.device=cuda but no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)");
  }
  if (cuda_device_count > 0 && info.local_rank >= cuda_device_count) {
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    throw UserError("local rank " + std::to_string(info.local_rank) + " (of " + std::to_string(info.local_world_size) +
                    " ranks on this node) needs cuda:" + std::to_string(info.local_rank) + " but only " +
                    std::to_string(cuda_device_count) + " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES=" +
                    (vis ? vis : "<unset>") + "); start at most one rank per GPU");
  }
  return "cuda:" + std::to_string(info.local_rank);
}

}  // namespace vicreg::comm
