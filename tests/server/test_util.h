// Helpers for the coordinator tests: temp dirs, a real vicreg_coordinator process on a free
// port, vicregctl runs, a gRPC stub, waiting for conditions.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/process.h"
#include "vicreg/v1/coordinator.grpc.pb.h"

namespace vicreg::testutil {

// mkdtemp under $TMPDIR; removed in the destructor unless the test failed (kept for debugging).
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs SQL on a database file (sqlite3_exec); returns the SQLite result code.
int Sqlite(const std::string& db_path, const std::string& sql);

std::string BinaryDir();          // VICREG_BINARY_DIR
std::string SourceDir();          // VICREG_SOURCE_DIR
std::string CoordinatorBinary();  // <build>/server/vicreg_coordinator
std::string CtlBinary();          // <build>/server/cli/vicregctl
std::string RealWorkerBinary();   // <build>/worker/vicreg_worker
std::string FakeWorker();         // tests/server/fake_worker.py
std::string ReadText(const std::string& path);
void WriteText(const std::string& path, const std::string& text);

// A Timestamp field of the API in seconds since the epoch (0 when unset).
inline double Seconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + static_cast<double>(t.nanos()) * 1e-9;
}

// Polls `pred` every 50 ms until it is true or `timeout_s` passed.
bool WaitFor(const std::function<bool()>& pred, double timeout_s);

// A vicreg_coordinator child process on 127.0.0.1:<free port> with its own state dir.
class Coordinator {
 public:
  // args: extra flags (e.g. {"--slots", "2", "--worker-binary", X}).
  Coordinator(std::string state_dir, std::vector<std::string> args);
  ~Coordinator();  // SIGKILL if still running
  // Starts and waits until coordinator.json names this process (throws on failure, with its log).
  // Unless require_local_token(true) was called, the coordinator runs with
  // --allow-unauthenticated-loopback (tests talk to it without a token unless they configure one).
  void Start(double timeout_s = 30);
  void require_local_token(bool on) { open_loopback_ = !on; }
  void Kill(int sig);  // signal, and wait for exit (SIGKILL: no clean shutdown)
  int Stop();          // SIGTERM + wait; returns the exit status
  bool running() const { return proc_.pid > 0; }
  const std::string& address() const { return address_; }
  const std::string& metrics() const { return metrics_; }
  const std::string& state_dir() const { return state_dir_; }
  std::string log() const;
  std::string RunDir(const std::string& job_id) const { return state_dir_ + "/runs/" + job_id; }

  std::unique_ptr<v1::Coordinator::Stub> Stub() const;
  // A context with a deadline and (if non-empty) the bearer token.
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "", double timeout_s = 10);

  // vicregctl --server <address> args...
  server::CommandResult Ctl(const std::vector<std::string>& args, double timeout_s = 120,
                            const std::vector<std::string>& env = {}) const;
  // GetJob through gRPC (throws on error).
  v1::Job Get(const std::string& job_id, const std::string& token = "") const;
  // Waits until the job is in a terminal state; returns it.
  v1::Job WaitTerminal(const std::string& job_id, double timeout_s, const std::string& token = "") const;

 private:
  std::string state_dir_;
  std::vector<std::string> args_;
  server::ProcessRef proc_;
  std::string address_, metrics_;
  int starts_ = 0;
  bool open_loopback_ = true;
};

// HTTP GET http://<host:port><path> (plain sockets); returns the body ("" on failure), status in *code.
std::string HttpGet(const std::string& host_port, const std::string& path, int* code = nullptr);

}  // namespace vicreg::testutil
