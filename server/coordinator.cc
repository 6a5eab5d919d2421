#include "server/coordinator.h"

#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/errors.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/run_contract.h"
#include "server/eval_runner.h"
#include "server/http/web_ui.h"
#include "server/job_manager.h"
#include "server/launcher.h"
#include "server/process.h"
#include "server/scheduler.h"
#include "server/service.h"
#include "server/store.h"

namespace vicreg::server {

namespace {

// The generated local token: created once (O_EXCL, mode 0600, 256 random bits as hex) and reused
// by every later start on this state dir. A token file others can read is refused.
std::string LoadOrCreateLocalToken(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    unsigned char raw[32];
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    if (!urandom.read(reinterpret_cast<char*>(raw), sizeof raw)) {
      ::close(fd);
      ::unlink(path.c_str());
      throw RuntimeFailure("cannot read /dev/urandom to generate " + path);
    }
    static const char* hex = "0123456789abcdef";
    std::string t;
    for (unsigned char c : raw) {
      t.push_back(hex[c >> 4]);
      t.push_back(hex[c & 15]);
    }
    const std::string line = t + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      throw RuntimeFailure("cannot write " + path + ": " + std::strerror(errno));
    }
    spdlog::info("vicreg_coordinator: generated the local access token {} (mode 0600)", path);
    return t;
  }
  if (errno != EEXIST) throw RuntimeFailure("cannot create " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw RuntimeFailure(path + " is not a regular file: remove it (a new token is generated at the next start)");
  }
  if ((st.st_mode & 0077) != 0 || st.st_uid != ::geteuid()) {
    throw RuntimeFailure(path + " is readable or owned by another user (mode " + [&] {
      char b[8];
      std::snprintf(b, sizeof b, "%o", st.st_mode & 0777);
      return std::string(b);
    }() + "): chmod 600 it, or remove it to generate a new token");
  }
  std::string t = fs::ReadFile(path);
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.size() < 16 || t.find_first_of(" \t\r\n") != std::string::npos) {
    throw RuntimeFailure(path + " does not hold a token: remove it to generate a new one");
  }
  return t;
}

}  // namespace

struct Coordinator::Impl {
  CoordinatorOptions o;
  int lock_fd = -1;
  int db_lock_fd = -1;
  std::string token;
  std::string token_file;  // the generated local token's file ("" when configured or none)
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::unique_ptr<metrics::CoordinatorMetrics> metrics;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<web::WebUi> web;  // on metrics_server's port; reads the store
  std::unique_ptr<Launcher> launcher;
  std::unique_ptr<EvalRunner> evals;
  std::unique_ptr<JobManager> manager;
  std::unique_ptr<CoordinatorService> service;
  std::unique_ptr<grpc::Server> server;
  std::string grpc_address;
  std::mutex mu;
  std::condition_variable cv;
  bool shutdown = false;
  bool stopped = false;
  bool serving = false;  // /healthz: from the start of the gRPC service to the shutdown

  ~Impl() {
    if (lock_fd >= 0) close(lock_fd);
    if (db_lock_fd >= 0) close(db_lock_fd);
  }

  std::string ServiceDiscovery() {
    // Prometheus HTTP SD: one target group per running rank.
    nlohmann::json groups = nlohmann::json::array();
    if (!manager) return groups.dump();
    for (const auto& [job_id, run_dir] : manager->ActiveRunDirs()) {
      for (const auto& ep : contract::ReadEndpoints(contract::RunPaths(run_dir))) {
        if (ep.metrics.empty()) continue;
        groups.push_back(
            {{"targets", {ep.metrics}}, {"labels", {{"job_id", job_id}, {"rank", std::to_string(ep.rank)}}}});
      }
    }
    return groups.dump();
  }
};

