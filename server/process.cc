#include "server/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/run_contract.h"

extern char** environ;

namespace vicreg::server {

std::optional<ProcStat> ReadProcStat(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  if (!f) return std::nullopt;
  std::string line;
  std::getline(f, line);
  // comm is in parentheses and may contain spaces or ')': parse after the last ')'.
  auto open = line.find('(');
  auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  ProcStat st;
  st.pid = pid;
  st.comm = line.substr(open + 1, close - open - 1);
  // Fields after comm: 3 state, 4 ppid, 5 pgrp, 6 session, 7 tty_nr, 8 tpgid, 9 flags, 10 minflt,
  // 11 cminflt, 12 majflt, 13 cmajflt, 14 utime, 15 stime, 16 cutime, 17 cstime, 18 priority,
  // 19 nice, 20 num_threads, 21 itrealvalue, 22 starttime.
  std::string skip;
  rest >> st.state >> st.ppid >> st.pgid >> st.sid;
  for (int field = 7; field <= 21; ++field) rest >> skip;
  rest >> st.start_ticks;
  if (!rest) return std::nullopt;
  return st;
}

bool IsAlive(const ProcessRef& p) {
  auto st = ReadProcStat(p.pid);
  if (!st) return false;
  if (p.start_ticks != 0 && st->start_ticks != p.start_ticks) return false;  // pid reused
  return st->state != 'Z' && st->state != 'X' && st->state != 'x';
}

namespace {

// Every live member of session sid, with its /proc stat.
std::vector<ProcStat> SessionStats(int sid) {
  std::vector<ProcStat> out;
  if (sid <= 1) return out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int pid = std::atoi(e->d_name);
    auto st = ReadProcStat(pid);
    if (st && st->sid == sid && st->state != 'Z' && st->state != 'X') out.push_back(*st);
  }
  closedir(d);
  return out;
}

}  // namespace

std::vector<int> SessionMembers(int sid) {
  std::vector<int> out;
  for (const ProcStat& st : SessionStats(sid)) out.push_back(st.pid);
  return out;
}

int SignalSession(int sid, int sig) {
  int n = 0;
  for (int pid : SessionMembers(sid)) {
    if (::kill(pid, sig) == 0) ++n;
  }
  return n;
}

int SignalSessionOf(const ProcessRef& leader, int sig) {
  auto st = ReadProcStat(leader.pid);
  if (st && leader.start_ticks != 0 && st->start_ticks != leader.start_ticks) return 0;  // pid reused
  return SignalSession(leader.pid, sig);
}

int TerminateSessionPrograms(const ProcessRef& leader) {
  auto lead = ReadProcStat(leader.pid);
  if (lead && leader.start_ticks != 0 && lead->start_ticks != leader.start_ticks) return 0;  // pid reused
  const std::vector<ProcStat> members = SessionStats(leader.pid);
  std::vector<int> rank_shims;
  for (const ProcStat& st : members) {
    if (st.pid != leader.pid && st.comm == "vicreg_job_shim") rank_shims.push_back(st.pid);
  }
  int n = 0;
  for (const ProcStat& st : members) {
    if (st.pid == leader.pid) continue;
    const bool target = rank_shims.empty()
                            ? true
                            : std::find(rank_shims.begin(), rank_shims.end(), st.ppid) != rank_shims.end();
    if (target && ::kill(st.pid, SIGTERM) == 0) ++n;
  }
  for (const ProcStat& st : members) ::kill(st.pid, SIGCONT);
  return n;
}

namespace {

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnv(const std::vector<std::string>& env_set) {
  std::map<std::string, std::string> env;
  std::vector<std::string> order;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    if (!env.count(k)) order.push_back(k);
    env[k] = kv;
  }
  for (const auto& kv : env_set) {
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq);
    if (!env.count(k)) order.push_back(k);
    env[k] = kv;
  }
  std::vector<std::string> out;
  for (const auto& k : order) out.push_back(env[k]);
  return out;
}

}  // namespace

