// vicreg_job_shim: the small process between the coordinator and a job's ranks.
//
//   vicreg_job_shim supervise --status FILE [--info FILE] -- CMD ARGS...
//       Runs CMD (mpirun / srun) as a child, forwards SIGTERM/SIGINT/SIGHUP to it, waits, and
//       writes FILE atomically: {"exit_code":N,"signal":S,"pid":P,"finished":T}. --info FILE is
//       written at start: {"pid":<own pid>,"start_ticks":<from /proc>}. This is how a coordinator
//       that restarted (and is no longer the parent) learns how an attempt ended.
//   vicreg_job_shim rank --log-dir DIR --status-dir DIR [--attempt N] -- WORKER ARGS...
//       One per rank, started by mpirun/srun. Finds its rank (OMPI_COMM_WORLD_RANK, PMIX_RANK,
//       SLURM_PROCID, RANK), appends the worker's stdout+stderr to DIR/rank-<r>.out, runs the worker
//       as a child that dies with the shim (PR_SET_PDEATHSIG), and writes
//       STATUS_DIR/rank-<r>.json {"rank","pid","exit_code","signal","finished"} when it ends. It then
//       exits the same way as the worker (same code, or the same signal). It does NOT pass signals
//       on: every sender reaches the worker itself (mpirun signals each rank's process group, Slurm
//       every process of the step, the coordinator the worker: server/process.h
//       TerminateSessionPrograms), so a forwarded SIGTERM was a second one, which the worker takes
//       as "exit now" instead of writing its stop checkpoint. The shim catches them and lives on
//       until the worker ends (a SIGTERM meant for the worker must not kill it through PDEATHSIG).
//   vicreg_job_shim --version
// The records' format and the exit codes are common/run_contract.h's (header only: no dependencies
// beyond libc and libstdc++, it runs once per rank); --version is common/build_info.h's (the tiny
// vicreg_build_info library, not vicreg_common).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/build_info.h"
#include "common/run_contract.h"

namespace {

using vicreg::contract::ExitRecord;

volatile sig_atomic_t g_child = 0;

void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

void Usage() {
  std::fprintf(stderr,
               "usage: vicreg_job_shim supervise --status FILE [--info FILE] -- CMD ARGS...\n"
               "       vicreg_job_shim rank --log-dir DIR --status-dir DIR [--attempt N] -- WORKER ARGS...\n"
               "       vicreg_job_shim --version\n");
}

double Now() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return tv.tv_sec + tv.tv_usec / 1e6;
}

unsigned long long StartTicks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  std::string skip;
  for (int field = 3; field <= 21; ++field) rest >> skip;
  unsigned long long ticks = 0;
  rest >> ticks;
  return ticks;
}

bool WriteAtomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

void Ignore(int) {}

// supervise: forward to the child. rank: catch without forwarding (see the header comment).
void InstallForwarding(bool forward) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = forward ? Forward : Ignore;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT, SIGQUIT}) sigaction(sig, &sa, nullptr);
}

// Waits for the child; returns the wait status.
int WaitChild(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

// The exit record of a child (rank -1: the supervisor's record) from its wait status.
ExitRecord RecordOf(int rank, pid_t pid, int status) {
  ExitRecord r;
  r.rank = rank;
  r.pid = static_cast<int>(pid);
  if (status >= 0 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (status >= 0 && WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.finished = Now();
  return r;
}

[[noreturn]] void ExitLike(int status) {
  if (status >= 0 && WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, nullptr);
    raise(sig);
    _exit(128 + sig);
  }
  _exit(status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : vicreg::kExitFailure);
}

int RankFromEnv() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK", "RANK"}) {
    const char* v = std::getenv(name);
    if (v && *v) return std::atoi(v);
  }
  return 0;
}

int Supervise(const std::string& status_path, const std::string& info_path, std::vector<char*> cmd) {
  if (!info_path.empty()) {
    vicreg::contract::LauncherInfo info;
    info.pid = static_cast<int>(getpid());
    info.start_ticks = StartTicks(getpid());
    WriteAtomic(info_path, vicreg::contract::FormatLauncherInfo(info));
  }
  InstallForwarding(true);
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("vicreg_job_shim: fork");
    return vicreg::kExitFailure;
  }
  if (pid == 0) {
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT, SIGQUIT}) signal(sig, SIG_DFL);
    execvp(cmd[0], cmd.data());
    std::fprintf(stderr, "vicreg_job_shim: cannot run %s: %s\n", cmd[0], std::strerror(errno));
    _exit(vicreg::kExitCannotExecute);
  }
  g_child = pid;
  int status = WaitChild(pid);
  if (!WriteAtomic(status_path, vicreg::contract::FormatExitRecord(RecordOf(-1, pid, status)))) {
    std::fprintf(stderr, "vicreg_job_shim: cannot write %s: %s\n", status_path.c_str(), std::strerror(errno));
  }
  ExitLike(status);
}

