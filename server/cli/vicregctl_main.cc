// vicregctl: the command-line client of vicreg_coordinator (README.md "Command-line interface", docs/OPERATIONS.md).
//
//   vicregctl [--server HOST:PORT] [--state-dir DIR] [--token-file F] [--output table|json] [--timeout S]
//             submit FILE [--wait] [--set key=value ...] [--request-id ID]
//             | list [--state S] [--limit N] [--all] | status ID | watch ID | logs ID [-f] [--rank R]
//             | cancel ID [--reason TEXT] | eval ID | report ID [-o FILE] [--http HOST:PORT]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/build_info.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "server/cli/checkpoints.h"
#include "server/cli/client.h"
#include "server/cli/format.h"
#include "server/cli/validate.h"

namespace vicreg::cli {
namespace {

struct Globals {
  ClientOptions client;
  std::string token_file;
  std::string local_http;  // the local coordinator's HTTP endpoint (from <state-dir>/coordinator.json)
  std::string output = "table";
  double wait_timeout_s = 0;  // watch / submit --wait / logs -f: 0 = no limit
  double reconnect_s = 120;   // how long watch keeps reconnecting after losing the coordinator
  bool json() const { return output == "json"; }
};

std::string ReadTokenFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw UserError("--token-file " + path + ": cannot read the file");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t = ss.str();
  auto b = t.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) throw UserError("--token-file " + path + ": the file is empty");
  auto e = t.find_last_not_of(" \t\r\n");
  return t.substr(b, e - b + 1);
}

// What a coordinator on this machine publishes in its state dir: coordinator.json (addresses) and,
// when it generated one, the token file it names (mode 0600: only its owner can read it).
struct LocalCoordinator {
  std::string grpc, http, token_file;
};
LocalCoordinator ReadLocalCoordinator(const std::string& state_dir) {
  LocalCoordinator out;
  std::ifstream f(state_dir + "/coordinator.json");
  if (!f) return out;
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
  out.grpc = str("grpc");
  out.http = str("metrics");
  out.token_file = str("token_file");
  return out;
}

std::string RandomRequestId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(getpid()));
  char buf[40];
  std::snprintf(buf, sizeof(buf), "vicregctl-%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- watch -------------------------------------------------------------------------------------

class EventPrinter {
 public:
  EventPrinter(bool json, bool tty) : json_(json), tty_(tty) {}
  void Print(const v1::JobEvent& ev) {
    if (json_) {
      std::cout << ToJson(ev, false) << std::endl;
      return;
    }
    std::string when = Timestamp(TimeOf(ev, "time", "time_unix")).substr(11);
    if (ev.kind() == v1::JobEvent::PROGRESS) {
      if (tty_) {
        std::cout << "\r\033[K" << ProgressBar(ev.progress(), 32) << " " << ProgressLine(ev.progress()) << std::flush;
        bar_shown_ = true;
      } else {
        std::cout << when << " " << StateName(ev.state()) << " " << ProgressLine(ev.progress()) << std::endl;
      }
      return;
    }
    if (bar_shown_) std::cout << "\r\033[K";
    std::cout << when << " " << StateName(ev.state()) << " " << TerminalSafe(ev.message()) << std::endl;
    bar_shown_ = false;
  }
  void Done() {
    if (bar_shown_) std::cout << std::endl;
    bar_shown_ = false;
  }

 private:
  bool json_, tty_;
  bool bar_shown_ = false;
};

int Watch(Client& client, const Globals& g, const std::string& job_id, int64_t from_sequence) {
  EventPrinter printer(g.json(), isatty(STDOUT_FILENO) != 0);
  int64_t seq = from_sequence;
  auto start = std::chrono::steady_clock::now();
  auto last_ok = start;
  while (true) {
    double limit = 0;
    if (g.wait_timeout_s > 0) {
      limit = g.wait_timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (limit <= 0) {
        printer.Done();
        std::cerr << "vicregctl: watch " << job_id << ": --wait-timeout " << g.wait_timeout_s << " s reached\n";
        return kExitFailed;
      }
    }
    auto ctx = client.Context(limit);
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_from_sequence(seq);
    auto reader = client.stub().WatchJob(ctx.get(), req);
    v1::JobEvent ev;
    while (reader->Read(&ev)) {
      seq = ev.sequence();
      last_ok = std::chrono::steady_clock::now();
      printer.Print(ev);
    }
    grpc::Status st = reader->Finish();
    if (st.ok()) break;
    double since_ok = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_ok).count();
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE && since_ok < g.reconnect_s) {
      // The coordinator restarted (or the network blinked): resume after the last event seen.
      printer.Done();
      if (!g.json()) std::cerr << "vicregctl: lost the coordinator, reconnecting...\n";
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    printer.Done();
    return ReportError("watch " + job_id, st);
  }
  printer.Done();
  v1::GetJobRequest greq;
  greq.set_job_id(job_id);
  v1::Job job;
  auto ctx = client.Context();
  grpc::Status st = client.stub().GetJob(ctx.get(), greq, &job);
  if (!st.ok()) return ReportError("status " + job_id, st);
  if (!g.json()) {
    std::cout << job.id() << " " << StateName(job.state());
    if (job.restarts() > 0)
      std::cout << " after " << job.restarts() << (job.restarts() == 1 ? " restart" : " restarts");
    std::cout << std::endl;
    if (job.state() != v1::SUCCEEDED && !job.last_error().empty())
      std::cerr << "last error: " << TerminalSafe(job.last_error()) << "\n";
  }
  return job.state() == v1::SUCCEEDED ? kExitOk : kExitFailed;
}

