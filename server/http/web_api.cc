#include "server/http/web_api.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <tuple>

#include "common/build_info.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/http_server.h"
#include "common/run_contract.h"
#include "server/admission.h"
#include "server/store.h"

namespace vicreg::web {
namespace {

using nlohmann::json;

struct HttpError {
  int status;
  std::string message;
};

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Integer query parameter in [lo, hi]; absent -> def. Bad: 400 naming the parameter.
int64_t IntParam(const http::Request& req, const std::string& name, int64_t def, int64_t lo, int64_t hi) {
  if (!req.HasParam(name)) return def;
  const std::string v = req.Param(name);
  int64_t out = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || out < lo || out > hi) {
    throw HttpError{400, "query parameter " + name + "='" + v.substr(0, 40) + "' is not valid: use an integer from " +
                             std::to_string(lo) + " to " + std::to_string(hi)};
  }
  return out;
}

// Removes terminal control sequences (ANSI CSI/OSC) and control characters other than \n and \t;
// a carriage return keeps what was drawn last on the line (progress bars).
std::string CleanLogText(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  size_t line_start = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    if (c == 0x1b) {
      if (i + 1 < in.size() && in[i + 1] == '[') {  // CSI: ESC [ params final(0x40-0x7e)
        i += 2;
        while (i < in.size() && !(in[i] >= 0x40 && in[i] <= 0x7e)) ++i;
      } else if (i + 1 < in.size() && in[i + 1] == ']') {  // OSC: ESC ] ... BEL or ESC backslash
        i += 2;
        while (i < in.size() && in[i] != '\a' && !(in[i] == 0x1b && i + 1 < in.size() && in[i + 1] == '\\')) ++i;
        if (i < in.size() && in[i] == 0x1b) ++i;
      } else {
        ++i;
      }
      continue;
    }
    if (c == '\r') {
      if (i + 1 < in.size() && in[i + 1] == '\n') continue;
      out.resize(line_start);  // the text after the carriage return overwrites the line
      continue;
    }
    if (c == '\n') {
      out += '\n';
      line_start = out.size();
      continue;
    }
    if (c < 0x20 && c != '\t') continue;
    if (c == 0x7f) continue;
    out += static_cast<char>(c);
  }
  return out;
}

// The newest value of each key over the last lines of metrics.jsonl (diagnostics are not computed
// every logged step, so the very last row may hold nulls), with the step of the newest row; null
// when there is no row yet.
json LatestRow(const std::string& run_dir) {
  if (run_dir.empty()) return nullptr;
  const std::string tail = contract::TailLines(contract::RunPaths(run_dir).metrics_jsonl(), 50, 65536);
  json out = nullptr;
  size_t end = tail.size();
  while (end > 0) {
    size_t start = tail.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    json j = json::parse(tail.begin() + static_cast<std::ptrdiff_t>(start), tail.begin() + static_cast<std::ptrdiff_t>(end),
                         nullptr, false);
    if (j.is_object() && j.contains("step") && j["step"].is_number()) {
      if (out.is_null()) out = json::object();
      for (auto it = j.begin(); it != j.end(); ++it) {
        const json& v = it.value();
        if (!(v.is_number() || v.is_boolean())) continue;
        if (!out.contains(it.key())) out[it.key()] = v;  // newer rows were seen first
      }
    }
    if (start == 0) break;
    end = start - 1;
  }
  return out;
}

struct Checkpoint {
  std::string file;
  std::string kind;
  int64_t epoch = 0;
  int64_t global_step = 0;
  int64_t bytes = 0;
  double time = 0;
};

// Complete checkpoints (those with a manifest, docs/ARCHITECTURE.md "Checkpoints"), oldest first.
std::vector<Checkpoint> ReadCheckpoints(const std::string& run_dir) {
  std::vector<Checkpoint> out;
  if (run_dir.empty()) return out;
  const std::string dir = contract::RunPaths(run_dir).checkpoints_dir();
  DIR* dp = opendir(dir.c_str());
  if (!dp) return out;
  std::vector<std::string> names;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) names.push_back(name);
  }
  closedir(dp);
  for (const auto& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 65536) continue;
    std::string text;
    try {
      text = fs::ReadFile(path);
    } catch (const std::exception&) {
      continue;  // removed by retention meanwhile
    }
    json m = json::parse(text, nullptr, false);
    if (!m.is_object() || !m.contains("file") || !m["file"].is_string()) continue;
    Checkpoint c;
    c.file = m["file"].get<std::string>();
    if (m.contains("kind") && m["kind"].is_string()) c.kind = m["kind"].get<std::string>();
    if (m.contains("epoch") && m["epoch"].is_number()) c.epoch = m["epoch"].get<int64_t>();
    if (m.contains("global_step") && m["global_step"].is_number()) c.global_step = m["global_step"].get<int64_t>();
    if (m.contains("bytes") && m["bytes"].is_number()) c.bytes = m["bytes"].get<int64_t>();
    c.time = static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9;
    out.push_back(c);
  }
  std::sort(out.begin(), out.end(), [](const Checkpoint& a, const Checkpoint& b) { return a.time < b.time; });
  return out;
}

