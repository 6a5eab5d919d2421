#include "server/eval_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/metrics.h"
#include "common/run_contract.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

std::string TaskName(const EvalTaskRecord& t) { return "epoch " + std::to_string(t.epoch) + " on " + t.dataset; }

// The launch's name (LaunchSpec::name): the Slurm job is "<prefix>-<job id>-eval-e<E>-<dataset>-a<k>".
std::string LaunchName(const EvalTaskRecord& t) {
  return t.job_id + "-eval-e" + std::to_string(t.epoch) + "-" + t.dataset + "-a" + std::to_string(t.attempts);
}

// vicreg_eval writes its CSV beside the JSON: x.json -> x.csv.
std::string CsvBeside(const std::string& json_path) {
  const std::string ext = ".json";
  if (json_path.size() > ext.size() && json_path.compare(json_path.size() - ext.size(), ext.size(), ext) == 0)
    return json_path.substr(0, json_path.size() - ext.size()) + ".csv";
  return json_path + ".csv";
}

}  // namespace

EvalRunner::EvalRunner(EvalRunnerOptions options, JobStore& store, Launcher& launcher,
                       metrics::CoordinatorMetrics* metrics, EventSink sink)
    : options_(std::move(options)), store_(store), launcher_(launcher), metrics_(metrics), sink_(std::move(sink)) {}

EvalRunner::~EvalRunner() = default;

std::string EvalRunner::RunDirOf(const std::string& job_id) {
  auto it = run_dirs_.find(job_id);
  if (it != run_dirs_.end()) return it->second;
  std::string run_dir;
  if (auto job = store_.GetJob(job_id, false)) run_dir = job->run_dir;
  run_dirs_[job_id] = run_dir;
  return run_dir;
}

// Where the evaluation's current attempt (task.attempts) is: its files and how to find it.
EvalRunner::Running EvalRunner::Describe(const EvalTaskRecord& task) {
  const contract::RunPaths d(RunDirOf(task.job_id));
  const std::string dir = d.eval_attempt_dir(task.epoch, task.dataset, task.attempts);
  Running r;
  r.task = task;
  r.ref.name = LaunchName(task);
  r.ref.handle = task.handle;
  r.ref.status_path = dir + "/status.json";
  r.ref.info_path = dir + "/launcher.json";
  r.out_path = dir + "/out.json";
  r.log_path = d.eval_log(task.epoch, task.dataset);
  return r;
}

void EvalRunner::Recover() {
  int adopted = 0, ended = 0, requeued = 0;
  for (EvalTaskRecord t : store_.OpenEvalTasks()) {
    if (t.state != EvalState::kRunning) continue;
    if (!t.launcher.empty() && t.launcher == launcher_.name() && t.attempts > 0) {
      Running r = Describe(t);
      AttemptStatus st = launcher_.Poll(r.ref);
      if (st.phase != AttemptStatus::Phase::kLost) {
        if (!st.handle.empty()) {
          r.task.handle = r.ref.handle = st.handle;
          store_.UpdateEvalTask(r.task, false);
        }
        if (Follow(r, st)) {
          ++ended;
        } else {
          running_.push_back(r);
          ++adopted;
          if (sink_)
            sink_(t.job_id, "coordinator restarted: re-adopted eval " + TaskName(t) + " (attempt " +
                                std::to_string(t.attempts) + ", " +
                                (r.ref.handle.empty() ? "handle unknown" : r.ref.handle) + ")");
        }
        continue;
      }
      launcher_.Stop(r.ref, true);  // stragglers of a lost attempt
    }
    // Unknown outcome (or launched by a coordinator that did not record handles): run it again
    // without counting the interrupted attempt.
    t.state = EvalState::kPending;
    t.attempts = std::max(0, t.attempts - 1);
    t.error = "interrupted by a coordinator restart";
    t.handle.clear();
    t.updated_unix = NowUnix();
    store_.UpdateEvalTask(t, false);
    ++requeued;
  }
  if (adopted + ended + requeued > 0)
    spdlog::info("coordinator: evaluations after the restart: {} re-adopted, {} ended while down, {} pending again",
                 adopted, ended, requeued);
}

std::vector<int> EvalRunner::DueEpochs(const config::EvalConfig& eval, const std::vector<int>& available,
                                       bool job_succeeded) {
  std::vector<int> out;
  for (int e : available) {
    bool due = std::find(eval.epochs.begin(), eval.epochs.end(), e) != eval.epochs.end();
    if (eval.every_epochs > 0 && e > 0 && e % eval.every_epochs == 0) due = true;
    if (eval.final && job_succeeded && e == available.back()) due = true;
    if (due) out.push_back(e);
  }
  return out;
}