// ---- commands ----------------------------------------------------------------------------------

int Submit(Client& client, const Globals& g, const std::string& file, bool wait, const std::vector<std::string>& sets,
           std::string request_id, bool dry_run) {
  std::ifstream f(file);
  if (!f) {
    std::cerr << "vicregctl: submit: cannot read job file '" << file << "'\n";
    return kExitUsage;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  v1::SubmitJobRequest req;
  req.set_job_yaml(ss.str());
  if (request_id.empty()) request_id = RandomRequestId();
  req.set_client_request_id(request_id);
  for (const auto& s : sets) req.add_overrides(s);
  req.set_dry_run(dry_run);
  v1::SubmitJobResponse resp;
  grpc::Status st;
  // Retries are safe: the request id makes the submit idempotent.
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto ctx = client.Context();
    st = client.stub().SubmitJob(ctx.get(), req, &resp);
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt));
  }
  if (!st.ok()) return ReportError("submit " + file, st);
  if (dry_run) {
    if (g.json()) {
      std::cout << ToJson(resp, true) << std::endl;
    } else {
      std::cout << "dry run: " << TerminalSafe(file, false) << " is valid (job '" << TerminalSafe(resp.name(), false)
                << "', " << resp.ranks() << (resp.ranks() == 1 ? " rank" : " ranks") << "); it "
                << TerminalSafe(resp.reason(), false) << "; nothing was submitted" << std::endl;
    }
    return kExitOk;
  }
  if (g.json()) {
    std::cout << ToJson(resp, false) << std::endl;
  } else {
    std::cout << resp.job_id() << std::endl;
    if (resp.duplicate())
      std::cerr << "vicregctl: request " << request_id << " was already submitted as " << resp.job_id() << "\n";
  }
  if (!wait) return kExitOk;
  return Watch(client, g, resp.job_id(), 0);
}

