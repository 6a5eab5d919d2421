#include "server/coordinator_options.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstring>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "common/build_info.h"
#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

const std::vector<std::string>& TopKeys() {
  static const std::vector<std::string> k = {"listen",
                                             "state_dir",
                                             "db_path",
                                             "slots",
                                             "gpus",
                                             "metrics_listen",
                                             "token_file",
                                             "tls_cert",
                                             "tls_key",
                                             "allow_insecure_token",
                                             "allow_unauthenticated_loopback",
                                             "allow_unauthenticated_metrics",
                                             "launcher",
                                             "worker_binary",
                                             "eval_binary",
                                             "shim_binary",
                                             "workdir",
                                             "mpirun",
                                             "mpirun_args",
                                             "slurm",
                                             "poll_interval_s",
                                             "no_progress_timeout_s",
                                             "max_queue_wait_s",
                                             "stop_grace_s",
                                             "restart_backoff_s",
                                             "max_ranks_per_job",
                                             "max_request_bytes",
                                             "max_page_size",
                                             "max_streams",
                                             "max_streams_per_client",
                                             "eval_slots",
                                             "eval_retry_backoff_s",
                                             "store_synchronous",
                                             "retention_days",
                                             "retention_delete_run_dirs",
                                             "log_level"};
  return k;
}
const std::vector<std::string>& SlurmKeys() {
  static const std::vector<std::string> k = {"partition",
                                             "account",
                                             "srun_mpi",
                                             "sbatch_args",
                                             "srun_args",
                                             "job_name_prefix",
                                             "squeue_interval_s",
                                             "command_timeout_s",
                                             "max_submitted_jobs",
                                             "sbatch",
                                             "squeue",
                                             "scancel",
                                             "sacct",
                                             "srun"};
  return k;
}

std::string Where(const std::string& path, const YAML::Node& n) {
  return path + ":" + std::to_string(n.Mark().line + 1);
}

template <typename T>
T As(const YAML::Node& n, const std::string& key, const std::string& path, const char* type) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    std::ostringstream v;
    v << n;
    throw UserError(Where(path, n) + ": " + key + ": must be " + type + ", got '" + v.str() + "'");
  }
}

std::vector<std::string> AsList(const YAML::Node& n, const std::string& key, const std::string& path) {
  if (!n.IsSequence()) throw UserError(Where(path, n) + ": " + key + ": must be a list of strings");
  std::vector<std::string> out;
  for (const auto& item : n) out.push_back(As<std::string>(item, key, path, "a string"));
  return out;
}

void UnknownKey(const std::string& path, const YAML::Node& where, const std::string& key,
                const std::vector<std::string>& valid, const std::string& prefix) {
  std::string close = config::ClosestMatch(key, valid);
  throw UserError(Where(path, where) + ": unknown key '" + prefix + key + "'" +
                  (close.empty() ? "" : " (did you mean '" + prefix + close + "'?)") + "; valid keys: " + [&] {
                    std::string s;
                    for (const auto& v : valid) s += (s.empty() ? "" : ", ") + v;
                    return s;
                  }());
}

// Integers written by users are checked here rather than by CLI11 so that the config file and
// the flags give the same messages.
void CheckRange(const std::string& what, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) {
    std::ostringstream os;
    os << what << ": must be in [" << lo << ", " << hi << "], got " << v;
    throw UserError(os.str());
  }
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
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;  // ::1
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;  // ::ffff:127.x.y.z
  }
  return false;
}

