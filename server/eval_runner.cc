#include "server/eval_runner.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/metrics.h"
#include "common/run_contract.h"

namespace vicreg::server {

EvalRunner::EvalRunner(EvalRunnerOptions options, JobStore& store, metrics::CoordinatorMetrics* metrics, EventSink sink)
    : options_(std::move(options)), store_(store), metrics_(metrics), sink_(std::move(sink)) {}

EvalRunner::~EvalRunner() = default;

void EvalRunner::Recover() {
  for (EvalTaskRecord t : store_.OpenEvalTasks()) {
    if (t.state == EvalState::kRunning) {
      t.state = EvalState::kPending;
      t.attempts = std::max(0, t.attempts - 1);
      t.error = "interrupted by a coordinator restart";
      t.updated_unix = NowUnix();
      store_.UpdateEvalTask(t, false);
    }
  }
}

std::vector<int> EvalRunner::DueEpochs(const config::EvalConfig& eval, const std::vector<int>& available) {
  std::vector<int> out;
  for (int e : available) {
    bool due = std::find(eval.epochs.begin(), eval.epochs.end(), e) != eval.epochs.end();
    if (eval.every_epochs > 0 && e > 0 && e % eval.every_epochs == 0) due = true;
    if (due) out.push_back(e);
  }
  return out;
}

const config::JobConfig* EvalRunner::JobConfigFor(const JobRecord& job) {
  auto it = configs_.find(job.id);
  if (it == configs_.end()) {
    std::optional<config::JobConfig> cfg;
    std::string spec = job.spec_yaml;
    if (spec.empty()) {
      if (auto full = store_.GetJob(job.id, true)) spec = full->spec_yaml;
    }
    try {
      cfg = config::ParseJobYaml(spec, job.id + "/job.yaml");
    } catch (const std::exception&) {
      cfg.reset();  // accepted at submit; a later schema change must not break the coordinator
    }
    it = configs_.emplace(job.id, std::move(cfg)).first;
    run_dirs_[job.id] = job.run_dir;
  }
  return it->second ? &*it->second : nullptr;
}

void EvalRunner::ScanJob(const JobRecord& job) {
  if (!enabled()) return;
  const config::JobConfig* cfg = JobConfigFor(job);
  if (!cfg) return;
  const config::EvalConfig& ev = cfg->eval;
  if (ev.epochs.empty() && ev.every_epochs <= 0) return;
  const contract::RunPaths d(job.run_dir);
  std::vector<int> due = DueEpochs(ev, contract::CheckpointEpochs(d));
  if (due.empty()) return;
  std::vector<config::EvalDatasetConfig> datasets = ev.datasets;
  if (datasets.empty()) datasets.push_back({cfg->data.dataset, cfg->data.data_dir});
  for (int epoch : due) {
    for (const auto& ds : datasets) {
      EvalTaskRecord t;
      t.job_id = job.id;
      t.epoch = epoch;
      t.dataset = ds.name;
      t.data_dir = ds.data_dir.empty() ? cfg->data.data_dir : ds.data_dir;
      t.state = EvalState::kPending;
      t.updated_unix = NowUnix();
      t.output_path = d.eval_dir() + "/epoch_" + std::to_string(epoch) + "_" + ds.name + ".json";
      if (store_.InsertEvalTask(t) && sink_) {
        sink_(job.id, "eval queued: epoch " + std::to_string(epoch) + " on " + ds.name);
      }
    }
  }
}

void EvalRunner::StartTask(EvalTaskRecord task) {
  auto rd_it = run_dirs_.find(task.job_id);
  std::string run_dir;
  if (rd_it != run_dirs_.end()) {
    run_dir = rd_it->second;
  } else if (auto job = store_.GetJob(task.job_id, false)) {
    run_dir = job->run_dir;
    run_dirs_[task.job_id] = run_dir;
  }
  const contract::RunPaths d(run_dir);
  task.attempts += 1;
  task.updated_unix = NowUnix();
  std::string log_path = d.eval_dir() + "/epoch_" + std::to_string(task.epoch) + "_" + task.dataset + ".log";
  try {
    fs::MakeDirs(d.eval_dir());
    std::remove(task.output_path.c_str());
    SpawnOptions so;
    so.argv = {
        options_.eval_binary,       "--job",     d.job_yaml(), "--checkpoint_dir", d.checkpoints_dir(), "--epochs",
        std::to_string(task.epoch), "--dataset", task.dataset};
    if (!task.data_dir.empty()) {
      so.argv.push_back("--data-dir");
      so.argv.push_back(task.data_dir);
    }
    // The job's eval.probes (and, through --job, its knn_k/knn_temperature/limit_* settings).
    std::string probe = "all";
    if (auto job = store_.GetJob(task.job_id, true)) {
      if (const config::JobConfig* cfg = JobConfigFor(*job)) {
        const auto& p = cfg->eval.probes;
        bool lin = std::find(p.begin(), p.end(), "linear") != p.end();
        bool knn = std::find(p.begin(), p.end(), "knn") != p.end();
        if (lin != knn) probe = lin ? "linear" : "knn";
      }
    }
    so.argv.insert(so.argv.end(), {"--probe", probe, "--out", task.output_path});
    so.cwd = options_.workdir;
    so.output_path = log_path;
    so.new_session = true;
    Running r;
    r.proc = Spawn(so);
    r.started = NowUnix();
    r.log_path = log_path;
    task.state = EvalState::kRunning;
    task.error.clear();
    store_.UpdateEvalTask(task, false);
    // The job's event log is the only record of when an evaluation began (the task row keeps
    // just its latest update): it shows whether it ran while training continued.
    if (sink_)
      sink_(task.job_id, "eval started: epoch " + std::to_string(task.epoch) + " on " + task.dataset + " (attempt " +
                             std::to_string(task.attempts) + ")");
    r.task = task;
    running_.push_back(std::move(r));
  } catch (const std::exception& e) {
    task.error = std::string("cannot start vicreg_eval: ") + e.what();
    // Counted as an attempt, with the same retry limit as a failed run.
    const config::JobConfig* cfg = nullptr;
    if (auto job = store_.GetJob(task.job_id, true)) cfg = JobConfigFor(*job);
    int max_attempts = cfg ? cfg->eval.max_attempts : 1;
    task.state = task.attempts >= max_attempts ? EvalState::kFailed : EvalState::kPending;
    task.next_try_unix = NowUnix() + options_.retry_backoff_s;
    store_.UpdateEvalTask(task, false);
    if (task.state == EvalState::kFailed) {
      if (metrics_) metrics_->OnEvalFailure(task.job_id);
      if (sink_)
        sink_(task.job_id,
              "eval epoch " + std::to_string(task.epoch) + " on " + task.dataset + " failed: " + task.error);
    }
  }
}

std::vector<EvalRowRecord> EvalRunner::ParseEvalOutput(const std::string& text, int epoch, const std::string& dataset) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw std::runtime_error("output is not a JSON object");
  auto rows_it = j.find("rows");
  if (rows_it == j.end() || !rows_it->is_array()) throw std::runtime_error("output has no \"rows\" array");
  std::vector<EvalRowRecord> rows;
  for (const auto& row : *rows_it) {
    if (!row.is_object()) throw std::runtime_error("a row is not an object");
    // Rows for other epochs/datasets (a vicreg_eval that evaluated more) are ignored; vicreg_eval
    // writes its reference rows (raw_pixels, random_init) with epoch 0: they belong to every task.
    if (row.contains("epoch") && row["epoch"].is_number_integer() && row["epoch"].get<int>() != epoch &&
        row["epoch"].get<int>() != 0)
      continue;
    EvalRowRecord r;
    r.epoch = epoch;
    r.dataset = dataset;
    if (!row.contains("model") || !row["model"].is_string()) throw std::runtime_error("a row has no \"model\"");
    if (!row.contains("probe") || !row["probe"].is_string()) throw std::runtime_error("a row has no \"probe\"");
    r.model = row["model"].get<std::string>();
    r.probe = row["probe"].get<std::string>();
    if (!row.contains("top1") || !row["top1"].is_number()) throw std::runtime_error("a row has no numeric \"top1\"");
    r.top1 = row["top1"].get<double>();
    r.top5 = row.contains("top5") && row["top5"].is_number() ? row["top5"].get<double>() : 0.0;
    if (!std::isfinite(r.top1) || r.top1 < 0 || r.top1 > 1 || !std::isfinite(r.top5) || r.top5 < 0 || r.top5 > 1)
      throw std::runtime_error("top1/top5 must be ratios in [0, 1], got " + std::to_string(r.top1) + "/" +
                               std::to_string(r.top5) + " for " + r.model + "/" + r.probe);
    rows.push_back(r);
  }
  if (rows.empty()) throw std::runtime_error("output has no row for epoch " + std::to_string(epoch));
  return rows;
}