int List(Client& client, const Globals& g, const std::string& state, int limit, bool all) {
  v1::ListJobsRequest req;
  if (!state.empty()) {
    std::string up = state;
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    v1::JobState s;
    if (!v1::JobState_Parse(up, &s) || s == v1::JOB_STATE_UNSPECIFIED) {
      std::cerr << "vicregctl: list: --state must be one of queued, starting, running, restarting, succeeded, "
                   "failed, cancelled; got '"
                << state << "'\n";
      return kExitUsage;
    }
    req.set_state(s);
  }
  req.set_page_size(limit);
  std::vector<v1::Job> jobs;
  int64_t total = 0;
  while (true) {
    v1::ListJobsResponse resp;
    auto ctx = client.Context();
    grpc::Status st = client.stub().ListJobs(ctx.get(), req, &resp);
    if (!st.ok()) return ReportError("list", st);
    total = resp.total_size();
    for (const auto& j : resp.jobs()) jobs.push_back(j);
    if (!all || resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (g.json()) {
    v1::ListJobsResponse out;
    for (const auto& j : jobs) *out.add_jobs() = j;
    out.set_total_size(total);
    std::cout << ToJson(out, true) << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  const double now = NowSeconds();
  bool any_wait = false;
  for (const auto& j : jobs) any_wait = any_wait || !ClusterWait(j, now).empty();
  for (const auto& j : jobs) {
    std::string progress = "-";
    if (j.progress().total_steps() > 0) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%lld/%lld", static_cast<long long>(j.progress().step()),
                    static_cast<long long>(j.progress().total_steps()));
      progress = buf;
    } else if (j.progress().step() > 0) {
      progress = std::to_string(j.progress().step());
    }
    rows.push_back({j.id(), j.name(), StateName(j.state()), std::to_string(j.ranks()), std::to_string(j.attempt()),
                    std::to_string(j.restarts()), progress, Timestamp(TimeOf(j, "created_time", "created_unix"))});
    if (any_wait) {
      std::string wait = ClusterWait(j, now);
      rows.back().push_back(wait.empty() ? "-" : wait);
    }
  }
  std::vector<std::string> header = {"ID", "NAME", "STATE", "RANKS", "ATTEMPT", "RESTARTS", "STEP", "CREATED"};
  if (any_wait) header.push_back("CLUSTER QUEUE");
  std::cout << RenderTable(header, rows);
  if (static_cast<int64_t>(jobs.size()) < total) {
    std::cerr << "(" << jobs.size() << " of " << total << " jobs; --all lists every one)\n";
  }
  return kExitOk;
}

int Status(Client& client, const Globals& g, const std::string& id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job j;
  auto ctx = client.Context();
  grpc::Status st = client.stub().GetJob(ctx.get(), req, &j);
  if (!st.ok()) return ReportError("status " + id, st);
  if (g.json()) {
    std::cout << ToJson(j, true) << std::endl;
    return kExitOk;
  }
  std::ostringstream o;
  o << j.id() << "  " << j.name() << "  " << StateName(j.state()) << "\n";
  o << "  ranks:      " << j.ranks() << " (" << j.device() << ")"
    << (j.placement().empty() ? "" : " on " + j.placement()) << ", priority " << j.priority() << "\n";
  o << "  attempt:    " << j.attempt() << ", restarts " << j.restarts() << "/" << j.max_restarts() << "\n";
  std::string progress = ProgressLine(j.progress());
  if (!progress.empty()) o << "  progress:   " << progress << "\n";
  const double created = TimeOf(j, "created_time", "created_unix");
  const double started = TimeOf(j, "started_time", "started_unix");
  const double finished = TimeOf(j, "finished_time", "finished_unix");
  o << "  created:    " << Timestamp(created);
  if (started > 0) o << ", started " << Timestamp(started);
  if (finished > 0) {
    o << ", finished " << Timestamp(finished) << " (ran " << Duration(finished - started)
      << ")";
  }
  o << "\n";
  if (j.state() == v1::QUEUED && !j.pending_reason().empty()) o << "  pending:    " << j.pending_reason() << "\n";
  if (std::string wait = ClusterWait(j, NowSeconds()); !wait.empty()) {
    o << "  cluster:    waiting in the cluster queue: " << wait << "\n";
  }
  if (!j.result_reason().empty()) o << "  result:     " << j.result_reason() << "\n";
  if (!j.last_error().empty()) {
    std::string err = j.last_error();
    std::string indented;
    for (char c : err) {
      indented += c;
      if (c == '\n') indented += "              ";
    }
    o << "  last error: " << indented << "\n";
  }
  o << "  run dir:    " << j.run_dir() << "\n";
  if (j.attempts_size() > 0) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& a : j.attempts()) {
      std::string cause = a.cause().substr(0, a.cause().find('\n'));
      // Time in the cluster queue (until it ran, ended, or now) and time running.
      const double now = NowSeconds();
      const double a_started = TimeOf(a, "started_time", "started_unix");
      const double a_ended = TimeOf(a, "ended_time", "ended_unix");
      const double a_queued = TimeOf(a, "queued_time", "queued_unix");
      const double a_running = TimeOf(a, "running_time", "running_unix");
      const double end = a_ended > 0 ? a_ended : now;
      std::string queued = "-";
      if (a_queued > 0) queued = Duration((a_running > 0 ? a_running : end) - a_queued);
      const double run_from = a_running > 0 ? a_running : a_queued > 0 ? 0 : a_started;
      std::string ran = run_from > 0 ? Duration(end - run_from) : "-";
      if (a_ended == 0) ran = a.phase() == v1::ATTEMPT_QUEUED ? "queued" : "running";
      rows.push_back({"#" + std::to_string(a.number()), a.placement(), a.launcher(), Timestamp(a_started),
                      queued, ran, a.exit_code() >= 0 ? std::to_string(a.exit_code()) : "-",
                      a.restart_reason().empty() ? "-" : a.restart_reason(), cause.empty() ? "-" : cause});
    }
    std::string table =
        RenderTable({"ATTEMPT", "SLOTS", "LAUNCHER", "STARTED", "QUEUED", "RAN", "EXIT", "WHY", "CAUSE"}, rows);
    o << "  attempts:\n";
    std::istringstream lines(table);
    std::string line;
    while (std::getline(lines, line)) o << "    " << line << "\n";
  }
  std::cout << TerminalSafe(o.str());  // names, reasons and errors come from job files and clients
  return kExitOk;
}

