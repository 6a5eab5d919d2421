// LARS with facebookresearch/vicreg semantics (their `LARS` class in main_vicreg.py):
//   dp = grad
//   if not exclude:  dp += weight_decay * p
//                    q = (|p| > 0 and |dp| > 0) ? eta * |p| / |dp| : 1;   dp *= q      (trust ratio)
//   mu = momentum * mu + dp        (mu starts at 0)
//   p -= lr * mu
// `exclude` is per parameter group (biases, norms, pos_embed, cls_token: no decay, no adaptation).
#pragma once

#include <torch/arg.h>
#include <torch/optim/optimizer.h>

#include <vector>

namespace vicreg::train {

struct LarsOptions : public torch::optim::OptimizerCloneableOptions<LarsOptions> {
  LarsOptions(double lr = 0.0) : lr_(lr) {}  // NOLINT: implicit like torch::optim options
  TORCH_ARG(double, lr) = 0.0;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, eta) = 0.001;
  TORCH_ARG(bool, exclude) = false;  // true: no weight decay and no trust-ratio adaptation

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

struct LarsParamState : public torch::optim::OptimizerCloneableParamState<LarsParamState> {
  TORCH_ARG(at::Tensor, mu);  // momentum buffer, like p

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class Lars : public torch::optim::Optimizer {
 public:
  explicit Lars(std::vector<torch::optim::OptimizerParamGroup> param_groups, LarsOptions defaults = {});
  at::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace vicreg::train
