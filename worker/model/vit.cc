#include "worker/model/vit.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "worker/model/attention.h"
#include "worker/model/init.h"
#include "worker/model/linear.h"

namespace vicreg::model {

// ---- options ---------------------------------------------------------------------------

namespace {
bool IsName(const std::string& s, const char* short_name, const char* long_name) {
  return s == short_name || s == long_name;
}
}  // namespace

VitOptions VitOptions::FromName(const std::string& name, int image_size, const VitOptions& custom) {
  VitOptions o = custom;
  o.image_size = image_size;
  if (IsName(name, "vit_tiny", "vit_tiny_patch16_224")) {
    o.patch_size = 16, o.embed_dim = 192, o.depth = 12, o.num_heads = 3, o.mlp_ratio = 4.0;
  } else if (IsName(name, "vit_small", "vit_small_patch16_224")) {
    o.patch_size = 16, o.embed_dim = 384, o.depth = 12, o.num_heads = 6, o.mlp_ratio = 4.0;
  } else if (IsName(name, "vit_base", "vit_base_patch16_224")) {
    o.patch_size = 16, o.embed_dim = 768, o.depth = 12, o.num_heads = 12, o.mlp_ratio = 4.0;
  } else if (name != "vit_custom" && name != "custom") {
    throw UserError("model.backbone_name: unknown backbone '" + name +
                    "'; valid: vit_tiny_patch16_224, vit_small_patch16_224, vit_base_patch16_224, vit_custom "
                    "(short forms vit_tiny, vit_small, vit_base, custom)");
  }
  o.Validate();
  return o;
}

VitOptions VitOptions::FromName(const std::string& name, int image_size) {
  return FromName(name, image_size, VitOptions{});
}

VitOptions VitOptions::FromConfig(const config::ModelConfig& m) {
  // Presets are expanded by config::ResolveModel (the one table the config loader, the worker and
  // vicreg_eval share); FromName then rejects unknown names and checks the geometry.
  const config::ModelConfig r = config::ResolveModel(m);
  VitOptions o;
  o.patch_size = r.patch_size;
  o.in_chans = r.in_chans;
  o.embed_dim = r.embed_dim;
  o.depth = r.depth;
  o.num_heads = r.num_heads;
  o.mlp_ratio = r.mlp_ratio;
  o.drop_path_rate = r.drop_path_rate;
  auto checked = FromName(m.backbone_name, r.image_size, o);  // same sizes for the known presets
  checked.mlp_ratio = r.mlp_ratio;
  checked.Validate();
  return checked;
}

void VitOptions::Validate() const {
  std::vector<std::string> errs;
  auto positive = [&](const char* field, double v) {
    if (!(v > 0)) {
      std::ostringstream os;
      os << "model." << field << ": must be > 0, got " << v;
      errs.push_back(os.str());
    }
  };
  positive("image_size", image_size);
  positive("patch_size", patch_size);
  positive("in_chans", in_chans);
  positive("embed_dim", embed_dim);
  positive("depth", depth);
  positive("num_heads", num_heads);
  positive("mlp_ratio", mlp_ratio);
  if (image_size > 0 && patch_size > 0 && image_size % patch_size != 0)
    errs.push_back("model.image_size: must be divisible by model.patch_size (" + std::to_string(patch_size) +
                   "), got " + std::to_string(image_size));
  if (embed_dim > 0 && num_heads > 0 && embed_dim % num_heads != 0)
    errs.push_back("model.embed_dim: must be divisible by model.num_heads (" + std::to_string(num_heads) + "), got " +
                   std::to_string(embed_dim));
  if (embed_dim > 0 && mlp_ratio > 0 && static_cast<int>(embed_dim * mlp_ratio) < 1)
    errs.push_back("model.mlp_ratio: embed_dim * mlp_ratio must be >= 1");
  if (!(drop_path_rate >= 0.0 && drop_path_rate < 1.0)) {
    std::ostringstream os;
    os << "model.drop_path_rate: must be in [0, 1), got " << drop_path_rate;
    errs.push_back(os.str());
  }
  if (errs.empty()) return;
  std::string msg = errs[0];
  for (size_t i = 1; i < errs.size(); ++i) msg += "; " + errs[i];
  throw UserError(msg);
}

// ---- modules (registered under timm's names) ----------------------------------------------

namespace {

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int in_chans, int patch, int dim) {
    proj = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch)));
  }
  // x: [B, C, S, S] -> [B, (S/P)^2, D]. Conv2d(kernel=stride=P) computed as one GEMM on the
  // unfolded patches (same math as the convolution, patches in row-major order like timm's flatten(2)).
  at::Tensor forward(const at::Tensor& x) {
    const auto& w = proj->weight;  // [D, C, P, P]
    const int64_t B = x.size(0), C = x.size(1), S = x.size(2);
    const int64_t D = w.size(0), P = w.size(2), g = S / P;
    auto patches = x.reshape({B, C, g, P, g, P}).permute({0, 2, 4, 1, 3, 5}).reshape({B, g * g, C * P * P});
    return Linear(patches, w.view({D, C * P * P}), proj->bias);
  }
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(int dim) {
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
    proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(true)));
  }
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int dim, int hidden) {
    fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(dim, hidden).bias(true)));
    fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, dim).bias(true)));
  }
  // h: [..., D] -> [..., D]; exact (erf) GELU.
  at::Tensor forward(const at::Tensor& h) {
    return Linear(at::gelu(Linear(h, fc1->weight, fc1->bias)), fc2->weight, fc2->bias);
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

constexpr double kLnEps = 1e-6;

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const VitOptions& o, double drop_path)
      : dim_(o.embed_dim),
        heads_(o.num_heads),
        drop_path_(drop_path),
        scale_(1.0 / std::sqrt(static_cast<double>(o.head_dim()))) {
    auto ln = torch::nn::LayerNormOptions({o.embed_dim}).eps(kLnEps).elementwise_affine(true);
    norm1 = register_module("norm1", torch::nn::LayerNorm(ln));
    attn = register_module("attn", Attention(o.embed_dim));
    norm2 = register_module("norm2", torch::nn::LayerNorm(ln));
    mlp = register_module("mlp", Mlp(o.embed_dim, o.mlp_hidden()));
  }

  // x: [B, N, D] -> [B, N, D]; with cls_only -> [B, 1, D], the class token's output only (the
  // other tokens still act as keys/values). Used for the last block when only the CLS feature is needed.
  at::Tensor forward(const at::Tensor& x, bool cls_only) {
    const int64_t D = dim_, H = heads_;
    auto h = at::layer_norm(x, {D}, norm1->weight, norm1->bias, kLnEps);  // [B, N, D]
    const auto& wqkv = attn->qkv->weight;                                 // [3D, D]
    const auto& bqkv = attn->qkv->bias;                                   // [3D]
    AttentionInputs ai;
    ai.dim = D, ai.heads = H, ai.scale = scale_;
    if (!cls_only) {
      ai.q_src = ai.kv_src = Linear(h, wqkv, bqkv);  // [B, N, 3D] = [q | k | v]
      ai.q_off = 0, ai.k_off = D, ai.v_off = 2 * D;
    } else {
      // Only the class token's query; every token still provides keys and values.
      ai.q_src = Linear(h.narrow(1, 0, 1), wqkv.narrow(0, 0, D), bqkv.narrow(0, 0, D));  // [B, 1, D]
      ai.kv_src = Linear(h, wqkv.narrow(0, D, 2 * D), bqkv.narrow(0, D, 2 * D));         // [B, N, 2D]
      ai.q_off = 0, ai.k_off = 0, ai.v_off = D;
    }
    auto o = MultiHeadAttention(ai);                // [B, nq, D]
    auto resid = cls_only ? x.narrow(1, 0, 1) : x;  // [B, nq, D]
    auto y = resid + DropPath(Linear(o, attn->proj->weight, attn->proj->bias));
    auto h2 = at::layer_norm(y, {D}, norm2->weight, norm2->bias, kLnEps);
    return y + DropPath(mlp->forward(h2));
  }

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};

 private:
  // branch: [B, ...]; per-sample stochastic depth in training (timm DropPath, scale_by_keep).
  at::Tensor DropPath(const at::Tensor& branch) {
    if (!is_training() || drop_path_ <= 0.0) return branch;
    const double keep = 1.0 - drop_path_;
    std::vector<int64_t> shape(branch.dim(), 1);
    shape[0] = branch.size(0);
    auto mask = at::empty(shape, branch.options()).bernoulli_(keep).div_(keep);
    return branch * mask;
  }

  int64_t dim_, heads_;
  double drop_path_, scale_;
};
TORCH_MODULE(Block);

}  // namespace