void LoadCoordinatorConfig(const std::string& path, CoordinatorOptions* o) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw UserError("--config " + path + ": cannot read the file");
  } catch (const YAML::Exception& e) {
    throw UserError("--config " + path + ": not valid YAML: " + e.what());
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) throw UserError("--config " + path + ": must be a mapping of keys to values");
  for (const auto& kv : root) {
    const std::string key = As<std::string>(kv.first, "a key", path, "a plain name");  // not a list or map
    const YAML::Node& v = kv.second;
    auto str = [&](std::string* out) { *out = As<std::string>(v, key, path, "a string"); };
    auto num = [&](double* out) { *out = As<double>(v, key, path, "a number"); };
    auto integer = [&](int* out) { *out = As<int>(v, key, path, "an integer"); };
    if (key == "listen")
      str(&o->listen);
    else if (key == "state_dir")
      str(&o->state_dir);
    else if (key == "db_path")
      str(&o->db_path);
    else if (key == "max_queue_wait_s")
      num(&o->max_queue_wait_s);
    else if (key == "slots")
      integer(&o->slots);
    else if (key == "gpus") {
      if (v.IsSequence()) {
        std::string s;
        for (const auto& g : v)
          s += (s.empty() ? "" : ",") + std::to_string(As<int>(g, key, path, "a list of integers"));
        o->gpus = s;
      } else {
        str(&o->gpus);
      }
    } else if (key == "metrics_listen")
      str(&o->metrics_listen);
    else if (key == "token_file")
      str(&o->token_file);
    else if (key == "tls_cert")
      str(&o->tls_cert);
    else if (key == "tls_key")
      str(&o->tls_key);
    else if (key == "allow_insecure_token")
      o->allow_insecure_token = As<bool>(v, key, path, "true or false");
    else if (key == "allow_unauthenticated_loopback")
      o->allow_unauthenticated_loopback = As<bool>(v, key, path, "true or false");
    else if (key == "allow_unauthenticated_metrics")
      o->allow_unauthenticated_metrics = As<bool>(v, key, path, "true or false");
    else if (key == "launcher")
      str(&o->launcher);
    else if (key == "worker_binary")
      str(&o->worker_binary);
    else if (key == "eval_binary")
      str(&o->eval_binary);
    else if (key == "shim_binary")
      str(&o->shim_binary);
    else if (key == "workdir")
      str(&o->workdir);
    else if (key == "mpirun")
      str(&o->mpirun);
    else if (key == "mpirun_args")
      o->mpirun_args = AsList(v, key, path);
    else if (key == "poll_interval_s")
      num(&o->poll_interval_s);
    else if (key == "no_progress_timeout_s")
      num(&o->no_progress_timeout_s);
    else if (key == "stop_grace_s")
      num(&o->stop_grace_s);
    else if (key == "restart_backoff_s")
      num(&o->restart_backoff_s);
    else if (key == "max_ranks_per_job")
      integer(&o->max_ranks_per_job);
    else if (key == "max_request_bytes")
      integer(&o->max_request_bytes);
    else if (key == "max_page_size")
      integer(&o->max_page_size);
    else if (key == "max_streams")
      integer(&o->max_streams);
    else if (key == "max_streams_per_client")
      integer(&o->max_streams_per_client);
    else if (key == "eval_slots")
      integer(&o->eval_slots);
    else if (key == "eval_retry_backoff_s")
      num(&o->eval_retry_backoff_s);
    else if (key == "store_synchronous")
      str(&o->store_synchronous);
    else if (key == "retention_days")
      num(&o->retention_days);
    else if (key == "retention_delete_run_dirs")
      o->retention_delete_run_dirs = As<bool>(v, key, path, "true or false");
    else if (key == "log_level")
      str(&o->log_level);
    else if (key == "slurm") {
      if (!v.IsMap()) throw UserError(Where(path, v) + ": slurm: must be a mapping");
      for (const auto& skv : v) {
        const std::string sk = As<std::string>(skv.first, "a slurm key", path, "a plain name");
        const YAML::Node& sv = skv.second;
        const std::string full = "slurm." + sk;
        if (sk == "partition")
          o->slurm_partition = As<std::string>(sv, full, path, "a string");
        else if (sk == "account")
          o->slurm_account = As<std::string>(sv, full, path, "a string");
        else if (sk == "srun_mpi")
          o->slurm_srun_mpi = As<std::string>(sv, full, path, "a string");
        else if (sk == "sbatch_args")
          o->slurm_sbatch_args = AsList(sv, full, path);
        else if (sk == "srun_args")
          o->slurm_srun_args = AsList(sv, full, path);
        else if (sk == "job_name_prefix")
          o->slurm_job_name_prefix = As<std::string>(sv, full, path, "a string");
        else if (sk == "squeue_interval_s")
          o->slurm_squeue_interval_s = As<double>(sv, full, path, "a number");
        else if (sk == "command_timeout_s")
          o->slurm_command_timeout_s = As<double>(sv, full, path, "a number");
        else if (sk == "max_submitted_jobs")
          o->slurm_max_submitted_jobs = As<int>(sv, full, path, "an integer");
        else if (sk == "sbatch")
          o->slurm_sbatch = As<std::string>(sv, full, path, "a string");
        else if (sk == "squeue")
          o->slurm_squeue = As<std::string>(sv, full, path, "a string");
        else if (sk == "scancel")
          o->slurm_scancel = As<std::string>(sv, full, path, "a string");
        else if (sk == "sacct")
          o->slurm_sacct = As<std::string>(sv, full, path, "a string");
        else if (sk == "srun")
          o->slurm_srun = As<std::string>(sv, full, path, "a string");
        else
          UnknownKey(path, skv.first, sk, SlurmKeys(), "slurm.");
      }
    } else {
      UnknownKey(path, kv.first, key, TopKeys(), "");
    }
  }
}

