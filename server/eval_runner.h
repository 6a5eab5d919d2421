// Scheduled evaluation (docs/OPERATIONS.md "Scheduled evaluation"): for every checkpoint of a job
// whose epoch is listed in the job's eval.epochs or is a multiple of eval.every_epochs (or, with
// eval.final, the job's last epoch checkpoint once the job succeeded), once it lands
// in <run_dir>/checkpoints, one small job is launched through the coordinator's launcher (a local
// process, or a Slurm job on the cluster with the Slurm launcher) with the job's eval.resources:
//   vicreg_eval --job <run_dir>/job.yaml --checkpoint_dir <run_dir>/checkpoints --epochs E
//               --dataset NAME --data-dir DIR --probe all|linear|knn --device D [--threads C]
//               --out <run_dir>/eval/attempts/epoch_<E>_<NAME>/<k>/out.json
// (--probe from eval.probes; vicreg_eval takes eval.knn_k, knn_temperature, limit_train/test from --job)
// supervised by vicreg_job_shim (status/launcher records beside out.json, output appended to
// <run_dir>/eval/epoch_<E>_<NAME>.log), within the coordinator's eval budget (eval_slots launched at a
// time), never blocking training nor failing the training job. An attempt's output is its own file,
// renamed to <run_dir>/eval/epoch_<E>_<NAME>.json when it succeeded, so a stray attempt can never
// overwrite a result. Results {"dataset","epoch","rows":[{"model","probe","top1","top5"}]} are stored
// (evals, eval_rows) and exported (vicreg_eval_top1_ratio{job_id,dataset,probe} for the vicreg
// model). A failed eval is retried (backoff) up to eval.max_attempts, then recorded as FAILED.
// The launcher handle of a running evaluation is stored: a restarted coordinator re-adopts it (or
// accounts for how it ended) instead of starting it again.
// Not thread-safe: driven by the job manager's thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "server/job.h"
#include "server/launcher.h"
#include "server/store.h"

namespace vicreg::metrics {
class CoordinatorMetrics;
}

namespace vicreg::server {

struct EvalRunnerOptions {
  std::string eval_binary;      // vicreg_eval ("" = scheduled evaluation disabled)
  int slots = 1;                // evaluations launched at a time (queued in the cluster or running; 0 = disabled)
  std::string workdir;          // working directory (relative data dirs resolve against it)
  double retry_backoff_s = 30;  // wait before retrying a failed eval
  double timeout_s = 6 * 3600;  // an eval running longer (not counting a wait in the queue) is killed and fails
};

class EvalRunner {
 public:
  using EventSink = std::function<void(const std::string& job_id, const std::string& message)>;
  EvalRunner(EvalRunnerOptions options, JobStore& store, Launcher& launcher, metrics::CoordinatorMetrics* metrics,
             EventSink sink);
  ~EvalRunner();

  bool enabled() const { return !options_.eval_binary.empty() && options_.slots > 0; }
  // After a coordinator restart (the launcher refreshed): RUNNING tasks are polled through their
  // stored handle (or found by name): alive ones are re-adopted, ended ones accounted for, lost ones
  // go back to PENDING (the attempt is not counted).
  void Recover();
  // Creates tasks for the job's landed checkpoints that are due. Cheap (one readdir); call it
  // while the job runs and once after it ended.
  void ScanJob(const JobRecord& job);
  // Polls launched evaluations, collects finished ones, launches pending ones within the budget.
  void Tick();
  bool HasLaunched() const { return !running_.empty(); }
  // Drops what is cached about a job (retention removed it from the store).
  void Forget(const std::string& job_id);
  // Parses vicreg_eval's JSON output; throws std::runtime_error naming the problem. Exposed for tests.
  static std::vector<EvalRowRecord> ParseEvalOutput(const std::string& json_text, int epoch,
                                                    const std::string& dataset);
  // Epochs of `available` (ascending) that the job's eval section asks for; with eval.final, the last of
  // them once the job succeeded (its run ended there: with train.time_budget_s not known at submit).
  static std::vector<int> DueEpochs(const config::EvalConfig& eval, const std::vector<int>& available,
                                    bool job_succeeded = false);

 private:
  struct Running {
    EvalTaskRecord task;
    AttemptRef ref;
    std::string out_path;  // this attempt's own output
    std::string log_path;
    bool queued_reported = false;
    bool killed = false;
  };
  void StartTask(EvalTaskRecord task);
  // Handles one poll result; true when the evaluation ended (and was accounted for).
  bool Follow(Running& r, const AttemptStatus& status);
  void Finish(Running& r, const AttemptStatus& status);
  void Failed(EvalTaskRecord& t, const std::string& error);
  Running Describe(const EvalTaskRecord& task);
  const config::JobConfig* JobConfigFor(const JobRecord& job);
  const config::JobConfig* JobConfigFor(const std::string& job_id);
  std::string RunDirOf(const std::string& job_id);

  EvalRunnerOptions options_;
  JobStore& store_;
  Launcher& launcher_;
  metrics::CoordinatorMetrics* metrics_;
  EventSink sink_;
  std::map<std::string, std::optional<config::JobConfig>> configs_;  // job id -> parsed spec
  std::map<std::string, std::string> run_dirs_;                      // job id -> run dir
  std::vector<Running> running_;
};

}  // namespace vicreg::server
