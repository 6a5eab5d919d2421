// Weight-decay parameter groups (docs/ARCHITECTURE.md "Model and objective", Optimization): biases, every normalization
// parameter (LayerNorm, BatchNorm), pos_embed and cls_token get no weight decay and no LARS
// adaptation; everything else (Linear / patch-embedding weights) does. The rule is facebookresearch's
// exclude_bias_and_norm (ndim == 1) plus the two ViT embeddings, which timm's no_weight_decay() names.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace vicreg::model {

struct ParamGroups {
  std::vector<at::Tensor> decay;  // weight decay + LARS adaptation
  std::vector<std::string> decay_names;
  std::vector<at::Tensor> no_decay;  // neither
  std::vector<std::string> no_decay_names;
};

// name: a full parameter name ("encoder.blocks.0.attn.qkv.bias"), p: the parameter.
bool ExcludedFromWeightDecay(const std::string& name, const at::Tensor& p);

// Splits module.named_parameters() (recursively, in registration order; frozen parameters with
// requires_grad == false are left out) by ExcludedFromWeightDecay.
ParamGroups SplitParamGroups(const torch::nn::Module& module);

}  // namespace vicreg::model