bool ParseCoordinatorArgs(int argc, char** argv, CoordinatorOptions* o, int* exit_code) {
  // The config file is applied first so that flags override it (not for --version: it reads nothing).
  bool version = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version")
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
  app.set_version_flag("--version", [] { return VersionText("vicreg_coordinator"); }, kVersionFlagHelp);
  std::string config_ignored;
  app.add_option("--config", config_ignored, "YAML config file (keys as the long flags with underscores)");
  app.add_option("--listen", o->listen, "gRPC address HOST:PORT (port 0 = a free one)")->capture_default_str();
  app.add_option("--state-dir", o->state_dir, "state directory (runs/<job_id>; the SQLite store unless --db-path)")
      ->capture_default_str();
  app.add_option("--db-path", o->db_path,
                 "SQLite store file (default <state-dir>/coordinator.db); keep it on a local disk, never on NFS");
  app.add_option("--slots", o->slots, "number of CPU slots (one rank each); default: number of cores");
  app.add_option("--gpus", o->gpus, "GPU slots by index, e.g. 0,1,2,3 (one rank per GPU)");
  app.add_option("--metrics-port,--metrics-listen", o->metrics_listen,
                 "[HOST:]PORT of /metrics and /sd (Prometheus HTTP SD); 'off' disables")
      ->capture_default_str();
  app.add_option("--token-file", o->token_file, "file holding the bearer token clients must send");
  app.add_option("--tls-cert", o->tls_cert, "PEM certificate chain (enables TLS with --tls-key)");
  app.add_option("--tls-key", o->tls_key, "PEM private key");
  app.add_flag("--allow-insecure-token", o->allow_insecure_token,
               "accept a non-loopback --listen with a token but without TLS (the token travels in cleartext: "
               "only behind a TLS-terminating mesh)");
  app.add_flag("--allow-unauthenticated-loopback", o->allow_unauthenticated_loopback,
               "without --token-file, serve a loopback --listen without any token (every local user may submit, "
               "cancel and read logs); by default a token is generated in <state-dir>/token (mode 0600)");
  app.add_flag("--allow-unauthenticated-metrics", o->allow_unauthenticated_metrics,
               "serve /metrics and /sd on a non-loopback address without the bearer token");
  app.add_option("--launcher", o->launcher, "local | slurm | none (none: never start jobs; benchmarks)")
      ->capture_default_str();
  app.add_option("--worker-binary", o->worker_binary, "vicreg_worker to launch (default: next to this binary)");
  app.add_option("--eval-binary", o->eval_binary, "vicreg_eval for scheduled evaluation ('off' disables)");
  app.add_option("--shim-binary", o->shim_binary, "vicreg_job_shim (default: next to this binary)");
  app.add_option("--workdir", o->workdir, "working directory of the ranks (relative data paths resolve here)");
  app.add_option("--mpirun", o->mpirun, "mpirun executable")->capture_default_str();
  app.add_option("--no-progress-timeout", o->no_progress_timeout_s,
                 "seconds without a step advance before an attempt is declared stalled (0 = off)")
      ->capture_default_str();
  app.add_option("--max-queue-wait", o->max_queue_wait_s,
                 "seconds an attempt may wait in the cluster queue before its job fails (0 = no limit)")
      ->capture_default_str();
  app.add_option("--slurm-squeue-interval", o->slurm_squeue_interval_s,
                 "Slurm launcher: seconds between squeue calls (one call for every job)")
      ->capture_default_str();
  app.add_option("--slurm-max-submitted-jobs", o->slurm_max_submitted_jobs,
                 "Slurm launcher: most jobs handed to Slurm at a time")
      ->capture_default_str();
  app.add_option("--slurm-job-name-prefix", o->slurm_job_name_prefix,
                 "Slurm launcher: job names <prefix>-<job id>-a<n> (unique per coordinator and user)")
      ->capture_default_str();
  app.add_option("--stop-grace", o->stop_grace_s, "seconds between SIGTERM and SIGKILL")->capture_default_str();
  app.add_option("--restart-backoff", o->restart_backoff_s, "seconds before restarting a failed attempt")
      ->capture_default_str();
  app.add_option("--poll-interval", o->poll_interval_s, "seconds between checks of running jobs")
      ->capture_default_str();
  app.add_option("--max-ranks-per-job", o->max_ranks_per_job, "largest resources.ranks accepted")
      ->capture_default_str();
  app.add_option("--max-request-bytes", o->max_request_bytes, "largest gRPC request accepted")->capture_default_str();
  app.add_option("--max-page-size", o->max_page_size, "most jobs returned by one ListJobs")->capture_default_str();
  app.add_option("--max-streams", o->max_streams,
                 "most concurrent WatchJob/StreamLogs streams (each holds a server thread; more: RESOURCE_EXHAUSTED)")
      ->capture_default_str();
  app.add_option("--max-streams-per-client", o->max_streams_per_client,
                 "most concurrent streams from one client address")
      ->capture_default_str();
  app.add_option("--eval-slots", o->eval_slots, "concurrent vicreg_eval processes (0 = no scheduled eval)")
      ->capture_default_str();
  app.add_option("--eval-retry-backoff", o->eval_retry_backoff_s, "seconds before retrying a failed evaluation")
      ->capture_default_str();
  app.add_option("--store-synchronous", o->store_synchronous, "SQLite synchronous: normal | full")
      ->capture_default_str();
  app.add_option("--log-level", o->log_level, "trace | debug | info | warn | error")->capture_default_str();
  app.add_option("--retention-days", o->retention_days,
                 "remove ended jobs (store rows, events, evaluations) this many days after they ended (0 = keep)")
      ->capture_default_str();
  app.add_flag("--retention-delete-run-dirs", o->retention_delete_run_dirs,
               "with --retention-days: delete their run dirs (checkpoints, logs) too");
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
  return true;
}

