// Keeping every rank's model identical: broadcast at start, cheap consistency check in debug mode.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

// Copies root's parameters and buffers (module.named_parameters() then named_buffers(), in
// registration order) to every rank, one flat broadcast per dtype. Collective.
void BroadcastModuleState(torch::nn::Module& module, Communicator& comm, int root = 0);

struct TensorChecksum {
  std::string name;   // "param:blocks.0.attn.qkv.weight" / "buffer:projector.1.running_mean"
  uint64_t hash = 0;  // 64-bit Fletcher-style checksum of the tensor's bytes (exact, order-sensitive)
};
// Local and cheap (one pass over the bytes; CUDA tensors are copied to the host).
std::vector<TensorChecksum> StateChecksum(const torch::nn::Module& module);

// Collective: all-gathers every rank's checksums and throws RuntimeFailure naming the first
// tensor whose bytes differ between rank 0 and another rank, e.g.
//   "model state diverged across ranks at step check: param:blocks.0.attn.qkv.weight differs on rank 2 from rank 0"
// Used every N steps in debug mode; `context` is included in the message (e.g. "step 500").
void CheckConsistent(const torch::nn::Module& module, Communicator& comm, const std::string& context = "");

}  // namespace vicreg::comm
