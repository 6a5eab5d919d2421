// VICReg projector ("expander"), facebookresearch/vicreg's Projector:
//   Linear(D, H) + BN + ReLU, [Linear(H, H) + BN + ReLU] x (layers - 2), Linear(H, P, bias=false)
// (default 3 layers: 384 -> 2048 -> 2048 -> 2048). The hidden Linears have a bias, the last one has
// none, exactly as facebookresearch (its BN-free last layer output feeds the loss directly).
// BN is SyncBatchNorm1d (global-batch statistics across ranks).
// Parameter names follow facebookresearch's nn.Sequential indices so a state_dict maps one to one:
//   0.weight 0.bias | 1.{weight,bias,running_mean,running_var,num_batches_tracked} | (2 = ReLU)
//   3.weight 3.bias | 4.* | (5 = ReLU) | 6.weight        (for 3 layers)
// With layers == 1 the projector is the single Linear(D, P, bias=false) named "0".
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <vector>

#include "common/config.h"

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::model {

struct ProjectorOptions {
  ProjectorOptions(int64_t in_dim = 384, int64_t hidden_dim = 2048, int64_t out_dim = 2048, int64_t layers = 3)
      : in_dim_(in_dim), hidden_dim_(hidden_dim), out_dim_(out_dim), layers_(layers) {}
  // in_dim from the encoder; dims and layer count from train.vicreg.
  static ProjectorOptions FromConfig(int64_t in_dim, const config::VicregConfig& v);
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, hidden_dim);
  TORCH_ARG(int64_t, out_dim);
  TORCH_ARG(int64_t, layers);  // number of Linear layers (>= 1)
  TORCH_ARG(double, bn_eps) = 1e-5;
  TORCH_ARG(double, bn_momentum) = 0.1;
};

class ProjectorImpl : public torch::nn::Module {
 public:
  explicit ProjectorImpl(const ProjectorOptions& opts, comm::Communicator* comm = nullptr);
  // h: [B, D] -> z: [B, P]
  at::Tensor forward(const at::Tensor& h);
  // h: [G*B, D], G independent batches stacked (the two views) -> z: [G*B, P]. Same as G forward()
  // calls (BN statistics and running-stat updates per batch, in order) but each Linear runs once
  // on all G*B rows.
  at::Tensor forward_stacked(const at::Tensor& h, int64_t groups);
  void set_communicator(comm::Communicator* comm);
  void reset_parameters();  // PyTorch defaults: Linear kaiming_uniform(a=sqrt(5)), BN 1/0
  const ProjectorOptions& options() const { return opts_; }

 private:
  struct Parts;
  ProjectorOptions opts_;
  std::shared_ptr<Parts> parts_;
};
TORCH_MODULE(Projector);

}  // namespace vicreg::model
