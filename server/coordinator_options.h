// vicreg_coordinator's configuration: defaults < config file (--config, YAML, strict keys) < flags.
//
//   vicreg_coordinator [--config FILE] [--listen HOST:PORT] [--state-dir DIR] [--slots N | --gpus LIST]
//                      [--metrics-port [HOST:]PORT|off] [--token-file F] [--tls-cert F --tls-key F]
//                      [--launcher local|slurm|none] [--worker-binary F] [--eval-binary F] ...
//                      [--config-reference]  (prints the table of keys docs/OPERATIONS.md carries)
// Every key and flag is one row of one table (coordinator_options.cc, a config::SettingsTable):
// the file is read by the job file's reader (types, unknown keys with did-you-mean, line/column),
// the flags are made from the same rows, bounds and choices are checked whatever set the value.
// Every problem is a UserError (ConfigError for the table's checks) naming the key, its flag, the
// value, what is valid and where the value came from (exit 2).
#pragma once

#include <string>
#include <vector>

#include "common/config_table.h"

namespace vicreg::server {

struct CoordinatorOptions {
  std::string config_file;
  std::string listen = "127.0.0.1:50051";  // gRPC; port 0 = pick a free one
  std::string state_dir = "vicreg-state";  // runs/<job_id>, coordinator.json, coordinator.lock
  std::string db_path;                     // SQLite store; "" = <state_dir>/coordinator.db (keep it on a local disk)
  int slots = -1;                          // CPU slots; -1 = not set (default: number of cores)
  std::string gpus;                        // "0,1,2,3": GPU slots (exclusive with slots)
  std::string metrics_listen = "127.0.0.1:9400";  // /metrics and /sd; "off" disables; port 0 = free one
  std::string token_file;                         // bearer token (required when listening beyond loopback)
  std::string tls_cert, tls_key;                  // PEM files; both or neither (required off loopback)
  bool allow_insecure_token = false;              // non-loopback listen with a token but without TLS
  bool allow_unauthenticated_loopback = false;    // loopback without token_file: no token (else <state_dir>/token)
  bool allow_unauthenticated_metrics = false;     // non-loopback /metrics and /sd without the token
  std::string launcher = "local";                 // local | slurm | none
  std::string worker_binary;                      // default: next to vicreg_coordinator, then PATH
  std::string eval_binary;                        // default: next to vicreg_coordinator, then PATH; "off" disables
  std::string shim_binary;                        // default: next to vicreg_coordinator, then PATH
  std::string workdir;                            // cwd of the ranks (default: the coordinator's cwd)
  std::string mpirun = "mpirun";
  std::vector<std::string> mpirun_args;
  std::string slurm_partition, slurm_account, slurm_srun_mpi = "pmix";
  std::vector<std::string> slurm_sbatch_args, slurm_srun_args;
  std::string slurm_job_name_prefix = "vicreg";  // Slurm job names <prefix>-<job id>-a<n>
  double slurm_squeue_interval_s = 5;            // at most one squeue per interval
  double slurm_command_timeout_s = 30;           // sbatch/squeue/scancel/sacct
  int slurm_max_submitted_jobs = 10000;          // jobs handed to Slurm at a time (the rest wait in the coordinator)
  std::string slurm_sbatch = "sbatch", slurm_squeue = "squeue", slurm_scancel = "scancel", slurm_sacct = "sacct",
              slurm_srun = "srun";  // the Slurm commands (absolute paths or names in PATH)
  double max_queue_wait_s = 0;      // fail a job whose attempt waits longer in the cluster queue (0 = no limit)
  double poll_interval_s = 0.5;
  double no_progress_timeout_s = 900;
  double stop_grace_s = 10;
  double restart_backoff_s = 2;
  int max_ranks_per_job = 64;
  int max_request_bytes = 4 * 1024 * 1024;  // gRPC max receive message size
  int max_page_size = 1000;
  int max_streams = 256;            // concurrent WatchJob/StreamLogs streams (each holds a server thread)
  int max_streams_per_client = 32;  // ... of them from one client address
  int eval_slots = 1;
  double eval_retry_backoff_s = 30;
  std::string store_synchronous = "normal";  // normal | full
  double retention_days = 0;                 // ended jobs leave the store this long after they ended (0 = never)
  bool retention_delete_run_dirs = false;    // ... and their run dirs (checkpoints, logs) with them
  std::string log_level = "info";
  // Where each key's value came from (" (c.yaml, line 3, column 8)", " (from --slots)"); absent = default.
  config::SettingOrigins origins;
};

// Parses argv (and the --config file it names). Returns false and sets *exit_code for --help
// (0) or a usage error (2, message printed). Throws UserError for invalid values.
bool ParseCoordinatorArgs(int argc, char** argv, CoordinatorOptions* options, int* exit_code);
// Applies a YAML config file (strict: unknown keys are errors naming the closest valid key).
// Throws ConfigError(path, every problem of the file).
void LoadCoordinatorConfig(const std::string& path, CoordinatorOptions* options);
// The markdown table of every key, flag, default, valid values and meaning (docs/OPERATIONS.md).
std::string CoordinatorConfigReference();
// Cross-field validation and defaults (binaries, slots); throws UserError.
void FinalizeCoordinatorOptions(CoordinatorOptions* options);

// "127.0.0.1:50051" -> host, port. Throws UserError naming `what`.
void SplitHostPort(const std::string& s, const std::string& what, std::string* host, int* port);
bool IsLoopbackHost(const std::string& host);
// Whether /metrics and /sd require the bearer token: a non-loopback metrics address with a token,
// unless allow_unauthenticated_metrics.
bool MetricsNeedToken(const CoordinatorOptions& o);

}  // namespace vicreg::server
