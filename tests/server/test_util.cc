#include "tests/server/test_util.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace vicreg::testutil {

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vicreg-server-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  bool failed = info && info->result() && info->result()->Failed();
  if (failed) {
    std::fprintf(stderr, "[kept for debugging] %s\n", path_.c_str());
    return;
  }
  server::RunCommand({"/bin/rm", "-rf", path_}, 60);
}

int Sqlite(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open(db_path.c_str(), &db);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return rc;
}

std::string BinaryDir() { return VICREG_BINARY_DIR; }
std::string SourceDir() { return VICREG_SOURCE_DIR; }
std::string CoordinatorBinary() { return BinaryDir() + "/server/vicreg_coordinator"; }
std::string CtlBinary() { return BinaryDir() + "/server/cli/vicregctl"; }
std::string RealWorkerBinary() { return BinaryDir() + "/worker/vicreg_worker"; }
std::string FakeWorker() { return SourceDir() + "/tests/server/fake_worker.py"; }

std::string ReadText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

bool WaitFor(const std::function<bool()>& pred, double timeout_s) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Coordinator::Coordinator(std::string state_dir, std::vector<std::string> args)
    : state_dir_(std::move(state_dir)), args_(std::move(args)) {}

Coordinator::~Coordinator() {
  if (running()) Kill(SIGKILL);
  // Jobs run in their own sessions and outlive the coordinator by design: a test that stopped
  // early must not leave ranks behind. Kill every attempt session this state dir launched.
  server::CommandResult ls =
      server::RunCommand({"/usr/bin/find", state_dir_ + "/runs", "-path", "*/attempts/*/launcher.json"}, 30);
  std::istringstream files(ls.out);
  std::string path;
  while (std::getline(files, path)) {
    nlohmann::json j = nlohmann::json::parse(ReadText(path), nullptr, false);
    server::ProcessRef leader;
    leader.pid = j.is_object() ? j.value("pid", 0) : 0;
    leader.start_ticks = j.is_object() ? j.value("start_ticks", uint64_t{0}) : 0;
    if (leader.pid > 1 && leader.start_ticks > 0) server::SignalSessionOf(leader, SIGKILL);
  }
}

std::string Coordinator::log() const { return ReadText(state_dir_ + ".coordinator.log"); }

void Coordinator::Start(double timeout_s) {
  ++starts_;
  server::SpawnOptions so;
  so.argv = {CoordinatorBinary(), "--state-dir", state_dir_,    "--listen", "127.0.0.1:0",
             "--metrics-port",    "0",           "--log-level", "debug"};
  if (open_loopback_) so.argv.push_back("--allow-unauthenticated-loopback");
  so.argv.insert(so.argv.end(), args_.begin(), args_.end());
  so.output_path = state_dir_ + ".coordinator.log";
  so.new_session = true;
  proc_ = server::Spawn(so);
  std::string info_path = state_dir_ + "/coordinator.json";
  bool up = WaitFor(
      [&] {
        nlohmann::json j = nlohmann::json::parse(ReadText(info_path), nullptr, false);
        if (j.is_discarded() || !j.is_object() || j.value("pid", 0) != proc_.pid) {
          if (server::TryReap(proc_.pid)) throw std::runtime_error("vicreg_coordinator exited:\n" + log());
          return false;
        }
        address_ = j.value("grpc", "");
        metrics_ = j.value("metrics", "");
        return true;
      },
      timeout_s);
  if (!up)
    throw std::runtime_error("vicreg_coordinator did not start within " + std::to_string(timeout_s) + " s:\n" + log());
}

void Coordinator::Kill(int sig) {
  if (!running()) return;
  ::kill(proc_.pid, sig);
  int status = 0;
  waitpid(proc_.pid, &status, 0);
  proc_ = {};
}

int Coordinator::Stop() {
  if (!running()) return -1;
  ::kill(proc_.pid, SIGTERM);
  int status = 0;
  waitpid(proc_.pid, &status, 0);
  proc_ = {};
  return status;
}

std::unique_ptr<v1::Coordinator::Stub> Coordinator::Stub() const {
  return v1::Coordinator::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

std::unique_ptr<grpc::ClientContext> Coordinator::Ctx(const std::string& token, double timeout_s) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

server::CommandResult Coordinator::Ctl(const std::vector<std::string>& args, double timeout_s,
                                       const std::vector<std::string>& env) const {
  std::vector<std::string> argv = {CtlBinary(), "--server", address_};
  argv.insert(argv.end(), args.begin(), args.end());
  return server::RunCommand(argv, timeout_s, env);
}

v1::Job Coordinator::Get(const std::string& job_id, const std::string& token) const {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  auto ctx = Ctx(token);
  grpc::Status st = Stub()->GetJob(ctx.get(), req, &job);
  if (!st.ok()) throw std::runtime_error("GetJob " + job_id + ": " + st.error_message());
  return job;
}

v1::Job Coordinator::WaitTerminal(const std::string& job_id, double timeout_s, const std::string& token) const {
  v1::Job job;
  WaitFor(
      [&] {
        job = Get(job_id, token);
        return job.state() == v1::SUCCEEDED || job.state() == v1::FAILED || job.state() == v1::CANCELLED;
      },
      timeout_s);
  return job;
}

std::string HttpGet(const std::string& host_port, const std::string& path, int* code) {
  if (code) *code = 0;
  auto colon = host_port.rfind(':');
  std::string host = host_port.substr(0, colon);
  int port = std::atoi(host_port.substr(colon + 1).c_str());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  auto sp = resp.find(' ');
  if (code && sp != std::string::npos) *code = std::atoi(resp.c_str() + sp + 1);
  auto body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

}  // namespace vicreg::testutil
