// vicreg_worker: one process per rank (README.md "Command-line interface", docs/ARCHITECTURE.md).
//
//   vicreg_worker --job FILE | (--data_config F --train_config F --model_config F)
//                 [--device cpu|cuda] [--run-dir DIR] [--resume auto|none|PATH] [--max-steps N]
//                 [--metrics-port P] [--set key.path=value ...] [--job-id ID] [--log-level L]
//
// Order of work: parse flags and load + validate the whole config (nothing touches the disk before
// that), discover the rank, connect the ranks, create the run directory, start /metrics, train.
// Exit codes: 0 success; 2 invalid input (flags, config, dataset files, checkpoint) with the reason on
// stderr; 1 runtime failure (peer died, non-finite loss, disk full) and a run stopped by SIGTERM/SIGINT
// (it checkpoints first; result.json says "terminated by SIGTERM"; `--resume auto` continues it).
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "common/build_info.h"
#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/host_memory.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "worker/comm/communicator.h"
#include "worker/comm/torch_build_info.h"
#include "worker/data/dataset.h"
#include "worker/eval/online_monitor.h"
#include "worker/train/checkpoint.h"
#include "worker/train/run_dir.h"
#include "worker/train/stop_signal.h"
#include "worker/train/trainer.h"

namespace {

using vicreg::ConfigError;
using vicreg::RuntimeFailure;
using vicreg::UserError;

struct Flags {
  std::string job;
  std::string data_config, train_config, model_config;
  std::string device;
  std::string run_dir;
  std::string resume = "none";
  std::optional<int64_t> max_steps;
  std::optional<int> metrics_port;
  std::vector<std::string> sets;
  std::string job_id;
  std::string log_level = "info";
};

// All long options (for did-you-mean on a mistyped flag).
const std::vector<std::string> kFlagNames = {
    "--job",       "--data_config",  "--train_config", "--model_config", "--device",    "--run-dir", "--resume",
    "--max-steps", "--metrics-port", "--set",          "--job-id",       "--log-level", "--help"};

// "--lr" -> " (did you mean --set train.learning_rate=...?)"; "--run_dirr" -> " (did you mean --run-dir?)".
std::string Suggest(const std::string& arg) {
  std::string key = arg.substr(0, arg.find('='));
  std::string m = vicreg::config::ClosestMatch(key, kFlagNames);
  if (!m.empty()) return " (did you mean " + m + "?)";
  std::string bare = key;
  while (!bare.empty() && bare.front() == '-') bare.erase(0, 1);
  std::vector<std::string> leaves;
  std::vector<std::string> paths = vicreg::config::AllKeyPaths();
  for (const auto& p : paths) leaves.push_back(p.substr(p.rfind('.') + 1));
  m = vicreg::config::ClosestMatch(bare, leaves);
  if (m.empty()) return "";
  for (const auto& p : paths)
    if (p.substr(p.rfind('.') + 1) == m) return " (did you mean --set " + p + "=...?)";
  return "";
}

// Returns nullopt after printing help (exit 0) or throws UserError for bad usage.
std::optional<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "vicreg_worker: trains a VICReg encoder (one process per rank; run it under mpirun/srun for "
      "several ranks).\nExit codes: 0 success, 2 invalid input, 1 runtime failure or terminated."};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag(
      "--version", [] { return vicreg::VersionText("vicreg_worker", vicreg::comm::TorchBuildFields()); },
      vicreg::kVersionFlagHelp);
  app.add_option("--job", f.job, "Job file (all sections: resources, data, model, train, augment, checkpoint, ...)");
  app.add_option("--data_config,--data-config", f.data_config, "Seed form: data config YAML (-> data section)");
  app.add_option("--train_config,--train-config", f.train_config,
                 "Seed form: train config YAML (-> train section, with vicreg:)");
  app.add_option("--model_config,--model-config", f.model_config, "Seed form: model config YAML (-> model section)");
  app.add_option("--device", f.device, "cpu | cuda (overrides resources.device)");
  app.add_option("--run-dir,--run_dir", f.run_dir,
                 "Run directory (default runs/<name>-<UTC time>); re-using one that has checkpoints needs "
                 "--resume auto|PATH");
  app.add_option("--resume", f.resume,
                 "auto: newest valid checkpoint of the run dir (fresh start if none); none: fresh start "
                 "(default); PATH: exactly that checkpoint");
  app.add_option("--max-steps,--max_steps", f.max_steps,
                 "Stop after N global steps in total (writes a resumable checkpoint); sets train.max_steps");
  app.add_option("--metrics-port,--metrics_port", f.metrics_port,
                 "Port of this rank's /metrics (0 = a free port; otherwise port + local rank); sets metrics.port");
  app.add_option("--set", f.sets, "Override a config value: key.path=value (repeatable), e.g. train.batch_size=64")
      ->allow_extra_args(false)
      ->take_all();
  app.add_option("--job-id,--job_id", f.job_id, "Job id for metrics labels and logs (default: the job name)");
  app.add_option("--log-level,--log_level", f.log_level, "trace | debug | info | warn | error");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return std::nullopt;
  } catch (const CLI::ExtrasError& e) {
    std::string msg = e.what();
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) == 0 && !app.get_option_no_throw(a.substr(0, a.find('=')))) msg += Suggest(a);
    }
    throw UserError(msg + "\nRun vicreg_worker --help for the flags.");
  } catch (const CLI::ParseError& e) {
    throw UserError(std::string(e.what()) + "\nRun vicreg_worker --help for the flags.");
  }

  const bool seed_form = !f.data_config.empty() || !f.train_config.empty() || !f.model_config.empty();
  if (f.job.empty() && !seed_form)
    throw UserError("give the job as --job FILE, or the seed's --data_config F --train_config F --model_config F");
  if (!f.job.empty() && seed_form)
    throw UserError("--job cannot be combined with --data_config/--train_config/--model_config: use one form");
  if (!f.device.empty() && f.device != "cpu" && f.device != "cuda")
    throw UserError("--device: '" + f.device + "' is not valid; use cpu or cuda");
  static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error"};
  if (std::find(levels.begin(), levels.end(), f.log_level) == levels.end())
    throw UserError("--log-level: '" + f.log_level + "' is not valid; use trace, debug, info, warn or error");
  if (!f.job_id.empty() && !std::regex_match(f.job_id, std::regex("[A-Za-z0-9._-]{1,64}")))
    throw UserError("--job-id: '" + f.job_id + "' is not valid; use 1-64 characters from [A-Za-z0-9._-]");
  if (f.resume.empty()) throw UserError("--resume: empty; use auto, none or a checkpoint path");
  if (f.max_steps && *f.max_steps < 0)
    throw UserError("--max-steps: " + std::to_string(*f.max_steps) + " is negative; use N >= 1 (0 = all epochs)");
  return f;
}

