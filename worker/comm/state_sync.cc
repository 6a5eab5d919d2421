#include "worker/comm/state_sync.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstring>
#include <map>

#include "common/errors.h"

namespace vicreg::comm {
namespace {

// Parameters then buffers, with their kind-prefixed names.
std::vector<std::pair<std::string, at::Tensor>> StateTensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back("param:" + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back("buffer:" + b.key(), b.value());
  return out;
}

// Fletcher-64 over 32-bit words (+ tail bytes), seeded by the length: exact and order-sensitive.
uint64_t HashBytes(const uint8_t* data, size_t n) {
  uint64_t a = 0x9E3779B97F4A7C15ULL ^ n, b = n;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t w;
    std::memcpy(&w, data + i, 4);
    a += w;
    b += a;
  }
  for (; i < n; ++i) {
    a += data[i];
    b += a;
  }
  return (b << 32) ^ (b >> 32) ^ a;
}

}  // namespace

void BroadcastModuleState(torch::nn::Module& module, Communicator& comm, int root) {
  if (comm.world_size() == 1) return;
  at::NoGradGuard no_grad;
  auto tensors = StateTensors(module);
  // Group by dtype (e.g. float parameters, int64 num_batches_tracked); std::map keeps the order identical on all ranks.
  std::map<int, std::vector<at::Tensor>> groups;
  for (auto& [name, t] : tensors) {
    if (t.defined() && t.numel() > 0) groups[static_cast<int>(t.scalar_type())].push_back(t);
  }
  for (auto& [type, list] : groups) {
    std::vector<at::Tensor> flat_parts;
    for (auto& t : list) flat_parts.push_back(t.detach().reshape({-1}).to(comm.device()));
    at::Tensor flat = at::cat(flat_parts);
    comm.Broadcast(flat, root);
    int64_t off = 0;
    for (auto& t : list) {
      t.detach().copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

std::vector<TensorChecksum> StateChecksum(const torch::nn::Module& module) {
  std::vector<TensorChecksum> out;
  for (auto& [name, t] : StateTensors(module)) {
    TensorChecksum c;
    c.name = name;
    if (t.defined()) {
      at::Tensor h = t.detach().to(at::kCPU).contiguous();
      c.hash = HashBytes(static_cast<const uint8_t*>(h.data_ptr()), static_cast<size_t>(h.nbytes()));
    }
    out.push_back(std::move(c));
  }
  return out;
}

void CheckConsistent(const torch::nn::Module& module, Communicator& comm, const std::string& context) {
  const auto sums = StateChecksum(module);
  if (comm.world_size() == 1) return;
  const auto opts = at::TensorOptions().dtype(at::kLong).device(comm.device());
  // First make sure every rank has the same number of tensors (otherwise the gather would be ill-formed).
  at::Tensor count = at::full({1}, static_cast<int64_t>(sums.size()), opts);
  at::Tensor counts = comm.AllGather(count).to(at::kCPU);
  for (int r = 0; r < comm.world_size(); ++r) {
    if (counts[r].item<int64_t>() != static_cast<int64_t>(sums.size())) {
      throw RuntimeFailure("model state diverged across ranks" + (context.empty() ? "" : " at " + context) + ": rank " +
                           std::to_string(r) + " has " + std::to_string(counts[r].item<int64_t>()) +
                           " parameter/buffer tensors, rank " + std::to_string(comm.rank()) + " has " +
                           std::to_string(sums.size()));
    }
  }
  at::Tensor mine = at::empty({1, static_cast<int64_t>(sums.size())}, at::kLong);
  for (size_t i = 0; i < sums.size(); ++i) mine[0][static_cast<int64_t>(i)] = static_cast<int64_t>(sums[i].hash);
  at::Tensor all = comm.AllGather(mine.to(comm.device())).to(at::kCPU);  // [W, T]
  auto acc = all.accessor<int64_t, 2>();
  for (size_t i = 0; i < sums.size(); ++i) {
    for (int r = 1; r < comm.world_size(); ++r) {
      if (acc[r][static_cast<int64_t>(i)] != acc[0][static_cast<int64_t>(i)]) {
        throw RuntimeFailure("model state diverged across ranks" + (context.empty() ? "" : " at " + context) + ": " +
                             sums[i].name + " differs on rank " + std::to_string(r) + " from rank 0 (first of " +
                             std::to_string(sums.size()) + " tensors checked in order)");
      }
    }
  }
}

}  // namespace vicreg::comm
