// Encoder export/import in timm's format (docs/ARCHITECTURE.md "Evaluation", "Export/import").
//
// An exported encoder is a safetensors file holding exactly timm's VisionTransformer state_dict
// (num_classes=0): cls_token, pos_embed, patch_embed.proj.{weight,bias},
// blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}, norm.{weight,bias},
// fp32, with metadata {format: pt, architecture, img_size, patch_size, embed_dim, depth,
// num_heads, mlp_ratio, in_chans, num_classes: 0, ...}. It loads strictly with
//   timm.create_model('vit_small_patch16_224', img_size=96, num_classes=0,
//                     pretrained=True, pretrained_cfg_overlay=dict(file='encoder.safetensors'))
//
// Import (model.init_from): LoadEncoderSafetensors(vit, path) copies such a file into a
// VisionTransformer, strictly: every missing or unexpected key and every shape mismatch is a
// UserError naming the key, the expected/found shape and the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "worker/model/tensor_file.h"
#include "worker/model/vit.h"

namespace vicreg::model {

// timm's state_dict keys and shapes for this geometry, in module order.
std::vector<std::pair<std::string, std::vector<int64_t>>> TimmEncoderKeys(const VitOptions& opts);

// The encoder part of a VicregModel state dict ("encoder.<timm key>" -> "<timm key>"); the
// projector and anything else are dropped. Throws UserError naming `source` if there is none.
NamedTensors EncoderStateFromModelState(const NamedTensors& model_state, const std::string& source);

// pos_embed: [1, 1 + g*g, D] -> [1, 1 + new_grid^2, D]; the class token's row is kept, the grid
// part is resized bicubically (align_corners=false), as timm's resample_abs_pos_embed.
at::Tensor ResamplePosEmbed(const at::Tensor& pos_embed, int new_grid);

// Copies `state` (timm keys) into `vit` strictly (see above). With resample_pos_embed, a
// pos_embed of another square grid is resampled instead of refused.
void LoadEncoderState(VisionTransformer& vit, const NamedTensors& state, const std::string& source,
                      bool resample_pos_embed = false);

// Reads an exported file into `vit` (strict). Throws UserError naming the file and key.
void LoadEncoderSafetensors(VisionTransformer& vit, const std::string& path, bool resample_pos_embed = false);

struct EncoderExportOptions {
  std::string architecture = "vit_small_patch16_224";  // timm model name (metadata only)
  std::map<std::string, std::string> extra_metadata;   // e.g. source checkpoint, epoch
};
// Validates `state` against the geometry (strict, as LoadEncoderState) and writes it fp32 with
// timm's key order and the metadata above. Returns the number of tensors written.
int64_t ExportEncoderSafetensors(const NamedTensors& state, const VitOptions& geometry, const std::string& path,
                                 const EncoderExportOptions& opts = {});

}  // namespace vicreg::model
