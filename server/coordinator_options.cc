#include "server/coordinator_options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "common/build_info.h"
#include "common/errors.h"
#include "common/fs.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

// The one table of the coordinator's settings. Help texts are the flags' --help lines; Doc texts
// (markdown) replace them in the reference (docs/OPERATIONS.md "Configuration", kept current by
// tests/server: `vicreg_coordinator --config-reference`).
config::SettingsTable Table(CoordinatorOptions* o) {
  config::SettingsTable t;
  t.Add("listen", &o->listen, "gRPC address HOST:PORT (port 0 = a free one)")
      .Flag("--listen")
      .Doc("gRPC address; port 0 picks a free port (written to `<state_dir>/coordinator.json`)");
  t.Add("state_dir", &o->state_dir, "state directory (runs/<job_id>; the SQLite store unless --db-path)")
      .Flag("--state-dir")
      .Doc(
          "`runs/<job_id>/`, `coordinator.json`, `coordinator.lock`, and the SQLite store `coordinator.db` unless "
          "`db_path` says otherwise");
  t.Add("db_path", &o->db_path,
        "SQLite store file (default <state-dir>/coordinator.db); keep it on a local disk, never on NFS")
      .Flag("--db-path")
      .DefaultDoc("`<state_dir>/coordinator.db`")
      .Doc(
          "the SQLite store (plus `-wal`, `-shm` and, when outside the state dir, a `.lock` beside it). **Keep it on "
          "a local disk** when the state dir is on a shared file system (see \"Running against a Slurm cluster\")");
  t.Add("slots", &o->slots, "number of CPU slots (one rank each); default: number of cores")
      .Flag("--slots")
      .DefaultDoc("number of cores")
      .Doc("CPU slots, one rank each, 0 .. 4096 (exclusive with `gpus`)");
  t.Add("gpus", config::SettingsTable::IndexList{&o->gpus}, "GPU slots by index, e.g. 0,1,2,3 (one rank per GPU)")
      .Flag("--gpus")
      .Doc(
          "GPU slots by index (`0,1,2,3` or `[0, 1, 2, 3]`), one rank per GPU; ranks see `CUDA_VISIBLE_DEVICES` of "
          "their placement");
  t.Add("metrics_listen", &o->metrics_listen, "[HOST:]PORT of /metrics and /sd (Prometheus HTTP SD); 'off' disables")
      .Flag("--metrics-port,--metrics-listen")
      .Doc(
          "HTTP: `/metrics`, `/sd` (below), the web UI and its JSON API (\"Web UI and HTTP API\"); a bare port binds "
          "127.0.0.1; `off` disables");
  t.Add("token_file", &o->token_file, "file holding the bearer token clients must send")
      .Flag("--token-file")
      .Doc("bearer token (see Security)");
  t.Add("tls_cert", &o->tls_cert, "PEM certificate chain (enables TLS with --tls-key)")
      .Flag("--tls-cert")
      .Doc("PEM certificate chain: serve gRPC over TLS (required off loopback; with `tls_key`)");
  t.Add("tls_key", &o->tls_key, "PEM private key").Flag("--tls-key").Doc("PEM private key of `tls_cert`");
  t.Add("allow_insecure_token", &o->allow_insecure_token,
        "accept a non-loopback --listen with a token but without TLS (the token travels in cleartext: only behind a "
        "TLS-terminating mesh)")
      .Flag("--allow-insecure-token")
      .Doc(
          "accept a non-loopback `listen` with a token but without TLS (only where a mesh already encrypts pod "
          "traffic, e.g. in-cluster mTLS)");
  t.Add("allow_unauthenticated_loopback", &o->allow_unauthenticated_loopback,
        "without --token-file, serve a loopback --listen without any token (every local user may submit, cancel and "
        "read logs); by default a token is generated in <state-dir>/token (mode 0600)")
      .Flag("--allow-unauthenticated-loopback")
      .Doc(
          "without `token_file`, serve a loopback `listen` with no token at all (default: require the generated "
          "`<state_dir>/token`; see Security)");
  t.Add("allow_unauthenticated_metrics", &o->allow_unauthenticated_metrics,
        "serve /metrics and /sd on a non-loopback address without the bearer token")
      .Flag("--allow-unauthenticated-metrics")
      .Doc("serve `/metrics` and `/sd` on a non-loopback `metrics_listen` without the token");
  t.Add("launcher", &o->launcher, "local | slurm | none (none: never start jobs; benchmarks)")
      .Flag("--launcher")
      .Choices({"local", "slurm", "none"})
      .Doc("`local` (mpirun), `slurm` (sbatch/srun), `none` (never start jobs: benchmarks)");
  t.Add("worker_binary", &o->worker_binary, "vicreg_worker to launch (default: next to this binary)")
      .Flag("--worker-binary")
      .DefaultDoc("next to the coordinator")
      .Doc("`vicreg_worker`: `<dir>/vicreg_worker`, `<dir>/../worker/vicreg_worker` (build tree), then `PATH`");
  t.Add("eval_binary", &o->eval_binary, "vicreg_eval for scheduled evaluation ('off' disables)")
      .Flag("--eval-binary")
      .DefaultDoc("next to the coordinator")
      .Doc(
          "`vicreg_eval` (`<dir>/../worker/eval/vicreg_eval` in the build tree, then `PATH`); `off` disables "
          "scheduled evaluation");
  t.Add("shim_binary", &o->shim_binary, "vicreg_job_shim (default: next to this binary)")
      .Flag("--shim-binary")
      .DefaultDoc("next to the coordinator")
      .Doc("`vicreg_job_shim` (see Launchers)");
  t.Add("workdir", &o->workdir, "working directory of the ranks (relative data paths resolve here)")
      .Flag("--workdir")
      .DefaultDoc("the coordinator's cwd")
      .Doc(
          "working directory of ranks and evals: **relative paths in job files (`data.data_dir`, ...) resolve "
          "here**");
  t.Add("mpirun", &o->mpirun, "mpirun executable").Flag("--mpirun").Doc("local launcher: the mpirun executable");
  t.Add("mpirun_args", &o->mpirun_args, "extra mpirun arguments")
      .Doc("local launcher: extra arguments (e.g. `[--mca, btl_tcp_if_include, eth0]`)");
  t.Add("slurm.partition", &o->slurm_partition, "sbatch --partition").Doc("Slurm launcher: `sbatch --partition`");
  t.Add("slurm.account", &o->slurm_account, "sbatch --account").Doc("Slurm launcher: `sbatch --account`");
  t.Add("slurm.srun_mpi", &o->slurm_srun_mpi, "srun --mpi=<this>").Doc("Slurm launcher: `srun --mpi=<this>`");
  t.Add("slurm.sbatch_args", &o->slurm_sbatch_args, "extra sbatch arguments")
      .Doc("Slurm launcher: extra sbatch arguments (e.g. `[--time=2-00:00:00]`)");
  t.Add("slurm.srun_args", &o->slurm_srun_args, "extra srun arguments")
      .Doc("Slurm launcher: extra srun arguments (e.g. `[--cpus-per-task=8]`)");
  t.Add("slurm.job_name_prefix", &o->slurm_job_name_prefix,
        "Slurm launcher: job names <prefix>-<job id>-a<n> (unique per coordinator and user)")
      .Flag("--slurm-job-name-prefix")
      .Doc(
          "Slurm job names `<prefix>-<job id>-a<n>`: 1-64 characters from `A-Z a-z 0-9 _ .`, unique per "
          "coordinator and user");
  t.Add("slurm.squeue_interval_s", &o->slurm_squeue_interval_s,
        "Slurm launcher: seconds between squeue calls (one call for every job)")
      .Flag("--slurm-squeue-interval")
      .Range(0, 3600)
      .Doc("seconds between `squeue` calls (one call for ALL jobs)");
  t.Add("slurm.command_timeout_s", &o->slurm_command_timeout_s, "sbatch/squeue/scancel/sacct timeout")
      .Range(1, 3600)
      .Doc("seconds an `sbatch`/`squeue`/`scancel`/`sacct` call may take");
  t.Add("slurm.max_submitted_jobs", &o->slurm_max_submitted_jobs, "Slurm launcher: most jobs handed to Slurm at a time")
      .Flag("--slurm-max-submitted-jobs")
      .Range(1, 1000000)
      .Doc("jobs handed to Slurm at a time (the rest wait QUEUED in the coordinator)");
  t.Add("slurm.sbatch", &o->slurm_sbatch, "sbatch command").Doc("the `sbatch` command (a name in `PATH` or a path)");
  t.Add("slurm.squeue", &o->slurm_squeue, "squeue command").Doc("the `squeue` command");
  t.Add("slurm.scancel", &o->slurm_scancel, "scancel command").Doc("the `scancel` command");
  t.Add("slurm.sacct", &o->slurm_sacct, "sacct command").Doc("the `sacct` command");
  t.Add("slurm.srun", &o->slurm_srun, "srun command").Doc("the `srun` command (run by the batch script)");
  t.Add("max_queue_wait_s", &o->max_queue_wait_s,
        "seconds an attempt may wait in the cluster queue before its job fails (0 = no limit)")
      .Flag("--max-queue-wait")
      .Range(0, 365.0 * 24 * 3600)
      .Doc(
          "an attempt waiting longer in the cluster's queue (Slurm PENDING) ends its job FAILED with that cause, not "
          "restarted (0 = no limit; a job's own `max_queue_wait_s` may ask for less)");
  t.Add("no_progress_timeout_s", &o->no_progress_timeout_s,
        "seconds without a step advance before an attempt is declared stalled (0 = off)")
      .Flag("--no-progress-timeout")
      .Range(0, 7 * 24 * 3600)
      .Doc(
          "an attempt whose `progress.json` step does not advance for this long is stopped and restarted (0 = off; "
          "it also covers start-up, never a wait in the cluster's queue)");
  t.Add("stop_grace_s", &o->stop_grace_s, "seconds between SIGTERM and SIGKILL")
      .Flag("--stop-grace")
      .Range(0, 3600)
      .Doc("SIGTERM -> SIGKILL delay when stopping ranks");
  t.Add("restart_backoff_s", &o->restart_backoff_s, "seconds before restarting a failed attempt")
      .Flag("--restart-backoff")
      .Range(0, 3600)
      .Doc("delay before the next attempt");
  t.Add("poll_interval_s", &o->poll_interval_s, "seconds between checks of running jobs")
      .Flag("--poll-interval")
      .Range(0.01, 60)
      .Doc("how often running jobs are checked");
  t.Add("max_ranks_per_job", &o->max_ranks_per_job, "largest resources.ranks accepted")
      .Flag("--max-ranks-per-job")
      .Range(1, 4096)
      .Doc("larger `resources.ranks` is INVALID_ARGUMENT");
  t.Add("max_request_bytes", &o->max_request_bytes, "largest gRPC request accepted")
      .Flag("--max-request-bytes")
      .Range(1024, 64 * 1024 * 1024)
      .Doc("gRPC max receive message size (larger: RESOURCE_EXHAUSTED)");
  t.Add("max_page_size", &o->max_page_size, "most jobs returned by one ListJobs")
      .Flag("--max-page-size")
      .Range(1, 100000)
      .Doc("most jobs per ListJobs page (larger requests are clamped)");
  t.Add("max_streams", &o->max_streams,
        "most concurrent WatchJob/StreamLogs streams (each holds a server thread; more: RESOURCE_EXHAUSTED)")
      .Flag("--max-streams")
      .Range(1, 10000)
      .Doc("concurrent `WatchJob` + `StreamLogs` streams (each holds a server thread); more: RESOURCE_EXHAUSTED");
  t.Add("max_streams_per_client", &o->max_streams_per_client, "most concurrent streams from one client address")
      .Flag("--max-streams-per-client")
      .Range(1, 10000)
      .Doc("of those, from one client address (at most `max_streams`)");
  t.Add("eval_slots", &o->eval_slots, "concurrent vicreg_eval processes (0 = no scheduled eval)")
      .Flag("--eval-slots")
      .Range(0, 256)
      .Doc(
          "evaluations launched at a time (running, or queued in the cluster; their own budget, not training "
          "slots); 0 = no scheduled evaluation");
  t.Add("eval_retry_backoff_s", &o->eval_retry_backoff_s, "seconds before retrying a failed evaluation")
      .Flag("--eval-retry-backoff")
      .Range(0, 24 * 3600)
      .Doc("delay before retrying a failed evaluation");
  t.Add("retention_days", &o->retention_days,
        "remove ended jobs (store rows, events, evaluations) this many days after they ended (0 = keep)")
      .Flag("--retention-days")
      .Range(0, 36500)
      .Doc(
          "ended jobs (SUCCEEDED, FAILED, CANCELLED) leave the store with their attempts, events and evaluations, "
          "the metrics and the coordinator's memory this many days after they ended (0 = keep; see Recovery, "
          "\"Retention\")");
  t.Add("retention_delete_run_dirs", &o->retention_delete_run_dirs,
        "with --retention-days: delete their run dirs (checkpoints, logs) too")
      .Flag("--retention-delete-run-dirs")
      .Doc("with `retention_days`: their run dirs (checkpoints, logs, evaluation output) are deleted too");
  t.Add("store_synchronous", &o->store_synchronous, "SQLite synchronous: normal | full")
      .Flag("--store-synchronous")
      .Choices({"normal", "full"})
      .Doc(
          "SQLite `synchronous`: `normal` survives a coordinator crash; `full` also a power loss (one fsync per "
          "change)");
  t.Add("log_level", &o->log_level, "trace | debug | info | warn | error")
      .Flag("--log-level")
      .Choices({"trace", "debug", "info", "warn", "error"})
      .Doc("log verbosity");
  return t;
}

