// Differentiable collectives for the VICReg variance/covariance terms over the batch of all ranks:
// an all-gather of the embeddings (facebookresearch/vicreg FullGatherLayer semantics) or the
// covariance from all-reduced sufficient statistics (communication independent of world size and batch).
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

// Unbiased covariance of a batch split over the ranks, from all-reduced sufficient statistics.
// z: [V, B, D] this rank's rows of V views (same V and D on every rank) -> [V, D, D],
//   Cov_v = sum over every rank's rows i of (z_vi - m_v)(z_vi - m_v)^T / (N - 1),
// m_v the global mean of view v, N the global number of rows. Two all-reduces, both independent of B
// and of the world size: [V*D + 1] (per-view column sums and the row count), then [V, D, D] (this
// rank's Gram matrices of its rows centred on the global mean). Centring before the Gram keeps fp32
// exact where sum(z z^T) - N m m^T would cancel; each rank does only its own B x D x D share.
// Differentiable w.r.t. z with a closed-form backward and no collective:
//   dL/dz = W * (z - m) (G + G^T) / (N - 1),  G = dL/dCov,  W = world size.
// The mean's own term vanishes (centred rows sum to 0). Contract, as for GatherWithGrad: every rank
// computes the same loss from the returned covariance, so the sum over ranks of dL/dCov that an
// all-reduce in the backward would form is W * G; this rank's gradient is then exactly what
// GatherWithGrad's backward gives for the same loss. comm null or world size 1: no collective.
// z must be on comm->device(); no host synchronization (the row count stays a tensor).
at::Tensor AllReducedCovariance(const at::Tensor& z, Communicator* comm);

// Not differentiable (diagnostics): z: [B, ...] -> [W*B, ...], detached. Moves z to comm.device()
// for the collective and returns the result on z's device.
at::Tensor GatherNoGrad(const at::Tensor& z, Communicator& comm);

}  // namespace vicreg::comm
