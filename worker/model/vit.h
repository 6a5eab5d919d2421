// Vision Transformer exactly as timm's VisionTransformer (vit_{tiny,small,base}_patch16_224 at
// any img_size divisible by the patch): parameter names = timm state_dict keys
// (cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, norm.*),
// timm init, LayerNorm eps 1e-6, exact GELU, class token first, no head (num_classes=0).
//
// Architecture (timm, global_pool='token', class_token=True, no_embed_class=False, pre_norm=False):
//   tokens = [cls_token ; PatchEmbed(x)] + pos_embed
//   for each block: x = x + DropPath(Attn(LN1(x)));  x = x + DropPath(Mlp(LN2(x)))
//   feature = LN(x)[:, 0]
// Init (timm init_weights mode ''): pos_embed trunc_normal(std .02, cut at +-2 absolute),
// cls_token normal(std 1e-6), every Linear weight trunc_normal(std .02) and bias 0, LayerNorm 1/0,
// patch_embed.proj keeps PyTorch's default Conv2d init (kaiming_uniform a=sqrt(5), bias U(+-1/sqrt(fan_in))).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

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
  double drop_path_rate = 0.0;  // stochastic depth, linearly increasing over blocks (timm dpr)

  // Presets: vit_tiny(_patch16_224) 16/192/12/3, vit_small(_patch16_224) 16/384/12/6,
  // vit_base(_patch16_224) 16/768/12/12; vit_custom / custom takes the explicit fields of m.
  // Throws UserError naming model.<field> for an unknown backbone or inconsistent geometry.
  static VitOptions FromConfig(const config::ModelConfig& m);
  // Same resolution from a name (long or short form) + image size; the explicit sizes of `custom`
  // are used only for vit_custom / custom.
  static VitOptions FromName(const std::string& backbone_name, int image_size, const VitOptions& custom);
  static VitOptions FromName(const std::string& backbone_name, int image_size);
  // Throws UserError (field names as in the model config) unless the geometry is valid.
  void Validate() const;

  int num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  int head_dim() const { return embed_dim / num_heads; }
  int mlp_hidden() const { return static_cast<int>(embed_dim * mlp_ratio); }
};

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const VitOptions& opts);
  // x: [B, C, S, S] float -> [B, D] the final-normed CLS token (the feature).
  at::Tensor forward(const at::Tensor& x);
  // x: [B, C, S, S] -> [B, 1 + (S/P)^2, D] all normed tokens.
  at::Tensor forward_tokens(const at::Tensor& x);
  const VitOptions& options() const { return opts_; }
  void reset_parameters();  // timm init (trunc_normal .02, cls 1e-6, zeros/ones)
  int64_t num_parameters() const;

  struct Parts;  // submodules registered under timm's names (vit.cc)

 private:
  // x: [B, C, S, S] -> [B, 1+Np, D] patch tokens with the class token and pos_embed (block input).
  at::Tensor embed(const at::Tensor& x);
  VitOptions opts_;
  std::shared_ptr<Parts> parts_;
};
TORCH_MODULE(VisionTransformer);

}  // namespace vicreg::model