Coordinator::Coordinator(CoordinatorOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = std::move(options);
}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Start() {
  Impl& m = *impl_;
  const CoordinatorOptions& o = m.o;
  // A state dir created here is the owner's only: run dirs hold logs, checkpoints and the token.
  const bool new_state_dir = !fs::Exists(o.state_dir);
  fs::MakeDirs(o.state_dir);
  if (new_state_dir) ::chmod(o.state_dir.c_str(), 0700);
  const std::string runs_root = o.state_dir + "/runs";
  fs::MakeDirs(runs_root);

  // One coordinator per state dir. O_CLOEXEC: launched jobs must not inherit (and keep) the lock.
  std::string lock_path = o.state_dir + "/coordinator.lock";
  m.lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (m.lock_fd < 0) throw RuntimeFailure("cannot open " + lock_path + ": " + std::strerror(errno));
  if (flock(m.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    throw RuntimeFailure("state dir " + o.state_dir +
                         " is in use by another vicreg_coordinator (see its coordinator.json); "
                         "use another --state-dir or stop that coordinator");
  }
  // A store outside the state dir (--db-path on a local disk) gets a lock of its own beside it.
  const std::string db_path = o.db_path.empty() ? o.state_dir + "/coordinator.db" : o.db_path;
  if (db_path != o.state_dir + "/coordinator.db") {
    auto slash = db_path.rfind('/');
    if (slash != std::string::npos && slash > 0) fs::MakeDirs(db_path.substr(0, slash));
    const std::string db_lock = db_path + ".lock";
    m.db_lock_fd = open(db_lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (m.db_lock_fd < 0) throw RuntimeFailure("cannot open " + db_lock + ": " + std::strerror(errno));
    if (flock(m.db_lock_fd, LOCK_EX | LOCK_NB) != 0) {
      throw RuntimeFailure("store " + db_path + " is in use by another vicreg_coordinator; use another --db-path");
    }
  }

  if (!o.token_file.empty()) {
    std::string t = fs::ReadFile(o.token_file);
    auto b = t.find_first_not_of(" \t\r\n");
    auto e = t.find_last_not_of(" \t\r\n");
    m.token = b == std::string::npos ? "" : t.substr(b, e - b + 1);
    if (m.token.empty()) throw UserError("--token-file " + o.token_file + " is empty");
    struct stat st;
    if (::stat(o.token_file.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
      spdlog::warn("vicreg_coordinator: --token-file {} is readable by other users (mode {:o}); chmod 600 it",
                   o.token_file, st.st_mode & 0777);
    }
    if (m.token.find_first_of(" \t\r\n") != std::string::npos) {
      throw UserError("--token-file " + o.token_file + ": the token must be one word (no whitespace)");
    }
  } else if (!o.allow_unauthenticated_loopback) {
    // Local users other than the owner must not submit (jobs run as this user), cancel or read
    // logs: a loopback coordinator without --token-file requires the token kept (mode 0600) in
    // <state_dir>/token, which vicregctl finds through the state dir.
    m.token_file = o.state_dir + "/token";
    m.token = LoadOrCreateLocalToken(m.token_file);
  }

  if (o.metrics_listen != "off") {
    std::string host;
    int port = 0;
    SplitHostPort(o.metrics_listen, "--metrics-port", &host, &port);
    metrics::MetricsServerOptions mso;
    mso.address = host;
    mso.port = port;
    mso.threads = 4;  // more (up to max_threads) while all are busy: browsers + Prometheus
    mso.max_threads = 64;
    // Off loopback, /metrics and /sd need the token (FinalizeCoordinatorOptions refused the address
    // without one unless allow_unauthenticated_metrics).
    if (MetricsNeedToken(o)) mso.bearer_token = m.token;
    m.metrics_server = std::make_unique<metrics::MetricsServer>(mso);
    // Liveness/readiness for probes that cannot send a token or speak TLS (Kubernetes' gRPC probe
    // does neither): 200 "ok" while the coordinator serves, and nothing else.
    m.metrics_server->http().Get("/healthz", [impl = impl_.get()](const http::Request&, http::Response& r) {
      std::lock_guard<std::mutex> lock(impl->mu);
      r.status = impl->serving ? 200 : 503;
      r.body = impl->serving ? "ok\n" : "not serving\n";
    });
    m.metrics = std::make_unique<metrics::CoordinatorMetrics>(m.metrics_server->registry());
  }

  JobStore::Options so;
  so.path = db_path;
  so.synchronous_full = o.store_synchronous == "full";
  so.runs_root = runs_root;
  m.store = std::make_unique<JobStore>(so);
  if (m.metrics_server) {
    std::string host;
    int port = 0;
    SplitHostPort(o.metrics_listen, "--metrics-port", &host, &port);
    web::WebUiOptions wo;
    wo.token = m.token;
    wo.exposed = !IsLoopbackHost(host);
    m.web = std::make_unique<web::WebUi>(*m.store, wo);
    m.web->Mount(m.metrics_server->http());
  }

  LauncherOptions lo;
  lo.kind = o.launcher;
  lo.shim_binary = o.shim_binary;
  lo.mpirun = o.mpirun;
  lo.mpirun_args = o.mpirun_args;
  lo.sbatch = o.slurm_sbatch;
  lo.squeue = o.slurm_squeue;
  lo.scancel = o.slurm_scancel;
  lo.sacct = o.slurm_sacct;
  lo.srun = o.slurm_srun;
  lo.partition = o.slurm_partition;
  lo.account = o.slurm_account;
  lo.srun_mpi = o.slurm_srun_mpi;
  lo.sbatch_args = o.slurm_sbatch_args;
  lo.srun_args = o.slurm_srun_args;
  lo.job_name_prefix = o.slurm_job_name_prefix;
  lo.squeue_interval_s = o.slurm_squeue_interval_s;
  lo.command_timeout_s = o.slurm_command_timeout_s;
  m.launcher = MakeLauncher(lo);

  // Slots: the ranks this machine runs (local), or, where the cluster places the ranks and queues
  // what does not fit (Slurm), only a cap on the jobs handed to it.
  SchedulerOptions sched;
  if (m.launcher->capabilities().places_ranks) {
    sched.kind = SlotKind::kCluster;
    for (int i = 0; i < o.slurm_max_submitted_jobs; ++i) sched.slots.push_back(i);
  } else if (!o.gpus.empty()) {
    sched.kind = SlotKind::kGpu;
    sched.slots = Scheduler::ParsePlacement("gpu:" + o.gpus).value_or(std::vector<int>{});
  } else {
    sched.kind = SlotKind::kCpu;
    for (int i = 0; i < o.slots; ++i) sched.slots.push_back(i);
  }

  EvalRunnerOptions eo;
  const LauncherCapabilities caps = m.launcher->capabilities();
  eo.eval_binary = caps.launches ? o.eval_binary : "";
  eo.slots = o.eval_slots;
  eo.workdir = o.workdir;
  eo.retry_backoff_s = o.eval_retry_backoff_s;

  JobManagerOptions mo;
  mo.runs_root = runs_root;
  mo.worker_binary = o.worker_binary;
  mo.workdir = o.workdir;
  mo.poll_interval_s = o.poll_interval_s;
  mo.no_progress_timeout_s = o.no_progress_timeout_s;
  mo.max_queue_wait_s = o.max_queue_wait_s;
  mo.stop_grace_s = o.stop_grace_s;
  mo.restart_backoff_s = o.restart_backoff_s;
  mo.max_ranks_per_job = o.max_ranks_per_job;
  mo.max_spec_bytes = static_cast<size_t>(o.max_request_bytes);
  mo.launch_enabled = caps.launches;
  mo.retention_s = o.retention_days * 86400;
  mo.retention_delete_run_dirs = o.retention_delete_run_dirs;

  // Eval events go through the manager (which notifies watchers); it is created right after.
  m.evals = std::make_unique<EvalRunner>(eo, *m.store, *m.launcher, m.metrics.get(),
                                         [impl = impl_.get()](const std::string& job_id, const std::string& msg) {
                                           if (impl->manager) impl->manager->PostMessage(job_id, msg);
                                         });
  m.manager = std::make_unique<JobManager>(mo, *m.store, Scheduler(sched), *m.launcher, m.metrics.get(), m.evals.get());

  ServiceOptions svc;
  svc.token = m.token;
  svc.max_page_size = o.max_page_size;
  svc.default_page_size = std::min(100, o.max_page_size);
  svc.max_streams = o.max_streams;
  svc.max_streams_per_client = o.max_streams_per_client;
  svc.runs_root = runs_root;
  // ExportEncoder runs vicreg_eval export: the configured --eval-binary, else (scheduled evaluation
  // off) the vicreg_eval installed next to this binary, in the build tree, or on PATH.
  svc.export_binary = o.eval_binary;
  for (const std::string& p : {SelfExeDir() + "/vicreg_eval", SelfExeDir() + "/../worker/eval/vicreg_eval"}) {
    if (svc.export_binary.empty() && access(p.c_str(), X_OK) == 0) svc.export_binary = p;
  }
  if (svc.export_binary.empty()) svc.export_binary = FindInPath("vicreg_eval");
  m.service = std::make_unique<CoordinatorService>(svc, *m.store, *m.manager, m.metrics.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({fs::ReadFile(o.tls_key), fs::ReadFile(o.tls_cert)});
    creds = grpc::SslServerCredentials(ssl);
  }
  int selected_port = 0;
  // gRPC sets SO_REUSEPORT by default, which lets a second coordinator bind the same port and
  // take half of the requests: turn it off so that the second one fails with "address in use".
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(o.listen, creds, &selected_port);
  builder.RegisterService(m.service.get());
  builder.SetMaxReceiveMessageSize(o.max_request_bytes);
  // The synchronous server holds one thread per call in flight. Streams are capped by the service
  // (max_streams); the thread cap leaves room above that for the unary calls, so that thousands of
  // WatchJob streams can neither exhaust the machine's threads nor starve GetJob.
  grpc::ResourceQuota quota("vicreg_coordinator");
  quota.SetMaxThreads(o.max_streams + 64);
  builder.SetResourceQuota(quota);
  builder.SetMaxSendMessageSize(64 * 1024 * 1024);
  m.server = builder.BuildAndStart();
  if (!m.server || selected_port == 0) {
    throw RuntimeFailure("cannot listen on " + o.listen + " (address in use, or not an address of this machine)");
  }
  std::string host;
  int port = 0;
  SplitHostPort(o.listen, "--listen", &host, &port);
  m.grpc_address =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(selected_port);

  m.manager->Start();
  if (m.metrics_server) {
    m.metrics_server->AddHandler("/sd", "application/json", [impl = impl_.get()] { return impl->ServiceDiscovery(); });
  }
  m.server->GetHealthCheckService()->SetServingStatus("vicreg.v1.Coordinator", true);
  m.server->GetHealthCheckService()->SetServingStatus("", true);
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.serving = true;
  }

  nlohmann::json info = {{"pid", static_cast<int>(getpid())},
                         {"grpc", m.grpc_address},
                         {"metrics", m.metrics_server ? m.metrics_server->endpoint() : ""},
                         {"ui", m.metrics_server ? "http://" + m.metrics_server->endpoint() + "/" : ""},
                         {"state_dir", o.state_dir},
                         {"db_path", so.path},
                         {"launcher", o.launcher},
                         {"tls", !o.tls_cert.empty()},
                         {"auth", !m.token.empty()},
                         {"token_file", m.token_file},
                         {"metrics_auth", MetricsNeedToken(o)}};
  fs::AtomicWriteFile(o.state_dir + "/coordinator.json", info.dump(2) + "\n");

  spdlog::info("vicreg_coordinator: serving vicreg.v1.Coordinator on {}{}{}", m.grpc_address,
               o.tls_cert.empty() ? "" : " (TLS)",
               m.token.empty()          ? " (no token: every local user may submit, cancel and read logs)"
               : m.token_file.empty() ? " (bearer token required)"
                                      : " (bearer token required: " + m.token_file +
                                            "; vicregctl --state-dir " + o.state_dir + " finds it)");
  spdlog::info("vicreg_coordinator: state dir {}, store {}, {} launcher, {} {} slot(s), worker {}", o.state_dir,
               so.path, o.launcher, m.manager->capacity(), m.manager->slot_kind_name(),
               o.worker_binary.empty() ? "-" : o.worker_binary);
  if (m.metrics_server) {
    spdlog::info("vicreg_coordinator: metrics on http://{}/metrics, Prometheus service discovery on http://{}/sd",
                 m.metrics_server->endpoint(), m.metrics_server->endpoint());
    spdlog::info("vicreg_coordinator: web UI on http://{}/{}", m.metrics_server->endpoint(),
                 m.token.empty() ? "" : " (sign in with the token, or open it with ?token=<token>)");
  }
  if (m.launcher->capabilities().places_ranks) {
    spdlog::info(
        "vicreg_coordinator: {} places the ranks: --slots/--gpus are not used; at most {} job(s) are handed to it at a "
        "time (slurm.max_submitted_jobs), the rest wait here",
        o.launcher, o.slurm_max_submitted_jobs);
  }
  if (!m.evals->enabled()) {
    spdlog::info(
        "vicreg_coordinator: scheduled evaluation disabled ({})",
        !caps.launches ? "launcher none" : (o.eval_binary.empty() ? "vicreg_eval not found" : "--eval-slots 0"));
  }
}

void Coordinator::Wait() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->shutdown; });
}

void Coordinator::Shutdown() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stopped) return;
    m.stopped = true;
    m.shutdown = true;
    m.serving = false;
  }
  m.cv.notify_all();
  if (m.server) {
    m.server->GetHealthCheckService()->SetServingStatus(false);
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  // The /sd handler reads the manager: stop HTTP first (the registry lives on in CoordinatorMetrics).
  m.metrics_server.reset();
  if (m.manager) m.manager->Stop();
  spdlog::info("vicreg_coordinator: stopped (running jobs keep running and are re-adopted at the next start)");
}

std::string Coordinator::grpc_address() const { return impl_->grpc_address; }

std::string Coordinator::metrics_address() const {
  return impl_->metrics_server ? impl_->metrics_server->endpoint() : "";
}

}  // namespace vicreg::server
