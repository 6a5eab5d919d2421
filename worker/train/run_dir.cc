#include "worker/train/run_dir.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/errors.h"
#include "common/fs.h"

namespace vicreg::train {

namespace {

// JSON has no NaN/Inf: write them as null.
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
nlohmann::json Opt(const std::optional<double>& v) { return v ? Num(*v) : nlohmann::json(nullptr); }

}  // namespace

std::string MetricsJsonLine(const StepReport& r) {
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  j["loss"] = Num(r.loss);
  j["invariance"] = Num(r.invariance);
  j["variance"] = Num(r.variance);
  j["covariance"] = Num(r.covariance);
  j["std_min"] = Opt(r.std_min);
  j["std_mean"] = Opt(r.std_mean);
  j["std_max"] = Opt(r.std_max);
  j["pairwise_sim"] = Opt(r.pairwise_sim);
  j["cov_offdiag_sq"] = Opt(r.cov_offdiag_sq);
  j["collapsed_dims"] = Opt(r.collapsed_dims);
  j["rankme"] = Opt(r.rankme);
  j["lr"] = Num(r.lr);
  j["grad_norm"] = Num(r.grad_norm);
  j["images_per_s"] = Num(r.images_per_s);
  j["data_wait_s"] = Num(r.data_wait_seconds);
  j["step_s"] = Num(r.step_seconds);
  j["samples"] = r.samples;
  if (!r.loss_finite) j["skipped"] = true;
  if (r.online_linear_top1) j["online_linear_top1"] = Num(*r.online_linear_top1);
  if (r.online_knn_top1) j["online_knn_top1"] = Num(*r.online_knn_top1);
  if (r.gpu_memory_allocated) j["gpu_mem_allocated"] = Num(*r.gpu_memory_allocated);
  if (r.gpu_memory_max_allocated) j["gpu_mem_max_allocated"] = Num(*r.gpu_memory_max_allocated);
  if (r.gpu_memory_reserved) j["gpu_mem_reserved"] = Num(*r.gpu_memory_reserved);
  return j.dump();
}

RunDir::RunDir(std::string root, int rank) : paths_(std::move(root)), rank_(rank) {
  VICREG_CHECK(!paths_.root().empty(), "run dir must not be empty");
}

RunDir::~RunDir() = default;

void RunDir::Create() const {
  fs::MakeDirs(paths_.logs_dir());
  fs::MakeDirs(paths_.endpoints_dir());
  if (rank_ == 0) {
    fs::MakeDirs(paths_.checkpoints_dir());
    fs::MakeDirs(paths_.eval_dir());
  }
}

void RunDir::WriteJobYaml(const std::string& yaml) const { contract::WriteJobYaml(paths_.job_yaml(), yaml); }

void RunDir::WriteEndpoint(const EndpointInfo& e) const { contract::WriteEndpoint(paths_, e); }

void RunDir::OpenMetrics(int64_t keep_through_step) {
  VICREG_CHECK(rank_ == 0, "only rank 0 writes metrics.jsonl");
  metrics_.reset();
  const std::string path = metrics_jsonl();
  if (fs::Exists(path)) {
    std::istringstream in(fs::ReadFile(path));
    std::string line, kept;
    int64_t dropped = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      bool keep = false;
      try {
        auto j = nlohmann::json::parse(line);
        keep = j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= keep_through_step;
      } catch (const nlohmann::json::exception&) {
        keep = false;
      }
      if (keep)
        kept += line + "\n";
      else
        ++dropped;
    }
    if (dropped > 0) {
      spdlog::info("{}: dropped {} line(s) after step {} (they are produced again by this attempt)", path, dropped,
                   keep_through_step);
      fs::AtomicWriteFile(path, kept);
    }
  }
  metrics_ = std::make_unique<fs::JsonlWriter>(path);
}

void RunDir::AppendMetrics(const StepReport& r) {
  VICREG_CHECK(metrics_ != nullptr, "OpenMetrics must be called first");
  metrics_->Append(MetricsJsonLine(r));
}

void RunDir::WriteProgress(const Progress& p) const { contract::WriteProgress(paths_, p); }

void RunDir::WriteResult(const RunResult& r) const { contract::WriteResult(paths_, r); }

}  // namespace vicreg::train
