#include "worker/model/param_groups.h"

#include <torch/nn/module.h>

namespace vicreg::model {

namespace {
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool ExcludedFromWeightDecay(const std::string& name, const at::Tensor& p) {
  if (p.dim() <= 1) return true;  // biases, LayerNorm / BatchNorm weight and bias
  return name == "pos_embed" || name == "cls_token" || EndsWith(name, ".pos_embed") || EndsWith(name, ".cls_token");
}

ParamGroups SplitParamGroups(const torch::nn::Module& module) {
  ParamGroups g;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (ExcludedFromWeightDecay(item.key(), item.value())) {
      g.no_decay.push_back(item.value());
      g.no_decay_names.push_back(item.key());
    } else {
      g.decay.push_back(item.value());
      g.decay_names.push_back(item.key());
    }
  }
  return g;
}

}  // namespace vicreg::model