// " (c.yaml, line 3, column 8)", " (from --slots)", or "" for a default.
std::string Origin(const CoordinatorOptions& o, const std::string& key) {
  auto it = o.origins.find(key);
  return it == o.origins.end() ? "" : it->second;
}

std::string FindNextToExe(const std::vector<std::string>& relative, const std::string& name) {
  std::string dir = SelfExeDir();
  for (const auto& rel : relative) {
    std::string p = dir + "/" + rel;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return FindInPath(name);
}

std::string Absolute(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  char buf[4096];
  if (!getcwd(buf, sizeof(buf))) return p;
  return std::string(buf) + "/" + p;
}

}  // namespace

void SplitHostPort(const std::string& s, const std::string& what, std::string* host, int* port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    throw UserError(what + ": expected HOST:PORT (e.g. 127.0.0.1:50051), got '" + s + "'");
  }
  std::string h = s.substr(0, colon);
  std::string p = s.substr(colon + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5 || std::stoi(p) > 65535) {
    throw UserError(what + ": port must be 0..65535, got '" + p + "' in '" + s + "'");
  }
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = h;
  *port = std::stoi(p);
}

bool MetricsNeedToken(const CoordinatorOptions& o) {
  if (o.metrics_listen == "off" || o.token_file.empty() || o.allow_unauthenticated_metrics) return false;
  std::string host;
  int port = 0;
  SplitHostPort(o.metrics_listen, "--metrics-port", &host, &port);
  return !IsLoopbackHost(host);
}