struct VisionTransformerImpl::Parts {
  at::Tensor cls_token;  // [1, 1, D]
  at::Tensor pos_embed;  // [1, 1+Np, D]
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  std::vector<Block> block_list;
  torch::nn::LayerNorm norm{nullptr};
};

VisionTransformerImpl::VisionTransformerImpl(const VitOptions& opts) : opts_(opts), parts_(std::make_shared<Parts>()) {
  opts_.Validate();
  auto& p = *parts_;
  const int D = opts_.embed_dim;
  // Registration order = timm's state_dict order: own parameters, then patch_embed, blocks, norm.
  p.cls_token = register_parameter("cls_token", at::zeros({1, 1, D}));
  p.pos_embed = register_parameter("pos_embed", at::zeros({1, 1 + opts_.num_patches(), D}));
  p.patch_embed = register_module("patch_embed", PatchEmbed(opts_.in_chans, opts_.patch_size, D));
  p.blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < opts_.depth; ++i) {
    // timm: dpr = linspace(0, drop_path_rate, depth)
    const double dpr = opts_.depth > 1 ? opts_.drop_path_rate * i / (opts_.depth - 1) : opts_.drop_path_rate;
    Block b(opts_, dpr);
    p.blocks->push_back(b);
    p.block_list.push_back(b);
  }
  p.norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(kLnEps)));
  reset_parameters();
}

