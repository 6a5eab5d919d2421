// The metric-name contract of docs/METRICS.md, as the
// tests check it: name, type, and the labels every series carries.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace vicreg::metrics::testing {

struct MetricSpec {
  std::string name;
  std::string type;              // counter | gauge | histogram
  std::set<std::string> labels;  // exact label set of every series (histograms: without le)
  bool after_report = false;     // worker: appears only after the first OnReport with the value
  bool cuda_only = false;        // worker: only CUDA ranks report a value (CPU ranks export no series)
};

inline const std::vector<MetricSpec>& WorkerSpecs() {
  static const std::vector<MetricSpec> specs = {
      {"vicreg_train_loss", "gauge", {"job_id", "rank", "component"}, true},
      {"vicreg_embedding_std_min", "gauge", {"job_id", "rank"}, true},
      {"vicreg_embedding_std_mean", "gauge", {"job_id", "rank"}, true},
      {"vicreg_embedding_std_max", "gauge", {"job_id", "rank"}, true},
      {"vicreg_embedding_pairwise_similarity", "gauge", {"job_id", "rank"}, true},
      {"vicreg_covariance_offdiag_sq_mean", "gauge", {"job_id", "rank"}, true},
      {"vicreg_embedding_collapsed_dims_ratio", "gauge", {"job_id", "rank"}, true},
      {"vicreg_representation_effective_rank", "gauge", {"job_id", "rank"}, true},
      {"vicreg_learning_rate", "gauge", {"job_id", "rank"}, true},
      {"vicreg_grad_norm", "gauge", {"job_id", "rank"}, true},
      {"vicreg_train_images_per_second", "gauge", {"job_id", "rank"}, true},
      {"vicreg_online_top1_ratio", "gauge", {"job_id", "rank", "probe"}, true},
      {"vicreg_train_epoch", "gauge", {"job_id", "rank"}},
      {"vicreg_train_steps_total", "counter", {"job_id", "rank"}},
      {"vicreg_train_samples_total", "counter", {"job_id", "rank"}},
      {"vicreg_train_step_duration_seconds", "histogram", {"job_id", "rank"}},
      {"vicreg_data_wait_seconds", "histogram", {"job_id", "rank"}},
      {"vicreg_last_step_timestamp_seconds", "gauge", {"job_id", "rank"}},
      {"vicreg_loss_nonfinite_total", "counter", {"job_id", "rank"}},
      {"vicreg_checkpoint_last_timestamp_seconds", "gauge", {"job_id", "rank"}},
      {"vicreg_gpu_memory_allocated_bytes", "gauge", {"job_id", "rank"}, true, true},
      {"vicreg_gpu_memory_max_allocated_bytes", "gauge", {"job_id", "rank"}, true, true},
      {"vicreg_gpu_memory_reserved_bytes", "gauge", {"job_id", "rank"}, true, true},
      {"vicreg_build_info", "gauge", {"version", "revision"}},
  };
  return specs;
}

inline const std::vector<MetricSpec>& CoordinatorSpecs() {
  static const std::vector<MetricSpec> specs = {
      {"vicreg_jobs", "gauge", {"state"}},
      {"vicreg_jobs_submitted_total", "counter", {"result"}},
      {"vicreg_job_restarts_total", "counter", {"reason"}},
      {"vicreg_slots", "gauge", {"state"}},
      {"vicreg_eval_top1_ratio", "gauge", {"job_id", "dataset", "probe"}, true},
      {"vicreg_eval_last_timestamp_seconds", "gauge", {"job_id"}, true},
      {"vicreg_eval_failures_total", "counter", {"job_id"}, true},
      {"vicreg_grpc_requests_total", "counter", {"method", "code"}, true},
      {"vicreg_grpc_request_duration_seconds", "histogram", {"method"}, true},
      {"vicreg_build_info", "gauge", {"version", "revision"}},
  };
  return specs;
}

}  // namespace vicreg::metrics::testing
