#include "worker/train/checkpoint_state.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <torch/nn/module.h>

#include <map>
#include <mutex>

#include "common/errors.h"
#define VICREG_COMPAT_DEVICES
#include "worker/torch_compat.h"

namespace vicreg::train {
namespace {

std::string ShapeStr(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> ModelState(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& kv : model.named_parameters(/*recurse=*/true)) out.emplace_back(kv.key(), kv.value());
  for (const auto& kv : model.named_buffers(/*recurse=*/true)) out.emplace_back(kv.key(), kv.value());
  return out;
}

void RestoreModelState(torch::nn::Module& model, const std::vector<std::pair<std::string, at::Tensor>>& saved_list,
                       const std::string& source) {
  std::map<std::string, at::Tensor> have;
  for (auto& [name, t] : ModelState(model)) have.emplace(name, t);
  std::map<std::string, at::Tensor> saved(saved_list.begin(), saved_list.end());
  for (const auto& [name, t] : have)
    if (!saved.count(name))
      throw UserError("checkpoint " + source + ": model key '" + name +
                      "' is missing (the checkpoint was written for a different model config)");
  for (const auto& [name, t] : saved) {
    auto it = have.find(name);
    if (it == have.end())
      throw UserError("checkpoint " + source + ": model key '" + name + "' does not exist in this model " +
                      "(the checkpoint was written for a different model config)");
    if (!it->second.sizes().equals(t.sizes()))
      throw UserError("checkpoint " + source + ": model key '" + name + "' has shape " + ShapeStr(t) +
                      " but this model's is " + ShapeStr(it->second) + " (model config differs)");
  }
  at::NoGradGuard no_grad;
  for (auto& [name, t] : have) t.copy_(saved.at(name).to(t.device(), t.scalar_type()));
}

void CaptureRng(bool cuda, CheckpointPayload* p) {
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    p->rng_cpu = gen.get_state();
  }
  p->rng_cuda.clear();
  if (!cuda) return;
  for (int64_t i = 0; i < compat::CudaDeviceCount(); ++i) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    p->rng_cuda.push_back(gen.get_state());
  }
}

void RestoreRng(const CheckpointPayload& p, bool cuda) {
  if (p.rng_cpu.defined() && p.rng_cpu.numel() > 0) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(p.rng_cpu);
  }
  if (!cuda) return;
  for (size_t i = 0; i < p.rng_cuda.size() && static_cast<int64_t>(i) < compat::CudaDeviceCount(); ++i) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(p.rng_cuda[i]);
  }
}

}  // namespace vicreg::train