void EvalRunner::Finish(Running& r, int wait_status) {
  EvalTaskRecord& t = r.task;
  t.updated_unix = NowUnix();
  std::string error;
  if (WIFSIGNALED(wait_status)) {
    error = "vicreg_eval killed by " + SignalName(WTERMSIG(wait_status));
  } else if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    error = "vicreg_eval exited with code " + std::to_string(WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1);
  } else {
    try {
      std::ifstream f(t.output_path);
      if (!f) throw std::runtime_error("no output file " + t.output_path);
      std::stringstream ss;
      ss << f.rdbuf();
      t.rows = ParseEvalOutput(ss.str(), t.epoch, t.dataset);
    } catch (const std::exception& e) {
      error = std::string("bad output ") + t.output_path + ": " + e.what();
    }
  }
  if (error.empty()) {
    t.state = EvalState::kSucceeded;
    t.error.clear();
    store_.UpdateEvalTask(t, true);
    std::string summary;
    for (const auto& row : t.rows) {
      if (row.model == "vicreg" && metrics_)
        metrics_->SetEvalTop1(t.job_id, t.dataset, row.probe, row.top1, t.updated_unix);
      if (row.model == "vicreg") {
        char buf[96];
        std::snprintf(buf, sizeof(buf), "%s%s top1 %.4f", summary.empty() ? "" : ", ", row.probe.c_str(), row.top1);
        summary += buf;
      }
    }
    if (sink_)
      sink_(t.job_id,
            "eval epoch " + std::to_string(t.epoch) + " on " + t.dataset + ": " + (summary.empty() ? "done" : summary));
    return;
  }
  std::string tail = contract::TailLines(r.log_path, 5);
  t.error = error + (tail.empty() ? "" : "; last lines of " + r.log_path + ":\n" + tail);
  int max_attempts = 1;
  if (auto job = store_.GetJob(t.job_id, true)) {
    if (const config::JobConfig* cfg = JobConfigFor(*job)) max_attempts = cfg->eval.max_attempts;
  }
  if (t.attempts >= max_attempts) {
    t.state = EvalState::kFailed;
    if (metrics_) metrics_->OnEvalFailure(t.job_id);
    if (sink_)
      sink_(t.job_id, "eval epoch " + std::to_string(t.epoch) + " on " + t.dataset + " failed after " +
                          std::to_string(t.attempts) + " attempt(s): " + error);
  } else {
    t.state = EvalState::kPending;
    t.next_try_unix = NowUnix() + options_.retry_backoff_s;
  }
  store_.UpdateEvalTask(t, false);
}