bool IsLoopbackHost(const std::string& host) {
  // Parsed, not matched by prefix: "127.example.org" is a host name that resolves anywhere.
  if (host == "localhost") return true;
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;  // 127.0.0.0/8
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;                 // ::1
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;  // ::ffff:127.x.y.z
  }
  return false;
}

void LoadCoordinatorConfig(const std::string& path, CoordinatorOptions* o) { Table(o).ReadFile(path, &o->origins); }

std::string CoordinatorConfigReference() {
  CoordinatorOptions defaults;
  return Table(&defaults).MarkdownReference();
}

bool ParseCoordinatorArgs(int argc, char** argv, CoordinatorOptions* o, int* exit_code) {
  // The config file is applied first so that flags override it (not for --version and
  // --config-reference: they read nothing).
  bool version = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version" || a == "--config-reference")
      version = true;
    else if (a == "--config" && i + 1 < argc)
      o->config_file = argv[i + 1];
    else if (a.rfind("--config=", 0) == 0)
      o->config_file = a.substr(9);
  }
  if (!o->config_file.empty() && !version) LoadCoordinatorConfig(o->config_file, o);

  CLI::App app{
      "vicreg_coordinator: accepts, queues, launches, restarts and evaluates VICReg training jobs "
      "(gRPC vicreg.v1.Coordinator). See docs/OPERATIONS.md.",
      "vicreg_coordinator"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  app.set_version_flag(
      "--version", [] { return VersionText("vicreg_coordinator"); }, kVersionFlagHelp);
  std::string config_ignored;
  app.add_option("--config", config_ignored, "YAML config file (keys as in docs/OPERATIONS.md \"Configuration\")");
  bool reference = false;
  app.add_flag("--config-reference", reference,
               "print the markdown table of every config key and flag (docs/OPERATIONS.md) and exit");
  config::SettingsTable table = Table(o);
  table.AddFlags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    *exit_code = app.exit(e);
    return false;
  } catch (const CLI::CallForVersion& e) {
    *exit_code = app.exit(e);
    return false;
  } catch (const CLI::ParseError& e) {
    std::cerr << "vicreg_coordinator: " << e.what() << "\n(run vicreg_coordinator --help for the flags)\n";
    *exit_code = kExitUsage;
    return false;
  }
  if (reference) {
    std::cout << CoordinatorConfigReference();
    *exit_code = kExitOk;
    return false;
  }
  table.RecordFlagOrigins(&o->origins);
  return true;
}

