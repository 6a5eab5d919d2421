#include "worker/model/encoder_io.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"

namespace vicreg::model {
namespace {

std::string ShapeStr(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

constexpr size_t kMaxListed = 8;

void ThrowProblems(const std::string& source, const std::vector<std::string>& problems) {
  std::ostringstream os;
  os << source << ": encoder weights do not match the model (" << problems.size()
     << (problems.size() == 1 ? " problem" : " problems") << "):";
  for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) os << "\n  " << problems[i];
  if (problems.size() > kMaxListed) os << "\n  ... and " << problems.size() - kMaxListed << " more";
  throw UserError(os.str());
}

// Every parameter and buffer of the module by its state_dict key.
std::vector<std::pair<std::string, at::Tensor>> ModuleState(VisionTransformer& vit) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : vit->named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : vit->named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

int GridOf(int64_t tokens) {
  // tokens = 1 + g*g -> g, or -1 when not a square grid plus a class token
  const int64_t g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens - 1))));
  return g * g + 1 == tokens ? static_cast<int>(g) : -1;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> TimmEncoderKeys(const VitOptions& opts) {
  const int64_t D = opts.embed_dim, H = opts.mlp_hidden(), P = opts.patch_size, C = opts.in_chans;
  std::vector<std::pair<std::string, std::vector<int64_t>>> k = {
      {"cls_token", {1, 1, D}},
      {"pos_embed", {1, 1 + opts.num_patches(), D}},
      {"patch_embed.proj.weight", {D, C, P, P}},
      {"patch_embed.proj.bias", {D}},
  };
  for (int i = 0; i < opts.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    k.push_back({b + "norm1.weight", {D}});
    k.push_back({b + "norm1.bias", {D}});
    k.push_back({b + "attn.qkv.weight", {3 * D, D}});
    k.push_back({b + "attn.qkv.bias", {3 * D}});
    k.push_back({b + "attn.proj.weight", {D, D}});
    k.push_back({b + "attn.proj.bias", {D}});
    k.push_back({b + "norm2.weight", {D}});
    k.push_back({b + "norm2.bias", {D}});
    k.push_back({b + "mlp.fc1.weight", {H, D}});
    k.push_back({b + "mlp.fc1.bias", {H}});
    k.push_back({b + "mlp.fc2.weight", {D, H}});
    k.push_back({b + "mlp.fc2.bias", {D}});
  }
  k.push_back({"norm.weight", {D}});
  k.push_back({"norm.bias", {D}});
  return k;
}

NamedTensors EncoderStateFromModelState(const NamedTensors& model_state, const std::string& source) {
  static const std::string kPrefix = "encoder.";
  NamedTensors out;
  for (const auto& [key, t] : model_state)
    if (key.compare(0, kPrefix.size(), kPrefix) == 0) out.emplace_back(key.substr(kPrefix.size()), t);
  if (out.empty()) {
    std::string first = model_state.empty() ? "(empty state dict)" : "first key '" + model_state.front().first + "'";
    throw UserError(source + ": the checkpoint's model state has no 'encoder.*' entries (" + first +
                    "); is it a vicreg checkpoint?");
  }
  return out;
}

at::Tensor ResamplePosEmbed(const at::Tensor& pos_embed, int new_grid) {
  // pos_embed: [1, 1 + g*g, D] -> [1, 1 + new_grid^2, D]
  VICREG_CHECK(pos_embed.dim() == 3 && pos_embed.size(0) == 1, "pos_embed must be [1, T, D]");
  const int g = GridOf(pos_embed.size(1));
  VICREG_CHECK(g > 0, "pos_embed tokens must be 1 + g*g, got " + std::to_string(pos_embed.size(1)));
  if (g == new_grid) return pos_embed;
  const int64_t D = pos_embed.size(2);
  auto orig = pos_embed.scalar_type();
  auto cls = pos_embed.narrow(1, 0, 1);                                                                  // [1, 1, D]
  auto grid = pos_embed.narrow(1, 1, g * g).to(at::kFloat).reshape({1, g, g, D}).permute({0, 3, 1, 2});  // [1, D, g, g]
  auto resized =
      at::upsample_bicubic2d(grid.contiguous(), {new_grid, new_grid}, /*align_corners=*/false);  // [1, D, n, n]
  auto flat = resized.permute({0, 2, 3, 1}).reshape({1, new_grid * new_grid, D}).to(orig);       // [1, n*n, D]
  return at::cat({cls, flat}, 1);
}

