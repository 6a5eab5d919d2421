// Scheduled evaluation (docs/OPERATIONS.md "Scheduled evaluation"): for every checkpoint of a job whose
// epoch is listed in the job's eval.epochs or is a multiple of eval.every_epochs, once it lands in
// <run_dir>/checkpoints, run
//   vicreg_eval --job <run_dir>/job.yaml --checkpoint_dir <run_dir>/checkpoints --epochs E
//               --dataset NAME --data-dir DIR --probe all|linear|knn --out <run_dir>/eval/epoch_<E>_<NAME>.json
// (--probe from eval.probes; vicreg_eval takes eval.knn_k, knn_temperature, limit_train/test from --job)
// (argv, own session, output to <run_dir>/eval/epoch_<E>_<NAME>.log) on the coordinator's own eval
// slot budget, never blocking training nor failing the training job. Results
// {"dataset","epoch","rows":[{"model","probe","top1","top5"}]} are stored (evals, eval_rows) and
// exported (vicreg_eval_top1_ratio{job_id,dataset,probe} for the vicreg model). A failed eval is
// retried (backoff) up to eval.max_attempts, then recorded as FAILED.
// Not thread-safe: driven by the job manager's thread.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "server/job.h"
#include "server/process.h"
#include "server/store.h"

namespace vicreg::metrics {
class CoordinatorMetrics;
}

namespace vicreg::server {

struct EvalRunnerOptions {
  std::string eval_binary;      // vicreg_eval ("" = scheduled evaluation disabled)
  int slots = 1;                // concurrent vicreg_eval processes (0 = disabled)
  std::string workdir;          // working directory (relative data dirs resolve against it)
  double retry_backoff_s = 30;  // wait before retrying a failed eval
  double timeout_s = 6 * 3600;  // an eval running longer is killed and counted as failed
};

class EvalRunner {
 public:
  using EventSink = std::function<void(const std::string& job_id, const std::string& message)>;
  EvalRunner(EvalRunnerOptions options, JobStore& store, metrics::CoordinatorMetrics* metrics, EventSink sink);
  ~EvalRunner();

  bool enabled() const { return !options_.eval_binary.empty() && options_.slots > 0; }
  // After a coordinator restart: tasks that were RUNNING go back to PENDING (attempt not counted).
  void Recover();
  // Creates tasks for the job's landed checkpoints that are due. Cheap (one readdir); call it
  // while the job runs and once after it ended.
  void ScanJob(const JobRecord& job);
  // Starts pending tasks within the slot budget and collects finished ones.
  void Tick();
  // Parses vicreg_eval's JSON output; throws std::runtime_error naming the problem. Exposed for tests.
  static std::vector<EvalRowRecord> ParseEvalOutput(const std::string& json_text, int epoch,
                                                    const std::string& dataset);
  // Epochs of `available` that the job's eval section asks for.
  static std::vector<int> DueEpochs(const config::EvalConfig& eval, const std::vector<int>& available);

 private:
  struct Running {
    EvalTaskRecord task;
    ProcessRef proc;
    double started = 0;
    std::string log_path;
  };
  void StartTask(EvalTaskRecord task);
  void Finish(Running& r, int wait_status);
  const config::JobConfig* JobConfigFor(const JobRecord& job);

  EvalRunnerOptions options_;
  JobStore& store_;
  metrics::CoordinatorMetrics* metrics_;
  EventSink sink_;
  std::map<std::string, std::optional<config::JobConfig>> configs_;  // job id -> parsed spec
  std::map<std::string, std::string> run_dirs_;                      // job id -> run dir
  std::vector<Running> running_;
};

}  // namespace vicreg::server
