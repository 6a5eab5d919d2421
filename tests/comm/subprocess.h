// Test helper: run a command (argv array, no shell) in its own process group with a deadline,
// capture stdout+stderr, and find leftover processes by a unique tag in their command line.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace vicreg::testing {

struct ProcessResult {
  int exit_code = -1;   // valid when !signaled
  int term_signal = 0;  // valid when signaled
  bool signaled = false;
  bool timed_out = false;  // we killed it at the deadline
  double seconds = 0;
  std::string output;  // stdout and stderr interleaved
  bool ok() const { return !signaled && !timed_out && exit_code == 0; }
};

// env: extra "NAME=value" entries added to this process's environment.
inline ProcessResult RunProcess(const std::vector<std::string>& argv, double timeout_s,
                                const std::vector<std::string>& env = {}) {
  ProcessResult r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);  // both sides, to avoid racing the child
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  bool eof = false;
  int status = 0;
  bool reaped = false;
  while (true) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > timeout_s && !r.timed_out) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
    }
    pollfd p{fds[0], POLLIN, 0};
    if (!eof && poll(&p, 1, 50) > 0) {
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n > 0) r.output.append(buf, static_cast<size_t>(n));
      if (n == 0) eof = true;
    } else if (eof) {
      usleep(20000);
    }
    if (!reaped && waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    if (reaped && eof) break;
    if (reaped && r.timed_out) break;
    if (reaped) {
      // The main process is gone; drain what grandchildren still write for a short while.
      if (elapsed > timeout_s + 5) break;
    }
  }
  close(fds[0]);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.term_signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  }
  return r;
}

// Starts a background process (own process group) with stdout+stderr appended to log_path.
inline pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path,
                          const std::vector<std::string>& env = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  if (pid > 0) setpgid(pid, pid);
  return pid;
}

// SIGTERM to the process group, SIGKILL after `grace_s`; reaps the process.
inline void StopProcess(pid_t pid, double grace_s = 5) {
  if (pid <= 0) return;
  kill(-pid, SIGTERM);
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > grace_s) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(50000);
  }
}

inline std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Live (non-zombie) processes whose command line contains `tag`.
inline std::vector<int> ProcessesWithTag(const std::string& tag) {
  std::vector<int> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    // POSIX reads: a process that exits meanwhile fails the read (ESRCH), which an ifstream's
    // istreambuf_iterator would throw.
    std::string c;
    const int fd = ::open(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) c.append(buf, static_cast<size_t>(n));
      ::close(fd);
    }
    if (c.find(tag) == std::string::npos) continue;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string stat_line;
    std::getline(st, stat_line);
    const auto close_paren = stat_line.rfind(')');
    const char state =
        close_paren != std::string::npos && close_paren + 2 < stat_line.size() ? stat_line[close_paren + 2] : '?';
    if (state == 'Z' || state == 'X') continue;
    out.push_back(pid);
  }
  closedir(d);
  return out;
}

// Waits up to `wait_s` for tagged processes to disappear; kills (by pid) and returns any that remain.
inline std::vector<int> ReapOrphans(const std::string& tag, double wait_s) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<int> left = ProcessesWithTag(tag);
  while (!left.empty() && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < wait_s) {
    usleep(100000);
    left = ProcessesWithTag(tag);
  }
  for (int pid : left) kill(pid, SIGKILL);
  return left;
}

inline std::string UniqueTag(const std::string& prefix) {
  static int n = 0;
  return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

}  // namespace vicreg::testing