bool IsLogName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  auto ends = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return name.size() > n && name.compare(name.size() - n, n, suf) == 0;
  };
  return ends(".out") || ends(".log");
}

// Log files of a run: rank-<r>.out in rank order, then the others by name.
std::vector<std::string> LogSources(const std::string& run_dir) {
  std::vector<std::string> names;
  if (run_dir.empty()) return names;
  const std::string dir = contract::RunPaths(run_dir).logs_dir();
  DIR* dp = opendir(dir.c_str());
  if (!dp) return names;
  while (dirent* e = readdir(dp)) {
    std::string name = e->d_name;
    if (!IsLogName(name)) continue;
    struct stat st {};
    if (stat((dir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    names.push_back(name);
  }
  closedir(dp);
  auto rank_of = [](const std::string& n) -> long {
    if (n.rfind("rank-", 0) != 0) return -1;
    return std::strtol(n.c_str() + 5, nullptr, 10);
  };
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    const bool ao = a.size() > 4 && a.compare(a.size() - 4, 4, ".out") == 0 && rank_of(a) >= 0;
    const bool bo = b.size() > 4 && b.compare(b.size() - 4, 4, ".out") == 0 && rank_of(b) >= 0;
    if (ao != bo) return ao;
    if (ao) return rank_of(a) < rank_of(b);
    const long ra = rank_of(a), rb = rank_of(b);
    if (ra != rb && ra >= 0 && rb >= 0) return ra < rb;
    return a < b;
  });
  return names;
}

json Error(const std::string& message) { return json{{"error", message}}; }

}  // namespace

WebApi::WebApi(server::JobStore& store) : store_(store) {}

std::string WebApi::Dump(const json& j, bool html_safe) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (!html_safe) return s;
  // '<', '>' and '&' only occur inside JSON strings, where \u escapes mean the same.
  std::string out;
  out.reserve(s.size() + 64);
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

json WebApi::Info() const {
  return json{{"version", BuildVersion()},
              {"revision", BuildRevision()},
              {"now", server::NowUnix()},
              {"metrics_url", "/metrics"},
              {"sd_url", "/sd"},
              {"max_points", kMaxPoints},
              {"thresholds",
               {{"std_min_amber", thresholds_.std_min_amber},
                {"std_min_red", thresholds_.std_min_red},
                {"pairwise_sim_red", thresholds_.pairwise_sim_red}}}};
}

std::optional<server::JobRecord> WebApi::FindJob(const std::string& id) const {
  if (!server::ValidJobId(id)) return std::nullopt;
  return store_.GetJob(id, /*with_spec=*/true);
}

json WebApi::Summary(const server::JobRecord& job) const {
  const server::JobProgress& p = job.progress;
  return json{{"id", job.id},
              {"name", job.name},
              {"state", http::AsciiLower(server::JobStateName(job.state))},
              {"pending_reason", job.pending_reason},
              {"priority", job.priority},
              {"ranks", job.ranks},
              {"device", job.device},
              {"attempt", job.attempt},
              {"restarts", job.restarts},
              {"max_restarts", job.max_restarts},
              {"created_unix", job.created_unix},
              {"started_unix", job.started_unix},
              {"finished_unix", job.finished_unix},
              {"last_error", job.last_error},
              {"result_reason", job.result_reason},
              {"placement", job.placement},
              {"progress",
               {{"step", p.step},
                {"total_steps", p.total_steps},
                {"epoch", p.epoch},
                {"num_epochs", p.num_epochs},
                {"loss", Num(p.loss)},
                {"images_per_s", Num(p.images_per_s)},
                {"steps_per_s", Num(p.steps_per_s)},
                {"eta_seconds", Num(p.eta_seconds)},
                {"updated_unix", p.updated_unix}}},
              {"latest", LatestRow(job.run_dir)}};
}