void FinalizeCoordinatorOptions(CoordinatorOptions* o) {
  // Bounds and choices of every key (the table), then the rules that involve several keys.
  if (!o->gpus.empty() && o->slots >= 0) {
    throw UserError("slots (--slots) " + std::to_string(o->slots) + Origin(*o, "slots") + " and gpus (--gpus) " +
                    o->gpus + Origin(*o, "gpus") + " exclude each other: choose CPU slots or GPU slots");
  }
  if (!o->gpus.empty()) {
    std::set<int> seen;
    std::stringstream ss(o->gpus);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 4 ||
          !seen.insert(std::stoi(item)).second) {
        throw UserError("gpus (--gpus): expected distinct GPU indices like 0,1,2,3, got '" + o->gpus + "'" +
                        Origin(*o, "gpus"));
      }
    }
    o->slots = 0;                                           // unused: the GPUs are the slots
  } else if (o->slots < 0 && !o->origins.count("slots")) {  // -1: not given
    o->slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (o->slots < 0 || o->slots > 4096) {
    throw UserError("slots (--slots): must be in [0, 4096], got " + std::to_string(o->slots) + Origin(*o, "slots"));
  }
  Table(o).Check(o->origins, "configuration");

  std::string host;
  int port = 0;
  SplitHostPort(o->listen, "listen (--listen)" + Origin(*o, "listen"), &host, &port);
  std::string metrics_host;  // "" when metrics_listen is off
  if (o->metrics_listen != "off") {
    if (o->metrics_listen.find(':') == std::string::npos) o->metrics_listen = "127.0.0.1:" + o->metrics_listen;
    int metrics_port = 0;
    SplitHostPort(o->metrics_listen, "metrics_listen (--metrics-port)" + Origin(*o, "metrics_listen"), &metrics_host,
                  &metrics_port);
  }
  if (o->max_streams_per_client > o->max_streams) {
    throw UserError("max_streams_per_client (--max-streams-per-client) " + std::to_string(o->max_streams_per_client) +
                    Origin(*o, "max_streams_per_client") + " is more than max_streams (--max-streams) " +
                    std::to_string(o->max_streams) + Origin(*o, "max_streams") + "; it must be at most that");
  }
  {
    const std::string& p = o->slurm_job_name_prefix;
    bool ok = !p.empty() && p.size() <= 64;
    for (char c : p)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.');
    if (!ok) {
      throw UserError(
          "slurm.job_name_prefix (--slurm-job-name-prefix): must be 1-64 characters from A-Z a-z 0-9 _ . "
          "(no '-'), got '" +
          p + "'" + Origin(*o, "slurm.job_name_prefix"));
    }
  }
  if (o->retention_delete_run_dirs && o->retention_days <= 0) {
    throw UserError("retention_delete_run_dirs (--retention-delete-run-dirs)" +
                    Origin(*o, "retention_delete_run_dirs") +
                    " needs retention_days (--retention-days: how long after a job ended), got 0");
  }
  if (o->tls_cert.empty() != o->tls_key.empty()) {
    throw UserError(
        "tls_cert (--tls-cert) and tls_key (--tls-key) go together (got only " +
        std::string(o->tls_cert.empty() ? "tls_key" + Origin(*o, "tls_key") : "tls_cert" + Origin(*o, "tls_cert")) +
        ")");
  }
  const std::pair<const char*, const std::string*> files[] = {
      {"tls_cert", &o->tls_cert}, {"tls_key", &o->tls_key}, {"token_file", &o->token_file}};
  for (const auto& [key, file] : files) {
    if (!file->empty() && access(file->c_str(), R_OK) != 0) {
      throw UserError(std::string(key) + ": cannot read " + *file + ": " + std::strerror(errno) + Origin(*o, key));
    }
  }
  if (!IsLoopbackHost(host) && o->token_file.empty()) {
    throw UserError("listen (--listen) " + o->listen + Origin(*o, "listen") +
                    " is reachable beyond this machine: a bearer token is required (--token-file FILE); "
                    "listen on 127.0.0.1 for local use");
  }
  if (!IsLoopbackHost(host) && o->tls_cert.empty() && !o->allow_insecure_token) {
    throw UserError("listen (--listen) " + o->listen + Origin(*o, "listen") +
                    " is reachable beyond this machine: TLS is required so that the bearer token is not sent in "
                    "cleartext (--tls-cert FILE --tls-key FILE); set allow_insecure_token: true "
                    "(--allow-insecure-token) only where a mesh already encrypts the traffic (in-cluster mTLS)");
  }
  if (o->metrics_listen != "off") {
    if (!IsLoopbackHost(metrics_host) && o->token_file.empty() && !o->allow_unauthenticated_metrics) {
      throw UserError("metrics_listen (--metrics-port) " + o->metrics_listen + Origin(*o, "metrics_listen") +
                      " is reachable beyond this machine: /metrics and /sd need the bearer token there "
                      "(--token-file FILE; Prometheus sends it with authorization: {credentials_file: ...}); set "
                      "allow_unauthenticated_metrics: true (--allow-unauthenticated-metrics) to serve them to "
                      "anyone, or bind it to 127.0.0.1");
    }
  }
  o->state_dir = Absolute(o->state_dir);
  if (o->db_path.empty()) o->db_path = o->state_dir + "/coordinator.db";
  o->db_path = Absolute(o->db_path);
  if (o->workdir.empty()) o->workdir = Absolute(".");
  o->workdir = Absolute(o->workdir);

  // Binaries: explicit paths must exist; defaults are looked up next to this executable
  // (the build tree: server/ beside worker/; an install: one bin/ directory), then in PATH.
  auto resolve = [o](std::string* path, const std::vector<std::string>& rel, const std::string& name,
                     const std::string& key, const std::string& flag, bool required) {
    if (path->empty()) {
      *path = FindNextToExe(rel, name);
      if (path->empty() && required) {
        throw UserError(key + " (" + flag + "): " + name + " not found next to vicreg_coordinator (" + SelfExeDir() +
                        ") nor in PATH; pass " + flag + " PATH or set " + key);
      }
      return;
    }
    std::string p = path->find('/') == std::string::npos ? FindInPath(*path) : Absolute(*path);
    if (p.empty() || access(p.c_str(), X_OK) != 0) {
      throw UserError(key + " (" + flag + "): '" + *path + "' is not an executable file" + Origin(*o, key));
    }
    *path = p;
  };
  bool launches = o->launcher != "none";
  resolve(&o->worker_binary, {"vicreg_worker", "../worker/vicreg_worker"}, "vicreg_worker", "worker_binary",
          "--worker-binary", launches);
  resolve(&o->shim_binary, {"vicreg_job_shim", "../server/vicreg_job_shim"}, "vicreg_job_shim", "shim_binary",
          "--shim-binary", launches);
  if (o->eval_binary == "off") {
    o->eval_binary.clear();
  } else {
    // Optional: without vicreg_eval, scheduled evaluation is disabled (logged at start).
    resolve(&o->eval_binary, {"vicreg_eval", "../worker/eval/vicreg_eval"}, "vicreg_eval", "eval_binary",
            "--eval-binary", false);
  }
}

}  // namespace vicreg::server