void EvalRunner::Forget(const std::string& job_id) {
  configs_.erase(job_id);
  run_dirs_.erase(job_id);
}

const config::JobConfig* EvalRunner::JobConfigFor(const JobRecord& job) {
  auto it = configs_.find(job.id);
  if (it == configs_.end()) {
    // A cache, not a record: bounded whatever the job history (jobs still scanned parse again).
    if (configs_.size() >= 1024) {
      configs_.clear();
      run_dirs_.clear();
    }
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

const config::JobConfig* EvalRunner::JobConfigFor(const std::string& job_id) {
  auto it = configs_.find(job_id);
  if (it != configs_.end()) return it->second ? &*it->second : nullptr;
  auto job = store_.GetJob(job_id, true);
  return job ? JobConfigFor(*job) : nullptr;
}

void EvalRunner::ScanJob(const JobRecord& job) {
  if (!enabled()) return;
  const config::JobConfig* cfg = JobConfigFor(job);
  if (!cfg) return;
  const config::EvalConfig& ev = cfg->eval;
  if (ev.epochs.empty() && ev.every_epochs <= 0 && !ev.final) return;
  const contract::RunPaths d(job.run_dir);
  std::vector<int> due = DueEpochs(ev, contract::CheckpointEpochs(d), job.state == JobState::kSucceeded);
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
      t.output_path = d.eval_result(epoch, ds.name);
      if (store_.InsertEvalTask(t) && sink_) {
        sink_(job.id, "eval queued: " + TaskName(t));
      }
    }
  }
}