json WebApi::Jobs(const http::Request& req) const {
  server::JobStore::ListQuery q;
  if (req.HasParam("state") && !req.Param("state").empty()) {
    auto s = server::ParseJobState(req.Param("state"));
    if (!s || *s == server::JobState::kUnspecified) {
      throw HttpError{400, "query parameter state='" + req.Param("state").substr(0, 40) +
                               "' is not valid: use queued, starting, running, restarting, succeeded, failed or "
                               "cancelled"};
    }
    q.state = *s;
  }
  q.limit = static_cast<int>(IntParam(req, "limit", 100, 1, 1000));
  q.before_seq = IntParam(req, "before", 0, 0, std::numeric_limits<int64_t>::max());
  server::JobStore::ListPage page = store_.ListJobs(q);
  json jobs = json::array();
  for (const auto& j : page.jobs) jobs.push_back(Summary(j));
  json out{{"jobs", jobs},
           {"total", page.total},
           {"more", page.more},
           {"now", server::NowUnix()},
           {"thresholds", Info()["thresholds"]}};
  if (page.more && !page.jobs.empty()) out["next_before"] = page.jobs.back().seq;
  return out;
}

json WebApi::JobDetail(const server::JobRecord& job) const {
  json j = Summary(job);
  json attempts = json::array();
  for (const auto& a : store_.Attempts(job.id)) {
    attempts.push_back({{"number", a.number},
                        {"placement", a.placement},
                        {"launcher", a.launcher},
                        {"started_unix", a.started_unix},
                        {"ended_unix", a.ended_unix},
                        {"exit_code", a.exit_code},
                        {"cause", a.cause},
                        {"restart_reason", server::RestartReasonName(a.restart_reason)},
                        {"start_step", a.start_step}});
  }
  j["attempts"] = attempts;
  json ckpts = json::array();
  for (const auto& c : ReadCheckpoints(job.run_dir)) {
    ckpts.push_back({{"file", c.file},
                     {"kind", c.kind},
                     {"epoch", c.epoch},
                     {"global_step", c.global_step},
                     {"bytes", c.bytes},
                     {"time_unix", c.time}});
  }
  j["checkpoints"] = ckpts;
  json endpoints = json::array();
  if (!job.run_dir.empty() && server::IsActive(job.state)) {
    for (const auto& e : contract::ReadEndpoints(contract::RunPaths(job.run_dir))) {
      if (e.metrics.empty()) continue;
      endpoints.push_back({{"rank", e.rank}, {"host", e.host}, {"metrics", e.metrics}});
    }
  }
  j["endpoints"] = endpoints;
  j["log_sources"] = LogSources(job.run_dir);
  return j;
}

std::string WebApi::MetricsJson(const server::JobRecord& job, const SeriesQuery& q) {
  Series s;
  if (!job.run_dir.empty()) s = cache_.Query(contract::RunPaths(job.run_dir).metrics_jsonl(), q);
  std::string body = SeriesJson(s, q.max_points);
  // Prepend the job id (SeriesJson is an object literal starting with '{').
  return "{\"job_id\":" + Dump(json(job.id)) + "," + body.substr(1);
}