void CloseFdsFrom(int first, bool use_close_range) {
#ifdef SYS_close_range
  if (use_close_range && syscall(SYS_close_range, first, ~0U, 0) == 0) return;
#endif
  // Without close_range(2) (kernels before 5.9): every descriptor below the soft limit, which
  // may be far above 4096 (the unit files raise it to 65536). Async-signal-safe (after fork).
  rlimit rl{};
  rlim_t end = 65536;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) end = rl.rlim_cur;
  if (end > (1u << 20)) end = 1u << 20;
  for (rlim_t fd = static_cast<rlim_t>(first); fd < end; ++fd) close(static_cast<int>(fd));
}

ProcessRef Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw std::runtime_error("spawn: empty argv");
  std::vector<std::string> argv = options.argv;
  std::string exe = argv[0];
  if (exe.find('/') == std::string::npos) {
    std::string found = FindInPath(exe);
    if (found.empty()) throw std::runtime_error("cannot launch '" + exe + "': not found in PATH");
    exe = found;
  }
  std::vector<std::string> env = MergedEnv(options.env_set);
  std::vector<char*> cargv = CStrings(argv);
  std::vector<char*> cenv = CStrings(env);

  int out_fd = -1;
  if (options.output_path.empty()) {
    out_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  } else {
    out_fd = ::open(options.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  if (out_fd < 0) {
    throw std::runtime_error("cannot open " + options.output_path + ": " + std::strerror(errno));
  }
  int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_fd);
    ::close(null_in);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    ::close(out_fd);
    ::close(null_in);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (options.new_session) setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
    dup2(null_in, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    int keep = err_pipe[1];
    if (keep != 3) {
      dup2(keep, 3);
      fcntl(3, F_SETFD, FD_CLOEXEC);
    }
    CloseFdsFrom(4);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
      int e = errno;
      (void)!write(3, &e, sizeof(e));
      _exit(kExitCannotExecute);
    }
    execve(exe.c_str(), cargv.data(), cenv.data());
    int e = errno;
    (void)!write(3, &e, sizeof(e));
    _exit(kExitCannotExecute);
  }
  ::close(out_fd);
  ::close(null_in);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n == sizeof(child_errno)) {
    int status;
    waitpid(pid, &status, 0);
    throw std::runtime_error("cannot launch '" + exe + "'" + (options.cwd.empty() ? "" : " in " + options.cwd) + ": " +
                             std::strerror(child_errno));
  }
  ProcessRef ref;
  ref.pid = pid;
  if (auto st = ReadProcStat(pid)) ref.start_ticks = st->start_ticks;
  return ref;
}

std::optional<int> TryReap(int pid) {
  int status = 0;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r == pid) return status;
  return -1;  // not our child (or already reaped)
}

CommandResult RunCommand(const std::vector<std::string>& argv_in, double timeout_s,
                         const std::vector<std::string>& env_set) {
  CommandResult res;
  if (argv_in.empty()) return res;
  std::vector<std::string> argv = argv_in;
  std::string exe = argv[0];
  if (exe.find('/') == std::string::npos) {
    exe = FindInPath(exe);
    if (exe.empty()) {
      res.err = "'" + argv[0] + "' not found in PATH";
      return res;
    }
  }
  std::vector<std::string> env = MergedEnv(env_set);
  std::vector<char*> cargv = CStrings(argv);
  std::vector<char*> cenv = CStrings(env);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return res;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return res;
  }
  int null_in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
    dup2(null_in, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    CloseFdsFrom(3);
    execve(exe.c_str(), cargv.data(), cenv.data());
    _exit(kExitCannotExecute);
  }
  ::close(null_in);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    res.err = std::string("fork: ") + std::strerror(errno);
    return res;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      res.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    int r = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!res.timed_out && WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  return res;
}

std::string SignalName(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGXCPU: return "SIGXCPU";
    default: return "signal " + std::to_string(sig);
  }
}

std::string FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + name;
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string SelfExeDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  buf[n] = 0;
  std::string p(buf);
  auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

}  // namespace vicreg::server