void VisionTransformerImpl::reset_parameters() {
  c10::NoGradGuard no_grad;
  auto& p = *parts_;
  TruncNormal_(p.pos_embed, 0.0, 0.02);
  p.cls_token.normal_(0.0, 1e-6);
  p.patch_embed->proj->reset_parameters();  // PyTorch default Conv2d init (timm keeps it)
  for (auto& b : p.block_list) {
    for (torch::nn::Linear lin : {b->attn->qkv, b->attn->proj, b->mlp->fc1, b->mlp->fc2}) {
      TruncNormal_(lin->weight, 0.0, 0.02);
      lin->bias.zero_();
    }
    for (torch::nn::LayerNorm ln : {b->norm1, b->norm2}) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
  p.norm->weight.fill_(1.0);
  p.norm->bias.zero_();
}

int64_t VisionTransformerImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

at::Tensor VisionTransformerImpl::embed(const at::Tensor& x) {
  VICREG_CHECK(
      x.dim() == 4 && x.size(1) == opts_.in_chans && x.size(2) == opts_.image_size && x.size(3) == opts_.image_size,
      "VisionTransformer expects [B, " + std::to_string(opts_.in_chans) + ", " + std::to_string(opts_.image_size) +
          ", " + std::to_string(opts_.image_size) + "], got " + c10::str(x.sizes()));
  auto& p = *parts_;
  const int64_t B = x.size(0), D = opts_.embed_dim;
  auto tokens = p.patch_embed->forward(x);                                     // [B, Np, D]
  tokens = at::cat({p.cls_token.expand({B, 1, D}), tokens}, 1) + p.pos_embed;  // [B, 1+Np, D]
  return tokens;
}

at::Tensor VisionTransformerImpl::forward_tokens(const at::Tensor& x) {
  auto t = embed(x);  // [B, 1+Np, D]
  for (auto& b : parts_->block_list) t = b->forward(t, /*cls_only=*/false);
  return at::layer_norm(t, {opts_.embed_dim}, parts_->norm->weight, parts_->norm->bias, kLnEps);
}

at::Tensor VisionTransformerImpl::forward(const at::Tensor& x) {
  auto t = embed(x);  // [B, 1+Np, D]
  auto& blocks = parts_->block_list;
  for (size_t i = 0; i < blocks.size(); ++i) t = blocks[i]->forward(t, /*cls_only=*/i + 1 == blocks.size());
  auto cls = t.select(1, 0);  // [B, D]
  return at::layer_norm(cls, {opts_.embed_dim}, parts_->norm->weight, parts_->norm->bias, kLnEps);
}

}  // namespace vicreg::model
