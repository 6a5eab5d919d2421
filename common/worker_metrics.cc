// WorkerMetrics: one rank's training metrics (docs/METRICS.md "Worker metrics").
// Every family and every always-present child is created here, in the constructor; the
// diagnostics gauges are created on their first finite value (a gauge that reads 0 before the
// first diagnostics step would look like a collapsed representation and page someone).
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cmath>
#include <optional>

#include "common/errors.h"
#include "common/metrics.h"

namespace vicreg::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Family<Gauge>& GaugeFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
Family<Counter>& CounterFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
Family<Histogram>& HistogramFamily(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

Labels With(Labels base, const char* key, const char* value) {
  base.emplace(key, value);
  return base;
}

// A gauge child created on its first finite value; Set() afterwards is a pointer check.
class LazyGauge {
 public:
  LazyGauge(Family<Gauge>& family, Labels labels) : family_(&family), labels_(std::move(labels)) {}
  void Set(double v) {
    if (!std::isfinite(v)) return;
    if (gauge_ == nullptr) gauge_ = &family_->Add(labels_);
    gauge_->Set(v);
  }
  void Set(const std::optional<double>& v) {
    if (v) Set(*v);
  }

 private:
  Family<Gauge>* family_;
  Labels labels_;
  Gauge* gauge_ = nullptr;
};

}  // namespace

struct WorkerMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry;  // keeps the families alive
  std::optional<LazyGauge> loss_total, loss_invariance, loss_variance, loss_covariance;
  std::optional<LazyGauge> std_min, std_mean, std_max, pairwise_sim, cov_offdiag_sq, collapsed_ratio, rankme;
  std::optional<LazyGauge> lr, grad_norm, images_per_s, online_linear, online_knn;
  std::optional<LazyGauge> gpu_allocated, gpu_max_allocated, gpu_reserved;  // CUDA ranks only
  Gauge* epoch = nullptr;
  Gauge* last_step_time = nullptr;
  Gauge* checkpoint_time = nullptr;
  Counter* steps = nullptr;
  Counter* samples = nullptr;
  Counter* nonfinite = nullptr;
  Histogram* step_duration = nullptr;
  Histogram* data_wait = nullptr;
  bool data_wait_from_steps = false;  // OnStep measures it: OnReport must not observe it again
};

WorkerMetrics::WorkerMetrics(std::shared_ptr<prometheus::Registry> registry, const std::string& job_id, int rank)
    : impl_(std::make_unique<Impl>()) {
  VICREG_CHECK(registry != nullptr, "WorkerMetrics needs a registry");
  VICREG_CHECK(rank >= 0, "rank must be >= 0, got " + std::to_string(rank));
  auto& r = *registry;
  Impl& m = *impl_;
  m.registry = std::move(registry);
  RegisterBuildInfo(r);
  const Labels base = {{"job_id", job_id.empty() ? "unknown" : job_id}, {"rank", std::to_string(rank)}};

  auto& loss = GaugeFamily(r, "vicreg_train_loss",
                           "VICReg loss of the last logged step: component=total is lambda*inv + mu*var + nu*cov; "
                           "invariance, variance, covariance are the unweighted terms");
  m.loss_total.emplace(loss, With(base, "component", "total"));
  m.loss_invariance.emplace(loss, With(base, "component", "invariance"));
  m.loss_variance.emplace(loss, With(base, "component", "variance"));
  m.loss_covariance.emplace(loss, With(base, "component", "covariance"));

  m.std_min.emplace(GaugeFamily(r, "vicreg_embedding_std_min",
                                "Smallest per-dimension std of the projector output z on the global batch "
                                "(< 0.01: collapse, < 0.1: low variance)"),
                    base);
  m.std_mean.emplace(GaugeFamily(r, "vicreg_embedding_std_mean",
                                 "Mean per-dimension std of the projector output z on the global batch"),
                     base);
  m.std_max.emplace(GaugeFamily(r, "vicreg_embedding_std_max",
                                "Largest per-dimension std of the projector output z on the global batch"),
                    base);
  m.pairwise_sim.emplace(GaugeFamily(r, "vicreg_embedding_pairwise_similarity",
                                     "Mean cosine similarity between the embeddings of different samples "
                                     "(healthy 0.1-0.5; > 0.9: feature collapse)"),
                         base);
  m.cov_offdiag_sq.emplace(GaugeFamily(r, "vicreg_covariance_offdiag_sq_mean",
                                       "Mean squared off-diagonal covariance of z on the global batch"),
                           base);
  m.collapsed_ratio.emplace(GaugeFamily(r, "vicreg_embedding_collapsed_dims_ratio",
                                        "Fraction (0-1) of the dimensions of z whose std is below 0.01"),
                            base);
  m.rankme.emplace(GaugeFamily(r, "vicreg_representation_effective_rank",
                               "Effective rank (RankMe: exp of the entropy of the normalized singular values) "
                               "of the encoder features on the global batch"),
                   base);
  m.lr.emplace(GaugeFamily(r, "vicreg_learning_rate", "Learning rate of the last logged step"), base);
  m.grad_norm.emplace(GaugeFamily(r, "vicreg_grad_norm", "Global gradient norm before clipping, last logged step"),
                      base);
  m.images_per_s.emplace(GaugeFamily(r, "vicreg_train_images_per_second",
                                     "Training throughput of the whole job (all ranks), images per second over "
                                     "the last log window"),
                         base);
  auto& online = GaugeFamily(r, "vicreg_online_top1_ratio",
                             "Online-monitoring top-1 accuracy (0-1) of a probe trained alongside the encoder");
  m.online_linear.emplace(online, With(base, "probe", "linear"));
  m.online_knn.emplace(online, With(base, "probe", "knn"));
  // Created on the first value: CPU ranks never report one, so they export none of these series.
  m.gpu_allocated.emplace(GaugeFamily(r, "vicreg_gpu_memory_allocated_bytes",
                                      "CUDA ranks: bytes held by tensors on this rank's GPU (LibTorch's caching "
                                      "allocator), at the last logged step"),
                          base);
  m.gpu_max_allocated.emplace(GaugeFamily(r, "vicreg_gpu_memory_max_allocated_bytes",
                                          "CUDA ranks: peak of vicreg_gpu_memory_allocated_bytes since the worker "
                                          "started"),
                              base);
  m.gpu_reserved.emplace(GaugeFamily(r, "vicreg_gpu_memory_reserved_bytes",
                                     "CUDA ranks: bytes the caching allocator holds from the driver on this rank's "
                                     "GPU (allocated plus cached)"),
                         base);

  const double now = NowSeconds();
  m.epoch =
      &GaugeFamily(r, "vicreg_train_epoch", "Current 1-based training epoch (0 before the first epoch)").Add(base);
  m.last_step_time = &GaugeFamily(r, "vicreg_last_step_timestamp_seconds",
                                  "Unix time of the last completed step on this rank (the worker's start time "
                                  "before the first step)")
                          .Add(base);
  m.last_step_time->Set(now);
  m.checkpoint_time = &GaugeFamily(r, "vicreg_checkpoint_last_timestamp_seconds",
                                   "Unix time the newest complete checkpoint was written (the worker's start "
                                   "time before the first one)")
                           .Add(base);
  m.checkpoint_time->Set(now);
  m.steps =
      &CounterFamily(r, "vicreg_train_steps_total", "Training steps completed by this rank since it started").Add(base);
  m.samples = &CounterFamily(r, "vicreg_train_samples_total",
                             "Samples of the global batch (all ranks) consumed by the steps of this process")
                   .Add(base);
  m.nonfinite =
      &CounterFamily(r, "vicreg_loss_nonfinite_total", "Steps skipped because the loss was NaN or infinite").Add(base);
  m.step_duration =
      &HistogramFamily(r, "vicreg_train_step_duration_seconds", "Wall time of one training step on this rank")
           .Add(base, StepDurationBuckets());
  m.data_wait =
      &HistogramFamily(r, "vicreg_data_wait_seconds", "Time a training step waited for the data loader on this rank")
           .Add(base, DataWaitBuckets());
}

