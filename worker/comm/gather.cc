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

}  // namespace

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