void EvalRunner::Tick() {
  if (!enabled()) return;
  // Collect finished or overdue evaluations.
  for (auto it = running_.begin(); it != running_.end();) {
    std::optional<int> st = TryReap(it->proc.pid);
    if (!st) {
      if (NowUnix() - it->started > options_.timeout_s) {
        SignalSessionOf(it->proc, SIGKILL);
      }
      ++it;
      continue;
    }
    // -1: not our child any more (cannot happen for processes this runner started); report as killed.
    int status = *st == -1 ? SIGKILL /* a wait status meaning "killed by SIGKILL" */ : *st;
    Finish(*it, status);
    it = running_.erase(it);
  }
  // Start pending ones within the budget, oldest first.
  if (static_cast<int>(running_.size()) >= options_.slots) return;
  double now = NowUnix();
  for (EvalTaskRecord& t : store_.OpenEvalTasks()) {
    if (static_cast<int>(running_.size()) >= options_.slots) break;
    if (t.state != EvalState::kPending || t.next_try_unix > now) continue;
    bool already = std::any_of(running_.begin(), running_.end(), [&](const Running& r) {
      return r.task.job_id == t.job_id && r.task.epoch == t.epoch && r.task.dataset == t.dataset;
    });
    if (!already) StartTask(t);
  }
}

}  // namespace vicreg::server