int Logs(Client& client, const Globals& g, const std::string& id, bool follow, int rank, bool launcher,
         int64_t offset) {
  v1::StreamLogsRequest req;
  req.set_job_id(id);
  if (rank >= 0) req.set_rank(rank);
  req.set_follow(follow);
  req.set_include_launcher(launcher);
  req.set_offset(offset);
  auto ctx = client.Context(follow ? g.wait_timeout_s : std::max(g.client.timeout_s, 60.0));
  auto reader = client.stub().StreamLogs(ctx.get(), req);
  v1::LogChunk chunk;
  bool prefix = rank < 0 || launcher;
  // On a terminal, a log line must not be able to drive it (escape sequences); to a file or a
  // pipe the bytes pass unchanged.
  const bool tty = isatty(STDOUT_FILENO) == 1;
  auto shown = [tty](const std::string& text) { return tty ? TerminalSafe(text) : text; };
  std::map<int, std::string> carry;  // partial last line per source
  auto emit = [&](int r, const std::string& line) {
    if (prefix) std::cout << (r < 0 ? std::string("[launcher] ") : "[rank " + std::to_string(r) + "] ");
    std::cout << shown(line) << "\n";
  };
  while (reader->Read(&chunk)) {
    if (g.json()) {
      std::cout << ToJson(chunk, false) << std::endl;
      continue;
    }
    if (!prefix) {
      std::cout << shown(chunk.data()) << std::flush;
      continue;
    }
    std::string& buf = carry[chunk.rank()];
    buf += chunk.data();
    size_t start = 0, nl;
    while ((nl = buf.find('\n', start)) != std::string::npos) {
      emit(chunk.rank(), buf.substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
    std::cout.flush();
  }
  for (auto& [r, rest] : carry)
    if (!rest.empty()) emit(r, rest);
  std::cout.flush();
  grpc::Status st = reader->Finish();
  if (!st.ok()) return ReportError("logs " + id, st);
  return kExitOk;
}

int Cancel(Client& client, const Globals& g, const std::string& id, const std::string& reason) {
  v1::CancelJobRequest req;
  req.set_job_id(id);
  req.set_reason(reason);
  v1::Job j;
  auto ctx = client.Context(std::max(g.client.timeout_s, 35.0));
  grpc::Status st = client.stub().CancelJob(ctx.get(), req, &j);
  if (!st.ok()) return ReportError("cancel " + id, st);
  if (g.json())
    std::cout << ToJson(j, true) << std::endl;
  else
    std::cout << j.id() << " " << StateName(j.state()) << std::endl;
  return kExitOk;
}

int Eval(Client& client, const Globals& g, const std::string& id) {
  v1::ListEvalsRequest req;
  req.set_job_id(id);
  v1::ListEvalsResponse resp;
  auto ctx = client.Context();
  grpc::Status st = client.stub().ListEvals(ctx.get(), req, &resp);
  if (!st.ok()) return ReportError("eval " + id, st);
  if (g.json()) {
    std::cout << ToJson(resp, true) << std::endl;
    return kExitOk;
  }
  if (resp.tasks_size() == 0) {
    std::cout << "no evaluations for " << id << " (the job's eval: section names epochs, or none landed yet)\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  char buf[32];
  for (const auto& t : resp.tasks()) {
    if (t.rows_size() == 0) {
      std::string note = t.error().substr(0, t.error().find('\n'));
      rows.push_back({std::to_string(t.epoch()), t.dataset(), EvalStateName(t.state()), "-", "-", "-", "-",
                      note.empty() ? "-" : note});
      continue;
    }
    for (const auto& r : t.rows()) {
      std::snprintf(buf, sizeof(buf), "%.2f%%", 100 * r.top1());
      std::string top1 = buf;
      std::snprintf(buf, sizeof(buf), "%.2f%%", 100 * r.top5());
      rows.push_back(
          {std::to_string(t.epoch()), t.dataset(), EvalStateName(t.state()), r.model(), r.probe(), top1, buf, "-"});
    }
  }
  std::cout << RenderTable({"EPOCH", "DATASET", "STATE", "MODEL", "PROBE", "TOP1", "TOP5", "NOTE"}, rows);
  return kExitOk;
}

// ---- report ------------------------------------------------------------------------------------

// The coordinator's HTTP endpoint (web UI + API): --http, else $VICREG_HTTP, else the host of
// --server on the default metrics port 9400.
std::string HttpEndpoint(const Globals& g, const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* h = std::getenv("VICREG_HTTP"); h && *h) return h;
  if (!g.local_http.empty()) return g.local_http;
  const std::string& s = g.client.server;
  const size_t colon = s.rfind(':');
  std::string host = colon == std::string::npos ? s : s.substr(0, colon);
  if (host.rfind("dns:", 0) == 0) host = host.substr(4);
  return (host.empty() ? "127.0.0.1" : host) + ":9400";
}

// Downloads GET /api/v1/jobs/<id>/report (one self-contained HTML file) and writes it atomically.
int Report(const Globals& g, const std::string& id, const std::string& http_flag, std::string out) {
  if (id.empty() || id.size() > 40 || id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
    throw vicreg::UserError("'" + id.substr(0, 40) + "' is not a job id (job-NNNNNN)");
  }
  if (out.empty()) out = id + "-report.html";
  const std::string endpoint = HttpEndpoint(g, http_flag);
  std::vector<std::pair<std::string, std::string>> headers;
  if (!g.client.token.empty()) headers.emplace_back("Authorization", "Bearer " + g.client.token);
  auto r = vicreg::http::Get(endpoint, "/api/v1/jobs/" + id + "/report", headers, std::max(g.client.timeout_s, 30.0));
  if (!r.error.empty()) {
    std::cerr << "vicregctl: report " << id << ": cannot reach the coordinator's HTTP endpoint " << endpoint << ": "
              << r.error << " (give it with --http HOST:PORT or VICREG_HTTP: the coordinator's --metrics-port)\n";
    return kExitFailed;
  }
  if (r.status != 200) {
    std::string msg = r.body;
    try {
      auto j = nlohmann::json::parse(r.body);
      if (j.contains("error")) msg = j["error"].get<std::string>();
    } catch (const std::exception&) {
    }
    std::cerr << "vicregctl: report " << id << ": HTTP " << r.status << " from " << endpoint << ": " << msg << "\n";
    return r.status == 404 ? kExitNotFound : r.status == 401 ? kExitAuth : kExitFailed;
  }
  vicreg::fs::AtomicWriteFile(out, r.body);
  std::cout << "wrote " << out << " (" << (r.body.size() + 1023) / 1024 << " KiB): the report of " << id
            << " (self-contained HTML: open it in any browser, no network needed)" << std::endl;
  return kExitOk;
}

}  // namespace
}  // namespace vicreg::cli