json WebApi::Evals(const server::JobRecord& job) const {
  json tasks = json::array();
  json table = json::array();
  auto evals = store_.EvalTasks(job.id);
  std::sort(evals.begin(), evals.end(), [](const server::EvalTaskRecord& a, const server::EvalTaskRecord& b) {
    return std::tie(a.epoch, a.dataset) < std::tie(b.epoch, b.dataset);
  });
  for (const auto& t : evals) {
    json rows = json::array();
    // probe -> model -> row
    std::map<std::string, std::map<std::string, const server::EvalRowRecord*>> by_probe;
    for (const auto& r : t.rows) {
      rows.push_back({{"model", r.model}, {"probe", r.probe}, {"epoch", r.epoch}, {"top1", r.top1}, {"top5", r.top5}});
      by_probe[r.probe][r.model] = &r;
    }
    tasks.push_back({{"epoch", t.epoch},
                     {"dataset", t.dataset},
                     {"state", http::AsciiLower(server::EvalStateName(t.state))},
                     {"attempts", t.attempts},
                     {"error", t.error},
                     {"updated_unix", t.updated_unix},
                     {"rows", rows}});
    // linear first, then knn, then anything else
    std::vector<std::string> probes;
    for (const char* p : {"linear", "knn"}) {
      if (by_probe.count(p)) probes.push_back(p);
    }
    for (const auto& [p, _] : by_probe) {
      if (p != "linear" && p != "knn") probes.push_back(p);
    }
    for (const auto& probe : probes) {
      const auto& models = by_probe[probe];
      auto top = [&](const char* model, bool top5) -> json {
        auto it = models.find(model);
        if (it == models.end()) return nullptr;
        return Num(top5 ? it->second->top5 : it->second->top1);
      };
      json row{{"epoch", t.epoch},
               {"dataset", t.dataset},
               {"probe", probe},
               {"vicreg_top1", top("vicreg", false)},
               {"vicreg_top5", top("vicreg", true)},
               {"random_init_top1", top("random_init", false)},
               {"random_init_top5", top("random_init", true)},
               {"raw_pixels_top1", top("raw_pixels", false)},
               {"raw_pixels_top5", top("raw_pixels", true)}};
      auto delta = [&](const char* ref) -> json {
        json a = row["vicreg_top1"], b = row[std::string(ref) + "_top1"];
        if (!a.is_number() || !b.is_number()) return nullptr;
        return a.get<double>() - b.get<double>();
      };
      row["delta_random_init"] = delta("random_init");
      row["delta_raw_pixels"] = delta("raw_pixels");
      table.push_back(row);
    }
  }
  return json{{"job_id", job.id}, {"tasks", tasks}, {"table", table}};
}

json WebApi::Events(const server::JobRecord& job, int limit) const {
  struct Item {
    double time;
    int64_t order;
    json j;
  };
  std::deque<Item> items;
  int64_t after = 0, order = 0, scanned = 0;
  bool truncated = false;
  constexpr int64_t kMaxScanned = 200000;  // progress events are skipped; this bounds the work
  for (;;) {
    auto page = store_.EventsAfter(job.id, after, 1000);
    if (page.empty()) break;
    for (const auto& e : page) {
      after = e.sequence;
      if (e.kind == server::EventKind::kProgress) continue;
      std::string kind = e.kind == server::EventKind::kState ? "state" : "message";
      if (e.kind == server::EventKind::kState) {
        if (e.state == server::JobState::kRestarting) kind = "restart";
        else if (e.state == server::JobState::kFailed) kind = "failure";
        else if (e.message.rfind("submitted", 0) == 0) kind = "submitted";
      } else if (e.message.rfind("eval", 0) == 0) {
        kind = "eval";
      }
      items.push_back({e.time_unix, order++,
                       json{{"time_unix", e.time_unix},
                            {"kind", kind},
                            {"state", http::AsciiLower(server::JobStateName(e.state))},
                            {"attempt", e.attempt},
                            {"sequence", e.sequence},
                            {"text", e.message}}});
      if (static_cast<int>(items.size()) > limit) {
        items.pop_front();
        truncated = true;
      }
    }
    scanned += static_cast<int64_t>(page.size());
    if (scanned >= kMaxScanned) {
      truncated = true;
      break;
    }
  }
  for (const auto& c : ReadCheckpoints(job.run_dir)) {
    std::string text = "checkpoint " + c.file + " (" + (c.kind.empty() ? "" : c.kind + ", ") + "epoch " +
                       std::to_string(c.epoch) + ", step " + std::to_string(c.global_step) + ")";
    items.push_back({c.time, order++, json{{"time_unix", c.time}, {"kind", "checkpoint"}, {"text", text}}});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.time < b.time; });
  while (static_cast<int>(items.size()) > limit) {
    items.pop_front();
    truncated = true;
  }
  json events = json::array();
  for (auto& i : items) events.push_back(std::move(i.j));
  return json{{"job_id", job.id}, {"events", events}, {"truncated", truncated}};
}