int Rank(const std::string& log_dir, const std::string& status_dir, int attempt, std::vector<char*> cmd) {
  int rank = RankFromEnv();
  std::string log_path = vicreg::contract::RankOutputPath(log_dir, rank);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    std::fprintf(stderr, "vicreg_job_shim: cannot open %s: %s\n", log_path.c_str(), std::strerror(errno));
    return vicreg::kExitFailure;
  }
  {
    time_t t = time(nullptr);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    char header[256];
    int n =
        std::snprintf(header, sizeof(header), "=== vicreg: attempt %d, rank %d, started %s ===\n", attempt, rank, when);
    (void)!write(log_fd, header, static_cast<size_t>(n));
  }
  InstallForwarding(false);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("vicreg_job_shim: fork");
    return vicreg::kExitFailure;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(vicreg::kExitFailure);  // the shim died before prctl took effect
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT, SIGQUIT}) signal(sig, SIG_DFL);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execvp(cmd[0], cmd.data());
    std::fprintf(stderr, "vicreg_job_shim: cannot run %s: %s\n", cmd[0], std::strerror(errno));
    _exit(vicreg::kExitCannotExecute);
  }
  g_child = pid;
  int status = WaitChild(pid);
  WriteAtomic(vicreg::contract::RankExitPath(status_dir, rank),
              vicreg::contract::FormatExitRecord(RecordOf(rank, pid, status)));
  if (status >= 0 && WIFSIGNALED(status)) {
    char msg[160];
    int n = std::snprintf(msg, sizeof(msg), "=== vicreg: rank %d killed by signal %d (%s) ===\n", rank,
                          WTERMSIG(status), strsignal(WTERMSIG(status)));
    (void)!write(log_fd, msg, static_cast<size_t>(n));
  } else if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    char msg[128];
    int n = std::snprintf(msg, sizeof(msg), "=== vicreg: rank %d exited with code %d ===\n", rank, WEXITSTATUS(status));
    (void)!write(log_fd, msg, static_cast<size_t>(n));
  }
  ExitLike(status);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return vicreg::kExitUsage;
  }
  if (vicreg::PrintVersionIfAsked(argc, argv, "vicreg_job_shim")) return vicreg::kExitOk;
  std::string mode = argv[1];
  if (mode == "--help" || mode == "-h") {
    Usage();
    return vicreg::kExitOk;
  }
  std::string status, info, log_dir, status_dir;
  int attempt = 0;
  int i = 2;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vicreg_job_shim: %s needs a value\n", a.c_str());
        std::exit(vicreg::kExitUsage);
      }
      out = argv[++i];
    };
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--status") {
      value(status);
    } else if (a == "--info") {
      value(info);
    } else if (a == "--log-dir") {
      value(log_dir);
    } else if (a == "--status-dir") {
      value(status_dir);
    } else if (a == "--attempt") {
      std::string v;
      value(v);
      attempt = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "vicreg_job_shim: unknown option '%s'\n", a.c_str());
      Usage();
      return vicreg::kExitUsage;
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "vicreg_job_shim: missing '-- CMD ARGS...'\n");
    return vicreg::kExitUsage;
  }
  std::vector<char*> cmd(argv + i, argv + argc);
  cmd.push_back(nullptr);
  if (mode == "supervise") {
    if (status.empty()) {
      std::fprintf(stderr, "vicreg_job_shim supervise: --status FILE is required\n");
      return vicreg::kExitUsage;
    }
    return Supervise(status, info, cmd);
  }
  if (mode == "rank") {
    if (log_dir.empty() || status_dir.empty()) {
      std::fprintf(stderr, "vicreg_job_shim rank: --log-dir and --status-dir are required\n");
      return vicreg::kExitUsage;
    }
    return Rank(log_dir, status_dir, attempt, cmd);
  }
  std::fprintf(stderr, "vicreg_job_shim: unknown mode '%s' (supervise | rank)\n", mode.c_str());
  return vicreg::kExitUsage;
}
