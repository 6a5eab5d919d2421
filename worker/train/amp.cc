#include "worker/train/amp.h"

#include <ATen/ATen.h>

#include "common/errors.h"
#define VICREG_COMPAT_AUTOCAST
#include "worker/torch_compat.h"

namespace vicreg::train {

using compat::CudaAutocastDtype;
using compat::CudaAutocastEnabled;
using compat::SetCudaAutocast;
using compat::SetCudaAutocastDtype;

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  throw UserError("precision: must be fp32, bf16 or fp16, got '" + name + "'");
}

AutocastScope::AutocastScope(Precision precision, bool cuda) {
  if (!cuda || precision == Precision::kFp32) return;
  prev_enabled_ = CudaAutocastEnabled();
  prev_dtype_ = CudaAutocastDtype();
  SetCudaAutocastDtype(precision == Precision::kBf16 ? at::kBFloat16 : at::kHalf);
  SetCudaAutocast(true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetCudaAutocast(prev_enabled_);
  SetCudaAutocastDtype(prev_dtype_);
}

LossScaler::LossScaler(bool enabled) { state_.enabled = enabled; }

at::Tensor LossScaler::Scale(const at::Tensor& loss) const { return state_.enabled ? loss * state_.scale : loss; }

void LossScaler::Unscale(const std::vector<at::Tensor>& params) const {
  if (!state_.enabled) return;
  const double inv = 1.0 / state_.scale;
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    auto g = p.grad();
    if (g.defined()) g.mul_(inv);
  }
}

void LossScaler::Update(bool found_inf) {
  if (!state_.enabled) return;
  if (found_inf) {
    state_.scale *= kBackoff;
    state_.growth_tracker = 0;
    if (state_.scale < 1e-30)
      throw RuntimeFailure("fp16 loss scale underflowed (gradients are non-finite at every scale); use bf16 or fp32");
  } else if (++state_.growth_tracker >= kInterval) {
    state_.scale *= kGrowth;
    state_.growth_tracker = 0;
  }
}

void LossScaler::Load(const ScalerState& s) {
  const bool enabled = state_.enabled;
  state_ = s;
  state_.enabled = enabled;  // the current precision decides; a saved scale is reused when fp16 continues
}

}  // namespace vicreg::train