void EvalRunner::StartTask(EvalTaskRecord task) {
  const contract::RunPaths d(RunDirOf(task.job_id));
  task.attempts += 1;
  task.updated_unix = NowUnix();
  task.launcher = launcher_.name();
  task.handle.clear();
  task.started_unix = task.updated_unix;
  task.running_unix = 0;
  Running r = Describe(task);
  const config::JobConfig* cfg = JobConfigFor(task.job_id);
  try {
    fs::MakeDirs(d.eval_dir());
    fs::MakeDirs(d.eval_attempt_dir(task.epoch, task.dataset, task.attempts));
    std::remove(r.out_path.c_str());
    LaunchSpec spec;
    spec.name = r.ref.name;
    spec.argv = {
        options_.eval_binary,       "--job",     d.job_yaml(), "--checkpoint_dir", d.checkpoints_dir(), "--epochs",
        std::to_string(task.epoch), "--dataset", task.dataset};
    if (!task.data_dir.empty()) spec.argv.insert(spec.argv.end(), {"--data-dir", task.data_dir});
    // The job's eval.probes (and, through --job, its knn_k/knn_temperature/limit_* settings).
    std::string probe = "all";
    if (cfg) {
      const auto& p = cfg->eval.probes;
      bool lin = std::find(p.begin(), p.end(), "linear") != p.end();
      bool knn = std::find(p.begin(), p.end(), "knn") != p.end();
      if (lin != knn) probe = lin ? "linear" : "knn";
      spec.argv.insert(spec.argv.end(), {"--device", cfg->eval.resources.device});
      if (cfg->eval.resources.cpus > 0)
        spec.argv.insert(spec.argv.end(), {"--threads", std::to_string(cfg->eval.resources.cpus)});
      spec.cpus_per_rank = cfg->eval.resources.cpus;
      spec.gpu_per_rank = cfg->eval.resources.device == "cuda";
    }
    spec.argv.insert(spec.argv.end(), {"--probe", probe, "--out", r.out_path});
    spec.workdir = options_.workdir;
    spec.ranks = 1;
    spec.status_path = r.ref.status_path;
    spec.info_path = r.ref.info_path;
    spec.output_path = r.log_path;
    spec.script_path = d.eval_attempt_dir(task.epoch, task.dataset, task.attempts) + "/job.sbatch";
    task.state = EvalState::kRunning;
    task.error.clear();
    store_.UpdateEvalTask(task, false);  // the intent: a restarted coordinator looks for it by name
    task.handle = r.ref.handle = launcher_.Launch(spec);
    store_.UpdateEvalTask(task, false);
    // The job's event log is the only record of when an evaluation began (the task row keeps
    // just its latest update): it shows whether it ran while training continued.
    if (sink_)
      sink_(task.job_id, "eval started: " + TaskName(task) + " (attempt " + std::to_string(task.attempts) + ", " +
                             launcher_.name() + " launcher)");
    r.task = task;
    running_.push_back(std::move(r));
  } catch (const std::exception& e) {
    task.handle.clear();
    Failed(task, std::string("cannot start vicreg_eval: ") + e.what());
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

void EvalRunner::Failed(EvalTaskRecord& t, const std::string& error) {
  t.error = error;
  t.updated_unix = NowUnix();
  const config::JobConfig* cfg = JobConfigFor(t.job_id);
  const int max_attempts = cfg ? cfg->eval.max_attempts : 1;
  if (t.attempts >= max_attempts) {
    t.state = EvalState::kFailed;
    if (metrics_) metrics_->OnEvalFailure(t.job_id);
    if (sink_)
      sink_(t.job_id, "eval " + TaskName(t) + " failed after " + std::to_string(t.attempts) +
                          " attempt(s): " + error.substr(0, error.find('\n')));
  } else {
    t.state = EvalState::kPending;
    t.next_try_unix = NowUnix() + options_.retry_backoff_s;
  }
  store_.UpdateEvalTask(t, false);
}

void EvalRunner::Finish(Running& r, const AttemptStatus& st) {
  EvalTaskRecord& t = r.task;
  launcher_.Stop(r.ref, true);  // stragglers (a child that outlived vicreg_eval)
  t.updated_unix = NowUnix();
  std::string error;
  if (r.killed) {
    error = "vicreg_eval ran longer than " + std::to_string(static_cast<int64_t>(options_.timeout_s)) + " s; killed";
  } else if (st.phase == AttemptStatus::Phase::kLost) {
    error = "vicreg_eval lost: " + st.detail;
  } else if (st.signal != 0) {
    error = "vicreg_eval killed by " + SignalName(st.signal);
  } else if (st.exit_code != kExitOk) {
    error = "vicreg_eval exited with code " + std::to_string(st.exit_code) +
            (st.detail.empty() ? "" : " (" + st.detail + ")");
  } else {
    try {
      std::ifstream f(r.out_path);
      if (!f) throw std::runtime_error("no output file " + r.out_path);
      std::stringstream ss;
      ss << f.rdbuf();
      t.rows = ParseEvalOutput(ss.str(), t.epoch, t.dataset);
      // The attempt's own files become the result (a stray attempt cannot overwrite it): the JSON
      // and the CSV vicreg_eval writes beside it.
      if (std::rename(r.out_path.c_str(), t.output_path.c_str()) != 0)
        throw std::runtime_error("cannot rename " + r.out_path + " to " + t.output_path);
      const std::string csv = CsvBeside(r.out_path);
      if (fs::Exists(csv)) std::rename(csv.c_str(), CsvBeside(t.output_path).c_str());
    } catch (const std::exception& e) {
      error = std::string("bad output ") + r.out_path + ": " + e.what();
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
    if (sink_) sink_(t.job_id, "eval " + TaskName(t) + ": " + (summary.empty() ? "done" : summary));
    return;
  }
  std::string tail = contract::TailLines(r.log_path, 5);
  Failed(t, error + (tail.empty() ? "" : "; last lines of " + r.log_path + ":\n" + tail));
}

bool EvalRunner::Follow(Running& r, const AttemptStatus& st) {
  if (!st.handle.empty() && st.handle != r.ref.handle) {
    r.task.handle = r.ref.handle = st.handle;
    store_.UpdateEvalTask(r.task, false);
  }
  if (st.stale) return false;  // the cluster's controller does not answer: wait
  switch (st.phase) {
    case AttemptStatus::Phase::kQueued:
      if (!r.queued_reported && sink_) {
        r.queued_reported = true;
        sink_(r.task.job_id, "eval " + TaskName(r.task) + " waits in the cluster queue: " + st.queue_state +
                                 (st.queue_reason.empty() ? "" : " (" + st.queue_reason + ")"));
      }
      return false;
    case AttemptStatus::Phase::kRunning: {
      const double now = NowUnix();
      if (r.task.running_unix == 0) {
        r.task.running_unix = now;
        store_.UpdateEvalTask(r.task, false);
      }
      if (!r.killed && now - r.task.running_unix > options_.timeout_s) {
        launcher_.Stop(r.ref, true);
        r.killed = true;
      }
      return false;
    }
    case AttemptStatus::Phase::kExited:
    case AttemptStatus::Phase::kLost: Finish(r, st); return true;
  }
  return false;
}

void EvalRunner::Tick() {
  if (!enabled()) return;
  // Follow launched evaluations (the launcher was refreshed by the manager for this tick).
  for (auto it = running_.begin(); it != running_.end();) {
    if (Follow(*it, launcher_.Poll(it->ref))) {
      it = running_.erase(it);
    } else {
      if (launcher_.capabilities().places_ranks) launcher_.CancelStrays(it->ref.name);
      ++it;
    }
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
