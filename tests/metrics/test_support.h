// Helpers shared by the metrics tests: a minimal HTTP GET client, a Prometheus text-format
// parser, child processes started from argv arrays, temp dirs, free ports.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vicreg::metrics::testing {

struct HttpResponse {
  int status = 0;  // 0: no connection / no answer
  std::string content_type;
  std::string body;
  std::string error;  // why status is 0
};
// GET http://host:port<path> (HTTP/1.0, Connection: close).
HttpResponse HttpGet(const std::string& host, int port, const std::string& path, double timeout_s = 5.0);
// Sends `raw` (a whole request) and reads the answer until the server closes.
HttpResponse HttpRequest(const std::string& host, int port, const std::string& raw, double timeout_s = 5.0);
// A connected socket that sends nothing (a slow client); CloseFd closes it.
int ConnectOnly(const std::string& host, int port);
void CloseFd(int fd);
std::string UrlEncode(const std::string& s);

// One sample line of the exposition text format.
struct Sample {
  std::string name;                           // vicreg_train_loss, ..._bucket, ..._sum
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};
struct Exposition {
  std::map<std::string, std::string> type;  // family name -> counter|gauge|histogram|summary|untyped
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;
  // Samples named `name` whose labels include every (key, value) of `match`.
  std::vector<Sample> Find(const std::string& name, const std::map<std::string, std::string>& match = {}) const;
  // The single matching sample's value; fails the current test (ADD_FAILURE) and returns NaN otherwise.
  double Value(const std::string& name, const std::map<std::string, std::string>& match = {}) const;
};
// Throws std::runtime_error naming the line on malformed input.
Exposition ParseExposition(const std::string& text);

// A child process started with execvp(argv) (never a shell), stdout+stderr to log_path.
class Process {
 public:
  // stdin_path: file fed to the child's stdin ("" = /dev/null).
  Process(const std::vector<std::string>& argv, const std::string& log_path,
          const std::map<std::string, std::string>& extra_env = {}, const std::string& stdin_path = "");
  ~Process();  // SIGKILL + reap the whole process group if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `sig` to the process group; waits up to timeout_s; returns the exit status
  // (the code, or 128+signal), nullopt on timeout.
  std::optional<int> Stop(int sig, double timeout_s);
  std::optional<int> Wait(double timeout_s);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

std::string MakeTempDir(const std::string& prefix);
void RemoveTree(const std::string& path);
int FreeTcpPort();  // a port that was free a moment ago on 127.0.0.1
std::string ReadText(const std::string& path);
void WriteText(const std::string& path, const std::string& text);
// Full path of an executable on PATH, or "".
std::string FindOnPath(const std::string& name);
// Calls `pred` every poll_s until it returns true or timeout_s passes; returns its last result.
template <typename Pred>
bool WaitFor(Pred pred, double timeout_s, double poll_s = 0.2);
void SleepSeconds(double s);

template <typename Pred>
bool WaitFor(Pred pred, double timeout_s, double poll_s) {
  const int n = static_cast<int>(timeout_s / poll_s) + 1;
  for (int i = 0; i < n; ++i) {
    if (pred()) return true;
    SleepSeconds(poll_s);
  }
  return pred();
}

}  // namespace vicreg::metrics::testing