void LoadEncoderState(VisionTransformer& vit, const NamedTensors& state, const std::string& source,
                      bool resample_pos_embed) {
  auto dst = ModuleState(vit);
  std::unordered_map<std::string, const at::Tensor*> src;
  std::vector<std::string> problems;
  for (const auto& [key, t] : state) {
    if (!src.emplace(key, &t).second) problems.push_back("duplicate key '" + key + "'");
  }
  std::unordered_set<std::string> known;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  for (auto& [key, d] : dst) {
    known.insert(key);
    auto it = src.find(key);
    if (it == src.end()) {
      problems.push_back("missing key '" + key + "' (expected shape " + ShapeStr(d.sizes()) + ")");
      continue;
    }
    at::Tensor s = *it->second;
    if (!s.is_floating_point()) {
      problems.push_back("key '" + key + "' has a non-float dtype " + std::string(c10::toString(s.scalar_type())));
      continue;
    }
    if (key == "pos_embed" && resample_pos_embed && s.dim() == 3 && d.dim() == 3 && s.size(0) == 1 &&
        s.size(2) == d.size(2) && GridOf(s.size(1)) > 0 && GridOf(d.size(1)) > 0 && s.size(1) != d.size(1)) {
      s = ResamplePosEmbed(s, GridOf(d.size(1)));
    }
    if (s.sizes() != d.sizes()) {
      problems.push_back("key '" + key + "' has shape " + ShapeStr(s.sizes()) + ", the model expects " +
                         ShapeStr(d.sizes()));
      continue;
    }
    copies.emplace_back(d, s);
  }
  for (const auto& [key, t] : state) {
    (void)t;
    if (!known.count(key)) problems.push_back("unexpected key '" + key + "'");
  }
  if (!problems.empty()) ThrowProblems(source, problems);
  at::NoGradGuard no_grad;
  for (auto& [d, s] : copies) d.copy_(s);
}

void LoadEncoderSafetensors(VisionTransformer& vit, const std::string& path, bool resample_pos_embed) {
  auto file = ReadTensorFile(path);
  LoadEncoderState(vit, file.tensors, path, resample_pos_embed);
}

int64_t ExportEncoderSafetensors(const NamedTensors& state, const VitOptions& geometry, const std::string& path,
                                 const EncoderExportOptions& opts) {
  const auto expected = TimmEncoderKeys(geometry);
  std::unordered_map<std::string, at::Tensor> by_key;
  for (const auto& [k, t] : state) by_key[k] = t;
  std::vector<std::string> problems;
  NamedTensors out;
  std::unordered_set<std::string> known;
  for (const auto& [key, shape] : expected) {
    known.insert(key);
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      problems.push_back("missing key '" + key + "' (expected shape " + ShapeStr(shape) + ")");
    } else if (it->second.sizes() != at::IntArrayRef(shape)) {
      problems.push_back("key '" + key + "' has shape " + ShapeStr(it->second.sizes()) + ", timm expects " +
                         ShapeStr(shape));
    } else if (!it->second.is_floating_point()) {
      problems.push_back("key '" + key + "' is not a float tensor");
    } else {
      out.emplace_back(key, it->second.detach().to(at::kCPU, at::kFloat).contiguous());
    }
  }
  for (const auto& [k, t] : state) {
    (void)t;
    if (!known.count(k)) problems.push_back("unexpected key '" + k + "'");
  }
  if (!problems.empty()) ThrowProblems(path, problems);
  std::map<std::string, std::string> meta = opts.extra_metadata;
  auto num = [](double v) {
    std::ostringstream os;
    os << v;
    return os.str();
  };
  meta["format"] = "pt";
  meta["architecture"] = opts.architecture;
  meta["img_size"] = std::to_string(geometry.image_size);
  meta["patch_size"] = std::to_string(geometry.patch_size);
  meta["in_chans"] = std::to_string(geometry.in_chans);
  meta["embed_dim"] = std::to_string(geometry.embed_dim);
  meta["depth"] = std::to_string(geometry.depth);
  meta["num_heads"] = std::to_string(geometry.num_heads);
  meta["mlp_ratio"] = num(geometry.mlp_ratio);
  meta["num_classes"] = "0";
  meta["global_pool"] = "token";
  WriteTensorFile(path, out, meta);
  return static_cast<int64_t>(out.size());
}

}  // namespace vicreg::model
