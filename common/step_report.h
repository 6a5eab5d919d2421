// What the trainer reports at each logged step: consumed by metrics.jsonl (run_dir),
// the Prometheus layer (common/metrics.h) and the collapse warnings. Plain data, no torch.
#pragma once

#include <cstdint>
#include <optional>

namespace vicreg {

struct StepReport {
  int64_t step = 0;       // global optimizer steps completed (1-based after the first step)
  int64_t epoch = 0;      // 1-based epoch the step belongs to
  double loss = 0;        // total = lambda*inv + mu*var + nu*cov
  double invariance = 0;  // unweighted components
  double variance = 0;
  double covariance = 0;
  bool loss_finite = true;  // false: step was skipped
  // Collapse diagnostics on the global batch (present when computed this step).
  std::optional<double> std_min, std_mean, std_max;  // per-dim std of z (projector output)
  std::optional<double> pairwise_sim;                // mean cosine sim between different samples
  std::optional<double> cov_offdiag_sq;              // mean squared off-diagonal covariance
  std::optional<double> collapsed_dims;              // fraction of dims with std < 0.01
  std::optional<double> rankme;                      // effective rank of encoder features
  double lr = 0;
  double grad_norm = 0;          // global grad norm before clipping
  double images_per_s = 0;       // global (all ranks), over the last log window
  double step_seconds = 0;       // wall time of this step on this rank
  double data_wait_seconds = 0;  // time this step waited for the loader
  int64_t samples = 0;           // global samples consumed by this step (ranks * batch)
  // Optional online monitoring (eval.online_*).
  std::optional<double> online_linear_top1;
  std::optional<double> online_knn_top1;
  // CUDA ranks only: LibTorch's caching allocator on THIS rank's device (not all-reduced), in bytes:
  // held by tensors now, their peak since the worker started, reserved from the driver.
  std::optional<double> gpu_memory_allocated, gpu_memory_max_allocated, gpu_memory_reserved;
};

}  // namespace vicreg
