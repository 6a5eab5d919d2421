// Helpers shared by the tests in tests/train/: temp dirs, files, child processes (argv arrays, no shell).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace vicreg::testing {

inline std::string MakeTempDir(const std::string& tag) {
  std::string tmpl = "/tmp/vicreg-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

inline void RemoveTree(const std::string& dir) {
  if (dir.size() < 12 || dir.rfind("/tmp/vicreg-", 0) != 0) return;  // only our own temp dirs
  pid_t pid = 0;
  std::vector<std::string> args = {"/bin/rm", "-rf", dir};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0) waitpid(pid, nullptr, 0);
}

inline bool PathExists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

struct ProcResult {
  int exit_code = -1;  // -1 if killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string output;  // stdout + stderr
};

// Starts argv with stdout+stderr redirected to out_path. Returns the pid.
inline pid_t Spawn(const std::vector<std::string>& args, const std::string& out_path,
                   const std::vector<std::string>& extra_env = {}, const std::string& cwd = "") {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<std::string> a = args;
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  for (const auto& e : extra_env) env_store.push_back(e);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("posix_spawn " + args[0] + " failed: " + std::to_string(rc));
  return pid;
}

// Waits for pid up to timeout; kills it (SIGKILL) on timeout.
inline ProcResult Wait(pid_t pid, const std::string& out_path, double timeout_s) {
  ProcResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (true) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
  r.output = Slurp(out_path);
  return r;
}

inline ProcResult RunProcess(const std::vector<std::string>& args, const std::string& out_path, double timeout_s,
                             const std::vector<std::string>& extra_env = {}, const std::string& cwd = "") {
  return Wait(Spawn(args, out_path, extra_env, cwd), out_path, timeout_s);
}

}  // namespace vicreg::testing