json WebApi::Logs(const server::JobRecord& job, const std::string& source, int lines) const {
  const auto sources = LogSources(job.run_dir);
  std::string name = source;
  if (name.empty()) {
    if (sources.empty()) return json{{"job_id", job.id}, {"sources", json::array()}, {"source", ""}, {"text", ""}};
    name = sources.front();
  }
  if (std::find(sources.begin(), sources.end(), name) == sources.end()) {
    std::string valid;
    for (const auto& s : sources) valid += (valid.empty() ? "" : ", ") + s;
    throw HttpError{400, "query parameter source='" + name.substr(0, 64) + "' is not a log of " + job.id +
                             (valid.empty() ? " (it has no logs yet)" : ": use one of " + valid)};
  }
  const std::string path = contract::RunPaths(job.run_dir).logs_dir() + "/" + name;
  constexpr int64_t kMaxBytes = 512 * 1024;
  std::string text = contract::TailLines(path, lines + 1, kMaxBytes);
  text = CleanLogText(text);
  size_t count = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + (text.empty() ? 0 : 1);
  bool truncated = false;
  if (count > static_cast<size_t>(lines)) {  // drop lines beyond the request
    size_t drop = count - static_cast<size_t>(lines), pos = 0;
    for (size_t i = 0; i < drop; ++i) pos = text.find('\n', pos) + 1;
    text = text.substr(pos);
    truncated = true;
  }
  struct stat st {};
  const int64_t bytes = stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
  if (bytes > kMaxBytes) truncated = true;
  return json{{"job_id", job.id}, {"sources", sources}, {"source", name}, {"lines", lines},
              {"bytes", bytes},   {"truncated", truncated}, {"text", text}};
}

json WebApi::Spec(const server::JobRecord& job) const { return json{{"job_id", job.id}, {"yaml", job.spec_yaml}}; }

void WebApi::Handle(const http::Request& req, http::Response& res) {
  res.content_type = "application/json";
  res.headers.emplace_back("Cache-Control", "no-store");
  try {
    const std::string prefix = "/api/v1/";
    VICREG_CHECK(req.path.rfind(prefix, 0) == 0, "WebApi::Handle got " + req.path);
    std::string rest = req.path.substr(prefix.size());
    if (rest == "info") {
      res.body = Dump(Info());
      return;
    }
    if (rest == "jobs" || rest == "jobs/") {
      res.body = Dump(Jobs(req));
      return;
    }
    if (rest.rfind("jobs/", 0) != 0) throw HttpError{404, "no such API path: " + req.path.substr(0, 100)};
    rest = rest.substr(5);
    const size_t slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    const std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
    auto job = FindJob(id);
    if (!job) {
      throw HttpError{404, server::ValidJobId(id) ? "job " + id + " not found"
                                                  : "'" + id.substr(0, 40) + "' is not a job id (job-NNNNNN)"};
    }
    if (what.empty()) {
      res.body = Dump(JobDetail(*job));
    } else if (what == "metrics") {
      SeriesQuery q;
      q.from = IntParam(req, "from", q.from, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
      q.to = IntParam(req, "to", q.to, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
      q.max_points = static_cast<int>(IntParam(req, "max_points", kMaxPoints, 2, kMaxPoints));
      if (q.from > q.to) {
        throw HttpError{400, "query parameters from=" + std::to_string(q.from) + " and to=" + std::to_string(q.to) +
                                 " are not valid: from must be <= to"};
      }
      const std::string keys = req.Param("keys");
      for (size_t pos = 0; !keys.empty() && pos <= keys.size();) {
        size_t comma = keys.find(',', pos);
        if (comma == std::string::npos) comma = keys.size();
        if (comma > pos) q.keys.push_back(keys.substr(pos, comma - pos));
        pos = comma + 1;
      }
      res.body = MetricsJson(*job, q);
    } else if (what == "evals") {
      res.body = Dump(Evals(*job));
    } else if (what == "events") {
      res.body = Dump(Events(*job, static_cast<int>(IntParam(req, "limit", 500, 1, 5000))));
    } else if (what == "logs") {
      res.body = Dump(Logs(*job, req.Param("source"), static_cast<int>(IntParam(req, "lines", 300, 1, 5000))));
    } else if (what == "spec") {
      res.body = Dump(Spec(*job));
    } else {
      throw HttpError{404, "no such API path: " + req.path.substr(0, 100) +
                               " (a job has metrics, evals, events, logs, spec, report)"};
    }
  } catch (const HttpError& e) {
    res.status = e.status;
    res.body = Dump(Error(e.message));
  } catch (const UserError& e) {
    res.status = 400;
    res.body = Dump(Error(e.what()));
  } catch (const std::exception& e) {
    res.status = 500;
    res.body = Dump(Error(e.what()));
  }
}

}  // namespace vicreg::web
