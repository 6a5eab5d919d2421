// BatchNorm1d whose training statistics are computed over the global batch (all ranks), as
// torch.nn.SyncBatchNorm: forward all-gathers each rank's [mean, M2, count] and combines them
// (Chan's parallel variance); normalization uses the biased global variance, running_var is updated
// with the unbiased one; backward all-reduces sum(dy) and sum(dy * (x - mean)) to form the input
// gradient, while weight/bias gradients stay local (gradient averaging happens with the others).
// With a null communicator or world size 1 it equals torch::nn::BatchNorm1d (eps 1e-5, momentum 0.1).
// Buffers and parameters use BatchNorm1d's names: weight, bias, running_mean, running_var,
// num_batches_tracked.
#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::model {

struct SyncBatchNormOptions {
  /* implicit */ SyncBatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  TORCH_ARG(int64_t, num_features);
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(double, momentum) = 0.1;
};

class SyncBatchNorm1dImpl : public torch::nn::Module {
 public:
  // comm may be null (single process); it is not owned and must outlive the module's use.
  explicit SyncBatchNorm1dImpl(const SyncBatchNormOptions& opts, comm::Communicator* comm = nullptr);
  // x: [B, C] -> [B, C]. Training: global-batch statistics (needs >= 2 samples in the global batch);
  // eval: running statistics. Half/bf16 inputs are normalized in fp32 and returned in their dtype.
  at::Tensor forward(const at::Tensor& x);
  void set_communicator(comm::Communicator* comm) { comm_ = comm; }
  comm::Communicator* communicator() const { return comm_; }
  void reset_parameters();  // weight 1, bias 0, running stats reset
  void reset_running_stats();
  const SyncBatchNormOptions& options() const { return opts_; }

  at::Tensor weight, bias;                                    // [C]
  at::Tensor running_mean, running_var, num_batches_tracked;  // [C], [C], scalar int64

 private:
  SyncBatchNormOptions opts_;
  comm::Communicator* comm_ = nullptr;
};
TORCH_MODULE(SyncBatchNorm1d);

}  // namespace vicreg::model
