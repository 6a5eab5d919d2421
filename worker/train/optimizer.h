// Optimizer construction and exact state save/restore (docs/ARCHITECTURE.md "Model and objective", Optimization).
//
//   auto opt = BuildOptimizer(model->param_groups(), OptimizerOptions::FromConfig(cfg.train));
//   SetLearningRate(*opt, schedule.At(step)); opt->step();
//   c10::IValue s = SaveState(*opt);  ...  LoadState(*opt, s, "epoch_0003.pt");   // bit-exact resume
//
// Two parameter groups, always in this order: 0 = decay (weight decay, LARS trust ratio),
// 1 = no_decay (biases, norms, pos_embed, cls_token: weight_decay 0 and no LARS adaptation).
// adamw: a torch::optim::AdamW (decoupled decay, betas from the config, eps 1e-8; same update as
//        torch.optim.AdamW) whose step fuses the update into one pass for CPU fp32 parameters;
//        state and serialization are AdamW's. lars: vicreg::train::Lars (lars.h), facebookresearch semantics.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <torch/optim/optimizer.h>  // callers step() / zero_grad() what BuildOptimizer returns

#include <memory>
#include <string>

#include "common/config.h"
#include "worker/model/param_groups.h"

namespace vicreg::train {

enum class OptimizerType { kAdamW, kLars };  // train.optimizer: adamw | lars

// AdamW update kernel: kAuto = one fused pass for CPU fp32 params, multi-tensor (_foreach) ops for CUDA
// params (a few kernel launches per group instead of ~9 per parameter), LibTorch's otherwise; kForeach /
// kReference force one of those (tests compare them). State and results are the same.
enum class AdamWImpl { kAuto, kForeach, kReference };

struct OptimizerOptions {
  OptimizerType type = OptimizerType::kAdamW;
  double lr = 1e-3;  // initial lr (the schedule overwrites it every step)
  double weight_decay = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double momentum = 0.9, eta = 0.001;             // lars
  AdamWImpl adamw_impl = AdamWImpl::kAuto;
  // From a validated config (config::Validate checks every value; this only maps them).
  static OptimizerOptions FromConfig(const config::TrainConfig& t);
};

std::unique_ptr<torch::optim::Optimizer> BuildOptimizer(const model::ParamGroups& groups, const OptimizerOptions& opts);

// "adamw" | "lars" (from the optimizer's dynamic type).
// torch.optim's closure protocol, shared by this folder's step() implementations: evaluates the loss
// closure (if any) with autograd enabled; the caller holds its NoGradGuard. Undefined without a closure.
at::Tensor EvaluateClosure(const torch::optim::Optimizer::LossClosure& closure);

std::string OptimizerKind(const torch::optim::Optimizer& opt);
void SetLearningRate(torch::optim::Optimizer& opt, double lr);
double GetLearningRate(const torch::optim::Optimizer& opt);  // group 0's lr

// The full optimizer state as a flat dict (str -> IValue) that torch::pickle_save stores and
// Python's torch.load reads:
//   "kind" str, "num_groups" int, "group<g>.lr" float, "group<g>.num_params" int,
//   adamw: "group<g>.param<i>.step" int, ".exp_avg" / ".exp_avg_sq" tensor (".max_exp_avg_sq" with amsgrad)
//   lars:  "group<g>.param<i>.mu" tensor
// (params that have not been stepped yet have no entries). Tensors are copies (clone()).
c10::IValue SaveState(const torch::optim::Optimizer& opt);
// Restores what SaveState wrote into an optimizer built the same way (same kind, groups, shapes).
// Throws UserError naming `source` and the offending key (missing, wrong type, wrong shape, other kind).
void LoadState(torch::optim::Optimizer& opt, const c10::IValue& state, const std::string& source);

}  // namespace vicreg::train