int main(int argc, char** argv) {
  using namespace vicreg::cli;
  Globals g;
  bool server_from_env = false;
  if (const char* s = std::getenv("VICREG_SERVER"); s && *s) {
    g.client.server = s;
    server_from_env = true;
  }
  std::string state_dir = "vicreg-state";  // vicreg_coordinator's default --state-dir
  if (const char* s = std::getenv("VICREG_STATE_DIR"); s && *s) state_dir = s;
  CLI::App app{"vicregctl: submit and follow VICReg training jobs on a vicreg_coordinator.", "vicregctl"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", [] { return vicreg::VersionText("vicregctl"); }, vicreg::kVersionFlagHelp);
  app.footer(
      "Environment: VICREG_SERVER (default for --server), VICREG_TOKEN (the token itself),\n"
      "VICREG_TOKEN_FILE (default for --token-file), VICREG_STATE_DIR (default for --state-dir).\n"
      "A coordinator on this machine is found through its state dir: without --server, the address in\n"
      "<state-dir>/coordinator.json; without a token, the token file it names (generated, mode 0600).\n"
      "Exit codes: 0 ok (watch/submit --wait: the job SUCCEEDED); 1 the job FAILED or was CANCELLED, or a\n"
      "runtime/connection error; 2 bad usage or a request the coordinator rejected as invalid\n"
      "(INVALID_ARGUMENT, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, ALREADY_EXISTS); 3 job not found;\n"
      "4 authentication failed (missing or wrong token).");
  auto* server_opt =
      app.add_option("--server", g.client.server, "coordinator HOST:PORT (env VICREG_SERVER)")->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "a local coordinator's state dir: its address and generated token are read from there when "
                 "--server / a token are not given (env VICREG_STATE_DIR)")
      ->capture_default_str();
  app.add_option("--token-file", g.token_file, "file holding the bearer token (env VICREG_TOKEN / VICREG_TOKEN_FILE)");
  app.add_flag("--tls", g.client.tls, "connect with TLS (system roots, or --tls-ca)");
  app.add_option("--tls-ca", g.client.tls_ca,
                 "PEM file of the CA that signed the coordinator's certificate (implies --tls)");
  app.add_option("--output,-o", g.output, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", g.client.timeout_s, "deadline of each request, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--wait-timeout", g.wait_timeout_s, "give up watching/following after this many seconds (0 = never)")
      ->check(CLI::NonNegativeNumber);

  std::string file, id, state, reason, request_id;
  bool wait = false, follow = false, all = false, launcher = false;
  int limit = 50, rank = -1;
  int64_t offset = 0, from_sequence = 0;
  std::vector<std::string> sets;

  auto* submit = app.add_subcommand("submit", "submit a job file; prints the job id");
  submit->add_option("file", file, "job YAML file")->required();
  submit->add_flag("--wait", wait, "watch the job until it ends; exit code 0 only if it SUCCEEDED");
  submit->add_option("--set", sets, "override key.path=value (repeatable)");
  submit->add_option("--request-id", request_id, "idempotency key (default: random; retries reuse it)");
  bool dry_run = false;
  submit->add_flag("--dry-run", dry_run,
                   "the coordinator validates the job and says whether it would start now or queue (and why); "
                   "nothing is stored or queued");
  std::vector<std::string> validate_sets;
  auto* validate = app.add_subcommand(
      "validate", "check a job file locally with the worker's and coordinator's validation (no coordinator needed)");
  std::vector<std::string> seed_files(3);
  auto* validate_file = validate->add_option("file", file, "job YAML file");
  auto* seed_data = validate->add_option("--data_config,--data-config", seed_files[0], "the seed form: data config file");
  auto* seed_train = validate->add_option("--train_config,--train-config", seed_files[1], "the seed form: train config file");
  auto* seed_model = validate->add_option("--model_config,--model-config", seed_files[2], "the seed form: model config file");
  for (auto* o : {seed_data, seed_train, seed_model}) o->excludes(validate_file);
  validate->add_option("--set", validate_sets, "override key.path=value (repeatable)");
  auto* list = app.add_subcommand("list", "list jobs, newest first");
  list->add_option("--state", state, "only jobs in this state (queued, running, succeeded, ...)");
  list->add_option("--limit", limit, "jobs per page")->check(CLI::Range(1, 100000))->capture_default_str();
  list->add_flag("--all", all, "follow every page");
  auto* status = app.add_subcommand("status", "state, attempt, progress with rate and ETA, pending reason, last error");
  status->add_option("id", id, "job id")->required();
  auto* watch = app.add_subcommand("watch", "follow a job's events and progress until it ends (exit code = outcome)");
  watch->add_option("id", id, "job id")->required();
  watch->add_option("--from-sequence", from_sequence, "resume after this event sequence");
  auto* logs = app.add_subcommand("logs", "print the ranks' output");
  logs->add_option("id", id, "job id")->required();
  logs->add_flag("-f,--follow", follow, "keep printing until the job ends");
  logs->add_option("--rank", rank, "only this rank")->check(CLI::NonNegativeNumber);
  logs->add_flag("--launcher", launcher, "include the launcher's (mpirun/sbatch) output");
  logs->add_option("--offset", offset, "start at this byte offset of each file")->check(CLI::NonNegativeNumber);
  auto* cancel = app.add_subcommand("cancel", "cancel a job (stops all its ranks, frees its slots)");
  cancel->add_option("id", id, "job id")->required();
  cancel->add_option("--reason", reason, "recorded in the job's events");
  auto* eval = app.add_subcommand("eval", "evaluation results of a job (linear probe / kNN per epoch)");
  eval->add_option("id", id, "job id")->required();
  auto* checkpoints = app.add_subcommand(
      "checkpoints", "a job's checkpoints: epoch, step, size, created, evaluation results (-o json for all fields)");
  checkpoints->add_option("id", id, "job id")->required();
  int export_epoch = 0;
  std::string export_out;
  auto* export_cmd = app.add_subcommand(
      "export", "fetch the encoder of an epoch checkpoint as safetensors (timm keys; exported by the coordinator, "
                "streamed, SHA-256 verified, written atomically)");
  export_cmd->add_option("id", id, "job id")->required();
  export_cmd->add_option("--epoch", export_epoch, "the epoch checkpoint to export (vicregctl checkpoints ID lists them)")
      ->required()
      ->check(CLI::PositiveNumber);
  export_cmd->add_option("-o,--out", export_out, "output file (default <id>-epoch_NNNN-encoder.safetensors)");
  std::string report_out, http_endpoint;
  auto* report = app.add_subcommand(
      "report", "write a job's self-contained HTML report (curves, evaluation, events, logs) through the web API");
  report->add_option("id", id, "job id")->required();
  report->add_option("-o,--out", report_out, "output file (default <id>-report.html)");
  report->add_option("--http", http_endpoint,
                     "the coordinator's HTTP HOST:PORT (its --metrics-port; env VICREG_HTTP; default: the --server "
                     "host, port 9400)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (*validate) {
    try {
      const bool seed = seed_data->count() + seed_train->count() + seed_model->count() > 0;
      if (!seed && file.empty()) {
        std::cerr << "vicregctl: validate: give a job file (vicregctl validate job.yaml) or the seed form's files "
                     "(--data_config F --train_config F --model_config F)\n";
        return kExitUsage;
      }
      return ValidateJobFile(file, seed ? seed_files : std::vector<std::string>{}, validate_sets, g.json());
    } catch (const std::exception& e) {
      std::cerr << "vicregctl: validate " << file << ": " << e.what() << "\n";
      return kExitFailed;
    }
  }
  try {
    if (!g.client.tls_ca.empty()) g.client.tls = true;
    if (g.token_file.empty()) {
      if (const char* t = std::getenv("VICREG_TOKEN"); t && *t)
        g.client.token = t;
      else if (const char* tf = std::getenv("VICREG_TOKEN_FILE"); tf && *tf)
        g.token_file = tf;
    }
    const bool server_given = server_from_env || server_opt->count() > 0;
    const LocalCoordinator local = ReadLocalCoordinator(state_dir);
    const bool local_server = !local.grpc.empty() && (!server_given || g.client.server == local.grpc);
    if (local_server) {
      g.client.server = local.grpc;
      g.local_http = local.http;
    }
    if (!g.token_file.empty()) {
      g.client.token = ReadTokenFile(g.token_file);
    } else if (g.client.token.empty() && local_server && !local.token_file.empty() &&
               access(local.token_file.c_str(), R_OK) == 0) {
      g.client.token = ReadTokenFile(local.token_file);  // only ever sent to the coordinator that wrote it
    }
    Client client(g.client);
    if (*submit) {
      if (dry_run && wait) throw vicreg::UserError("submit: --dry-run and --wait exclude each other (a dry run starts no job)");
      return Submit(client, g, file, wait, sets, request_id, dry_run);
    }
    if (*list) return List(client, g, state, limit, all);
    if (*status) return Status(client, g, id);
    if (*watch) return Watch(client, g, id, from_sequence);
    if (*logs) return Logs(client, g, id, follow, rank, launcher, offset);
    if (*cancel) return Cancel(client, g, id, reason);
    if (*eval) return Eval(client, g, id);
    if (*checkpoints) return ListCheckpoints(client, g.json(), id);
    if (*export_cmd) {
      // The export runs on the coordinator before the first byte arrives: a generous deadline.
      const double t = g.wait_timeout_s > 0 ? g.wait_timeout_s : std::max(g.client.timeout_s, 900.0);
      return ExportEncoder(client, g.json(), id, export_epoch, export_out, t);
    }
    if (*report) return Report(g, id, http_endpoint, report_out);
  } catch (const vicreg::UserError& e) {
    std::cerr << "vicregctl: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "vicregctl: " << e.what() << "\n";
    return kExitFailed;
  }
  return kExitUsage;
}