void FinalizeCoordinatorOptions(CoordinatorOptions* o) {
  std::string host;
  int port = 0;
  SplitHostPort(o->listen, "--listen", &host, &port);
  if (o->metrics_listen != "off") {
    if (o->metrics_listen.find(':') == std::string::npos) o->metrics_listen = "127.0.0.1:" + o->metrics_listen;
    std::string mh;
    int mp = 0;
    SplitHostPort(o->metrics_listen, "--metrics-port", &mh, &mp);
  }
  if (!o->gpus.empty() && o->slots >= 0) {
    throw UserError("--slots " + std::to_string(o->slots) + " and --gpus " + o->gpus +
                    " exclude each other: choose CPU slots or GPU slots");
  }
  if (!o->gpus.empty()) {
    std::set<int> seen;
    std::stringstream ss(o->gpus);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos || item.size() > 4 ||
          !seen.insert(std::stoi(item)).second) {
        throw UserError("--gpus: expected distinct GPU indices like 0,1,2,3, got '" + o->gpus + "'");
      }
    }
  } else if (o->slots < 0) {
    o->slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  CheckRange("--slots", o->gpus.empty() ? o->slots : 0, 0, 4096);
  if (o->launcher != "local" && o->launcher != "slurm" && o->launcher != "none") {
    throw UserError("--launcher: must be local, slurm or none, got '" + o->launcher + "'");
  }
  CheckRange("--poll-interval", o->poll_interval_s, 0.01, 60);
  CheckRange("--no-progress-timeout", o->no_progress_timeout_s, 0, 7 * 24 * 3600);
  CheckRange("--stop-grace", o->stop_grace_s, 0, 3600);
  CheckRange("--restart-backoff", o->restart_backoff_s, 0, 3600);
  CheckRange("--max-ranks-per-job", o->max_ranks_per_job, 1, 4096);
  CheckRange("--max-request-bytes", o->max_request_bytes, 1024, 64 * 1024 * 1024);
  CheckRange("--max-page-size", o->max_page_size, 1, 100000);
  CheckRange("--max-streams", o->max_streams, 1, 10000);
  CheckRange("--max-streams-per-client", o->max_streams_per_client, 1, o->max_streams);
  CheckRange("--eval-slots", o->eval_slots, 0, 256);
  CheckRange("--eval-retry-backoff", o->eval_retry_backoff_s, 0, 24 * 3600);
  CheckRange("--max-queue-wait", o->max_queue_wait_s, 0, 365.0 * 24 * 3600);
  CheckRange("slurm.squeue_interval_s", o->slurm_squeue_interval_s, 0, 3600);
  CheckRange("slurm.command_timeout_s", o->slurm_command_timeout_s, 1, 3600);
  CheckRange("slurm.max_submitted_jobs", o->slurm_max_submitted_jobs, 1, 1000000);
  {
    const std::string& p = o->slurm_job_name_prefix;
    bool ok = !p.empty() && p.size() <= 64;
    for (char c : p)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.');
    if (!ok) {
      throw UserError("slurm.job_name_prefix: must be 1-64 characters from A-Z a-z 0-9 _ . (no '-'), got '" + p + "'");
    }
  }
  CheckRange("--retention-days", o->retention_days, 0, 36500);
  if (o->retention_delete_run_dirs && o->retention_days <= 0) {
    throw UserError("--retention-delete-run-dirs needs --retention-days (how long after a job ended), got 0");
  }
  if (o->store_synchronous != "normal" && o->store_synchronous != "full") {
    throw UserError("--store-synchronous: must be normal or full, got '" + o->store_synchronous + "'");
  }
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (!kLevels.count(o->log_level)) {
    throw UserError("--log-level: must be trace, debug, info, warn or error, got '" + o->log_level + "'");
  }
  if (o->tls_cert.empty() != o->tls_key.empty()) {
    throw UserError("--tls-cert and --tls-key go together (got only " +
                    std::string(o->tls_cert.empty() ? "--tls-key" : "--tls-cert") + ")");
  }
  for (const auto* f : {&o->tls_cert, &o->tls_key, &o->token_file}) {
    if (!f->empty() && access(f->c_str(), R_OK) != 0) {
      throw UserError("cannot read " + *f + ": " + std::strerror(errno));
    }
  }
  if (!IsLoopbackHost(host) && o->token_file.empty()) {
    throw UserError("--listen " + o->listen +
                    " is reachable beyond this machine: a bearer token is required (--token-file FILE); "
                    "listen on 127.0.0.1 for local use");
  }
  if (!IsLoopbackHost(host) && o->tls_cert.empty() && !o->allow_insecure_token) {
    throw UserError("--listen " + o->listen +
                    " is reachable beyond this machine: TLS is required so that the bearer token is not sent in "
                    "cleartext (--tls-cert FILE --tls-key FILE); set allow_insecure_token: true "
                    "(--allow-insecure-token) only where a mesh already encrypts the traffic (in-cluster mTLS)");
  }
  if (o->metrics_listen != "off") {
    std::string mh;
    int mp = 0;
    SplitHostPort(o->metrics_listen, "--metrics-port", &mh, &mp);
    if (!IsLoopbackHost(mh) && o->token_file.empty() && !o->allow_unauthenticated_metrics) {
      throw UserError("--metrics-port " + o->metrics_listen +
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
  auto resolve = [](std::string* path, const std::vector<std::string>& rel, const std::string& name,
                    const std::string& flag, bool required) {
    if (path->empty()) {
      *path = FindNextToExe(rel, name);
      if (path->empty() && required) {
        throw UserError(flag + ": " + name + " not found next to vicreg_coordinator (" + SelfExeDir() +
                        ") nor in PATH; pass " + flag + " PATH");
      }
      return;
    }
    std::string p = path->find('/') == std::string::npos ? FindInPath(*path) : Absolute(*path);
    if (p.empty() || access(p.c_str(), X_OK) != 0) {
      throw UserError(flag + ": '" + *path + "' is not an executable file");
    }
    *path = p;
  };
  bool launches = o->launcher != "none";
  resolve(&o->worker_binary, {"vicreg_worker", "../worker/vicreg_worker"}, "vicreg_worker", "--worker-binary",
          launches);
  resolve(&o->shim_binary, {"vicreg_job_shim", "../server/vicreg_job_shim"}, "vicreg_job_shim", "--shim-binary",
          launches);
  if (o->eval_binary == "off") {
    o->eval_binary.clear();
  } else {
    // Optional: without vicreg_eval, scheduled evaluation is disabled (logged at start).
    resolve(&o->eval_binary, {"vicreg_eval", "../worker/eval/vicreg_eval"}, "vicreg_eval", "--eval-binary", false);
  }
}

}  // namespace vicreg::server