WorkerMetrics::~WorkerMetrics() = default;

void WorkerMetrics::OnStep(double step_seconds, int64_t global_samples, double data_wait_seconds) {
  Impl& m = *impl_;
  m.steps->Increment();
  if (global_samples > 0) m.samples->Increment(static_cast<double>(global_samples));
  if (std::isfinite(step_seconds) && step_seconds >= 0) m.step_duration->Observe(step_seconds);
  if (std::isfinite(data_wait_seconds) && data_wait_seconds >= 0) {
    m.data_wait_from_steps = true;
    m.data_wait->Observe(data_wait_seconds);
  }
  m.last_step_time->SetToCurrentTime();
}

void WorkerMetrics::OnReport(const StepReport& report) {
  Impl& m = *impl_;
  m.loss_total->Set(report.loss);
  m.loss_invariance->Set(report.invariance);
  m.loss_variance->Set(report.variance);
  m.loss_covariance->Set(report.covariance);
  m.std_min->Set(report.std_min);
  m.std_mean->Set(report.std_mean);
  m.std_max->Set(report.std_max);
  m.pairwise_sim->Set(report.pairwise_sim);
  m.cov_offdiag_sq->Set(report.cov_offdiag_sq);
  m.collapsed_ratio->Set(report.collapsed_dims);
  m.rankme->Set(report.rankme);
  m.lr->Set(report.lr);
  m.grad_norm->Set(report.grad_norm);
  if (report.images_per_s > 0) m.images_per_s->Set(report.images_per_s);
  m.online_linear->Set(report.online_linear_top1);
  m.online_knn->Set(report.online_knn_top1);
  m.gpu_allocated->Set(report.gpu_memory_allocated);
  m.gpu_max_allocated->Set(report.gpu_memory_max_allocated);
  m.gpu_reserved->Set(report.gpu_memory_reserved);
  if (report.epoch > 0) m.epoch->Set(static_cast<double>(report.epoch));
  if (!m.data_wait_from_steps && std::isfinite(report.data_wait_seconds) && report.data_wait_seconds >= 0) {
    m.data_wait->Observe(report.data_wait_seconds);
  }
}

void WorkerMetrics::OnNonFiniteLoss() { impl_->nonfinite->Increment(); }

void WorkerMetrics::OnCheckpoint(double unix_time_s) {
  if (std::isfinite(unix_time_s) && unix_time_s > 0) impl_->checkpoint_time->Set(unix_time_s);
}

void WorkerMetrics::SetEpoch(int64_t epoch) {
  if (epoch >= 0) impl_->epoch->Set(static_cast<double>(epoch));
}

}  // namespace vicreg::metrics
