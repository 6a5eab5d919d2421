// All-gather of embeddings across ranks for the VICReg variance/covariance terms
// (facebookresearch/vicreg FullGatherLayer semantics, docs/ARCHITECTURE.md "Distributed").
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

// Differentiable: forward all-gathers z: [B, D] -> [W*B, D] (rank order); backward all-reduces
// (sums) the incoming gradient [W*B, D] over ranks and returns this rank's slice [B, D]. Every
// rank computes the same loss on the gathered batch, so the sum counts each rank's loss once.
// Requires the same B on every rank. World size 1: returns z itself (no copy, plain autograd).
at::Tensor GatherWithGrad(const at::Tensor& z, Communicator& comm);

// Both views in one collective each way (half the latency of two GatherWithGrad calls):
// za, zb: [B, P] -> {za_all, zb_all}: [W*B, P] each (views of one gathered [W*B, 2P] tensor).
std::pair<at::Tensor, at::Tensor> GatherPairWithGrad(const at::Tensor& za, const at::Tensor& zb, Communicator& comm);

// Not differentiable (diagnostics): z: [B, ...] -> [W*B, ...], detached. Moves z to comm.device()
// for the collective and returns the result on z's device.
at::Tensor GatherNoGrad(const at::Tensor& z, Communicator& comm);

}  // namespace vicreg::comm