vicreg::config::JobConfig LoadConfig(const Flags& f) {
  std::vector<std::string> overrides = f.sets;
  // Flags that set config values go through the same typed, range-checked path as --set.
  if (!f.device.empty()) overrides.push_back("resources.device=" + f.device);
  if (f.max_steps) overrides.push_back("train.max_steps=" + std::to_string(*f.max_steps));
  if (f.metrics_port) overrides.push_back("metrics.port=" + std::to_string(*f.metrics_port));
  if (!f.job.empty()) return vicreg::config::LoadJobFile(f.job, overrides);
  return vicreg::config::LoadSeedFiles(f.data_config, f.train_config, f.model_config, overrides);
}

// Checks on the run directory and the resume spec that need no writes (done before anything is created).
void CheckRunDirUsable(const std::string& run_dir, const std::string& resume) {
  if (resume != "auto" && resume != "none" && !vicreg::fs::Exists(resume))
    throw UserError("--resume " + resume + ": no such checkpoint file (use auto, none, or a path to a .pt file)");
  if (run_dir.empty()) return;
  if (vicreg::fs::Exists(run_dir)) {
    struct stat st {};
    if (::stat(run_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw UserError("--run-dir " + run_dir + ": exists and is not a directory");
    if (::access(run_dir.c_str(), W_OK) != 0) throw UserError("--run-dir " + run_dir + ": not writable");
    const std::string ck = run_dir + "/checkpoints";
    if (resume == "none" && vicreg::fs::Exists(ck)) {
      vicreg::train::CheckpointManager mgr({ck, 1, {}});
      if (!mgr.List().empty() || !mgr.Latest().empty())
        throw UserError("--run-dir " + run_dir +
                        " already holds checkpoints; continue it with --resume auto, or "
                        "start over in another --run-dir");
    }
  }
}

std::string UtcStamp(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

int Run(int argc, char** argv) {
  vicreg::TuneHostAllocator();  // before any thread starts (common/host_memory.h)
  // 1. Flags and config: all validation before anything touches the disk.
  std::optional<Flags> parsed;
  vicreg::config::JobConfig cfg;
  vicreg::comm::RankInfo rank;
  try {
    rank = vicreg::comm::DiscoverRank();
  } catch (const UserError& e) {
    std::cerr << "vicreg_worker: " << e.what() << "\n";
    return vicreg::kExitUsage;
  }
  const bool speak = rank.rank == 0;  // rank 0 prints input errors in full; the others one line
  try {
    parsed = ParseFlags(argc, argv);
    if (!parsed) return vicreg::kExitOk;
    cfg = LoadConfig(*parsed);
    CheckRunDirUsable(parsed->run_dir, parsed->resume);
    // Inputs the config names: open them now, so that a wrong path fails before the run dir exists.
    // (OpenDataset caches per process: the trainer reuses this instance.)
    vicreg::data::OpenDataset({cfg.data.dataset, cfg.data.data_dir, cfg.data.split, cfg.data.limit});
    if (!cfg.model.init_from.empty() && !vicreg::fs::Exists(cfg.model.init_from))
      throw UserError("model.init_from: " + cfg.model.init_from +
                      " does not exist (a timm-keyed encoder "
                      ".safetensors, e.g. from vicreg_eval export)");
  } catch (const UserError& e) {
    if (speak)
      std::cerr << "vicreg_worker: invalid input: " << e.what() << "\n";
    else
      std::cerr << "vicreg_worker rank " << rank.rank << ": invalid input (see rank 0)\n";
    return vicreg::kExitUsage;
  }
  const Flags& f = *parsed;
  const std::string job_id = f.job_id.empty() ? cfg.name : f.job_id;

  vicreg::LogOptions log;
  log.rank = rank.rank;
  log.world_size = rank.world_size;
  log.level = f.log_level;
  vicreg::InitLogging(log);
  vicreg::train::InstallStopHandlers();

  std::shared_ptr<vicreg::comm::Communicator> comm;
  std::unique_ptr<vicreg::train::RunDir> run_dir;
  auto start = std::chrono::steady_clock::now();
  auto fail = [&](int code, const std::string& reason) {
    spdlog::error("{}", reason);
    if (run_dir && rank.rank == 0) {
      try {
        vicreg::train::RunResult r;
        r.status = vicreg::contract::RunStatus::kFailed;
        r.reason = reason;
        r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        run_dir->WriteResult(r);
      } catch (const std::exception& e) {
        spdlog::error("could not write result.json: {}", e.what());
      }
    }
    spdlog::default_logger()->flush();
    // Peers may be blocked in a collective: take the whole job down instead of letting them time out.
    if (comm && comm->world_size() > 1) comm->Abort(code, reason);
    return code;
  };

  try {
    // 2. Devices, threads, communicator.
    const std::string device = vicreg::comm::DeviceForRank(rank, cfg.resources.device);
    if (cfg.resources.ranks != rank.world_size)
      spdlog::warn("resources.ranks is {} but the launcher started {} rank(s); the global batch is {} x {}",
                   cfg.resources.ranks, rank.world_size, rank.world_size, cfg.train.batch_size);
    vicreg::comm::CommunicatorOptions copts;
    copts.backend = cfg.resources.backend;
    copts.device = cfg.resources.device;
    copts.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.resources.collective_timeout_s * 1000));
    copts.rendezvous_dir = f.run_dir.empty() ? "" : f.run_dir + "/.rendezvous";
    comm = vicreg::comm::CreateCommunicator(rank, copts);

    // 3. Run directory (the default name uses rank 0's clock so all ranks agree).
    std::string root = f.run_dir;
    if (root.empty()) {
      at::Tensor stamp = at::full({1}, static_cast<int64_t>(std::time(nullptr)), at::kLong).to(comm->device());
      comm->Broadcast(stamp, 0);
      root = "runs/" + cfg.name + "-" + UtcStamp(stamp.cpu().item<int64_t>());
    }
    run_dir = std::make_unique<vicreg::train::RunDir>(root, rank.rank);
    run_dir->Create();
    log.file = run_dir->log_file(rank.rank);
    vicreg::InitLogging(log);
    spdlog::info(
        "vicreg_worker {} (rev {}) job '{}' rank {}/{} (local {}) from {} on {}, backend {}, device {}, "
        "run dir {}",
        vicreg::BuildVersion(), vicreg::BuildRevision(), job_id, rank.rank, rank.world_size, rank.local_rank,
        rank.source, HostName(), comm->backend(), device, root);
    if (rank.rank == 0) run_dir->WriteJobYaml(vicreg::config::ToYaml(cfg));

    // 4. This rank's /metrics endpoint.
    std::unique_ptr<vicreg::metrics::MetricsServer> server;
    std::unique_ptr<vicreg::metrics::WorkerMetrics> metrics;
    vicreg::train::EndpointInfo ep;
    ep.rank = rank.rank;
    ep.local_rank = rank.local_rank;
    ep.pid = ::getpid();
    ep.host = HostName();
    if (cfg.metrics.enabled) {
      const int port = cfg.metrics.port == 0 ? 0 : cfg.metrics.port + rank.local_rank;
      server = std::make_unique<vicreg::metrics::MetricsServer>(cfg.metrics.address, port);
      metrics = std::make_unique<vicreg::metrics::WorkerMetrics>(server->registry(), job_id, rank.rank);
      ep.metrics = server->endpoint();
      spdlog::info("metrics: {}", server->url());
    }
    run_dir->WriteEndpoint(ep);

    // 5. Train.
    vicreg::train::TrainerOptions topts;
    topts.resume = f.resume;
    topts.device = device;
    topts.online_monitors = vicreg::eval::MakeOnlineMonitor;
    vicreg::train::Trainer trainer(cfg, rank, comm, run_dir.get(), metrics.get(), topts);
    vicreg::train::RunResult result = trainer.Run();
    result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rank.rank == 0) run_dir->WriteResult(result);
    spdlog::info("finished: {}{}{} at step {} (epoch {}), {:.1f} s", vicreg::contract::RunStatusName(result.status),
                 result.reason.empty() ? "" : ": ", result.reason, result.step, result.epoch, result.wall_s);
    spdlog::default_logger()->flush();
    comm->Barrier();
    return result.status == vicreg::contract::RunStatus::kSucceeded ? vicreg::kExitOk : vicreg::kExitFailure;
  } catch (const ConfigError& e) {
    return fail(vicreg::kExitUsage, std::string("invalid input: ") + e.what());
  } catch (const UserError& e) {
    return fail(vicreg::kExitUsage, std::string("invalid input: ") + e.what());
  } catch (const RuntimeFailure& e) {
    return fail(vicreg::kExitFailure, std::string("runtime failure: ") + e.what());
  } catch (const std::exception& e) {
    return fail(vicreg::kExitFailure, std::string("internal error: ") + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
