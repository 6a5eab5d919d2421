#include "worker/comm/gather.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "common/errors.h"

namespace vicreg::comm {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct GatherFunction : public torch::autograd::Function<GatherFunction> {
  // z: [B, D] -> [W*B, D]
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z, Communicator* comm) {
    ctx->saved_data["batch"] = z.size(0);
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    return comm->AllGather(z.contiguous());
  }

  // grad: [W*B, D] -> [B, D] (sum over ranks of each rank's gradient, this rank's rows)
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const int64_t batch = ctx->saved_data["batch"].toInt();
    at::Tensor g = grads[0].contiguous().clone();
    comm->AllReduceSum(g);
    return {g.narrow(0, comm->rank() * batch, batch), at::Tensor()};
  }
};

struct CovarianceFunction : public torch::autograd::Function<CovarianceFunction> {
  // z: [V, B, D] -> [V, D, D]
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z, Communicator* comm) {
    const int64_t V = z.size(0), B = z.size(1), D = z.size(2);
    const int world = comm ? comm->world_size() : 1;
    // 1. Column sums of every view and the row count: [V*D + 1].
    at::Tensor sums = at::cat({z.sum(1).reshape({V * D}), at::full({1}, static_cast<double>(B), z.options())});
    if (world > 1) comm->AllReduceSum(sums);
    const at::Tensor count = sums.narrow(0, V * D, 1);                         // [1] global N
    const at::Tensor mean = sums.narrow(0, 0, V * D).view({V, 1, D}) / count;  // [V, 1, D]
    // 2. Gram matrices of this rank's rows centred on the global mean: [V, D, D].
    at::Tensor zc = z - mean;                                        // [V, B, D]
    at::Tensor gram = at::bmm(zc.transpose(1, 2), zc).contiguous();  // [V, D, D]
    if (world > 1) comm->AllReduceSum(gram);
    const at::Tensor denom = count - 1;  // [1]
    ctx->saved_data["zc"] = zc;
    ctx->saved_data["scale"] = static_cast<double>(world) / denom;  // [1]
    return gram / denom;
  }

  // grad: [V, D, D] -> [V, B, D]
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor zc = ctx->saved_data["zc"].toTensor(), scale = ctx->saved_data["scale"].toTensor();
    const at::Tensor& g = grads[0];
    return {at::bmm(zc, g + g.transpose(1, 2)) * scale, at::Tensor()};
  }
};

}  // namespace

at::Tensor AllReducedCovariance(const at::Tensor& z, Communicator* comm) {
  VICREG_CHECK(z.defined() && z.dim() == 3 && z.size(1) >= 1, "AllReducedCovariance needs z: [V, B >= 1, D], got " +
                                                                  (z.defined() ? c10::str(z.sizes()) : "undefined"));
  VICREG_CHECK(!comm || comm->world_size() == 1 || z.device() == comm->device(),
               "AllReducedCovariance: z is on " + z.device().str() + " but the " + (comm ? comm->backend() : "") +
                   " communicator works on " + (comm ? comm->device().str() : ""));
  return CovarianceFunction::apply(z, comm);
}

at::Tensor GatherWithGrad(const at::Tensor& z, Communicator& comm) {
  VICREG_CHECK(z.defined() && z.dim() >= 1, "GatherWithGrad needs z: [B, ...]");
  VICREG_CHECK(z.device() == comm.device(), "GatherWithGrad: z is on " + z.device().str() + " but the " +
                                                comm.backend() + " communicator works on " + comm.device().str());
  if (comm.world_size() == 1) return z;
  return GatherFunction::apply(z, &comm);
}

std::pair<at::Tensor, at::Tensor> GatherPairWithGrad(const at::Tensor& za, const at::Tensor& zb, Communicator& comm) {
  VICREG_CHECK(za.dim() == 2 && zb.sizes() == za.sizes() && za.scalar_type() == zb.scalar_type(),
               "GatherPairWithGrad needs za, zb: [B, P] of the same shape and dtype");
  if (comm.world_size() == 1) return {za, zb};
  const int64_t P = za.size(1);
  at::Tensor all = GatherWithGrad(at::cat({za, zb}, 1), comm);  // [W*B, 2P]
  return {all.narrow(1, 0, P), all.narrow(1, P, P)};
}

at::Tensor GatherNoGrad(const at::Tensor& z, Communicator& comm) {
  VICREG_CHECK(z.defined() && z.dim() >= 1, "GatherNoGrad needs z: [B, ...]");
  if (comm.world_size() == 1) return z.detach();
  at::Tensor local = z.detach().to(comm.device()).contiguous();
  return comm.AllGather(local).to(z.device());
}

}  // namespace vicreg::comm
