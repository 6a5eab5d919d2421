// Vision Transformer exactly as timm's VisionTransformer (vit_{tiny,small,base}_patch16_224 at
// any img_size divisible by the patch): parameter names = timm state_dict keys
// (cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, norm.*),
// timm init, LayerNorm eps 1e-6, exact GELU, class token first, no head (num_classes=0).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "common/config.h"

namespace vicreg::model {

struct VitOptions {
  int image_size = 96;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 384;
  int depth = 12;
  int num_heads = 6;
  double mlp_ratio = 4.0;
  double drop_path_rate = 0.0;
  static VitOptions FromConfig(const config::ModelConfig& m);   // presets resolved
};

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const VitOptions& opts);
  // x: [B, C, S, S] float -> [B, D] the final-normed CLS token (the feature).
  at::Tensor forward(const at::Tensor& x);
  // x: [B, C, S, S] -> [B, 1 + (S/P)^2, D] all normed tokens.
  at::Tensor forward_tokens(const at::Tensor& x);
  const VitOptions& options() const { return opts_; }
  void reset_parameters();           // timm init (trunc_normal .02, cls 1e-6, zeros/ones)

 private:
  VitOptions opts_;
  // submodules registered under timm's names
  struct Parts;
  std::shared_ptr<Parts> parts_;
};
TORCH_MODULE(VisionTransformer);

}  // namespace vicreg::model
