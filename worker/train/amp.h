// Mixed precision for the forward pass on CUDA (docs/ARCHITECTURE.md "GPU path": fp32 on CPU; bf16 autocast, or fp16
// autocast with a loss scaler, on CUDA; the loss is always computed in fp32).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "worker/train/checkpoint.h"

namespace vicreg::train {

// train.precision: the dtype of the CUDA forward pass (the loss and the optimizer always run in fp32).
enum class Precision { kFp32, kBf16, kFp16 };
// "fp32" | "bf16" | "fp16" (train.precision, validated by config::Validate; vicreg_bench's --precision).
// Throws UserError for any other name.
Precision ParsePrecision(const std::string& name);

// RAII: enables CUDA autocast to `precision` (bf16 | fp16) for its lifetime; fp32 (or a CPU device) does
// nothing. Restores the previous state and clears the cast cache on exit.
class AutocastScope {
 public:
  AutocastScope(Precision precision, bool cuda);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

// Dynamic loss scaling as torch.cuda.amp.GradScaler (init 2^16, growth 2 every 2000 good steps, backoff 0.5).
// Disabled (identity) unless precision is fp16 on CUDA.
class LossScaler {
 public:
  explicit LossScaler(bool enabled);
  bool enabled() const { return state_.enabled; }
  double scale() const { return state_.enabled ? state_.scale : 1.0; }
  // loss: scalar fp32 -> loss * scale.
  at::Tensor Scale(const at::Tensor& loss) const;
  // Divides every defined gradient by the scale, in place (no-op when disabled).
  void Unscale(const std::vector<at::Tensor>& params) const;
  // After each step: found_inf (non-finite gradients) halves the scale, otherwise it grows every 2000 steps.
  void Update(bool found_inf);
  ScalerState state() const { return state_; }
  void Load(const ScalerState& s);

 private:
  ScalerState state_;
  static constexpr double kGrowth = 2.0, kBackoff = 0.5;
  static constexpr int64_t kInterval = 2000;
};

}  // namespace vicreg::train
