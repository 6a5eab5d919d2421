#include "worker/train/lars.h"

#include "worker/train/optimizer.h"
#define VICREG_COMPAT_OPTIM
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <string>

#include "worker/torch_compat.h"

namespace vicreg::train {

void LarsOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eta);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exclude);
}

void LarsOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eta);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, exclude);
}

void LarsParamState::serialize(torch::serialize::OutputArchive& archive) const { _TORCH_OPTIM_SERIALIZE_TORCH_ARG(mu); }

void LarsParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(at::Tensor, mu);
}

Lars::Lars(std::vector<torch::optim::OptimizerParamGroup> param_groups, LarsOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<LarsOptions>(defaults)) {
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.weight_decay() >= 0, "Invalid weight_decay value: ", defaults.weight_decay());
  TORCH_CHECK(defaults.momentum() >= 0, "Invalid momentum value: ", defaults.momentum());
  TORCH_CHECK(defaults.eta() > 0, "Invalid eta value: ", defaults.eta());
}

at::Tensor Lars::step(LossClosure closure) {
  c10::NoGradGuard no_grad;
  const at::Tensor loss = EvaluateClosure(closure);
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const LarsOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      at::Tensor dp = p.grad();
      if (!o.exclude()) {
        dp = dp.add(p, o.weight_decay());
        auto param_norm = at::linalg_vector_norm(p, 2);    // []
        auto update_norm = at::linalg_vector_norm(dp, 2);  // []
        auto one = at::ones_like(param_norm);
        auto q = at::where(param_norm > 0.0, at::where(update_norm > 0, o.eta() * param_norm / update_norm, one), one);
        dp = dp.mul(q);
      }
      const auto key = compat::OptimKey(p);
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<LarsParamState>();
        st->mu(at::zeros_like(p, at::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& mu = static_cast<LarsParamState&>(*it->second).mu();
      mu.mul_(o.momentum()).add_(dp);
      p.add_(mu, -o.lr());
    }
  }
  return loss;
}

void Lars::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<LarsParamState, LarsOptions>(archive, *this);
}

void Lars::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<LarsParamState, LarsOptions>(archive, *this);
}

}  // namespace vicreg::train
