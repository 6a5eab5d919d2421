// The web UI and its JSON API in process (a real JobStore, a real run directory, a real
// http::Server on a loopback port): documents, parameter errors, authentication, escaping, report.
#include "server/http/web_ui.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "server/store.h"
#include "tests/server/test_util.h"

namespace vicreg::web {
namespace {

using nlohmann::json;
constexpr const char* kEvil = "<script>alert(1)</script>";

std::string RawRequest(int port, const std::string& req) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string Header(const http::ClientResponse& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

class WebUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<testutil::TempDir>("webui");
    fs::MakeDirs(dir_->path() + "/runs");
    server::JobStore::Options so;
    so.path = dir_->path() + "/coordinator.db";
    so.runs_root = dir_->path() + "/runs";
    store_ = std::make_unique<server::JobStore>(so);
    server::JobRecord rec;
    rec.name = kEvil;  // the service refuses such names; the UI must still render them as text
    rec.spec_yaml = "name: x\ndata:\n  data_dir: /data/<b>bold</b>\n";
    server::EventRecord ev;
    ev.kind = server::EventKind::kState;
    ev.message = "submitted: 1 rank";
    rec = store_->InsertJob(rec, ev).job;
    rec.state = server::JobState::kFailed;
    rec.attempt = 1;
    rec.last_error = "rank 0 exited with code 1: <img src=x onerror=alert(2)>";
    rec.progress.step = 12;
    rec.progress.total_steps = 48;
    server::EventRecord fail;
    fail.kind = server::EventKind::kState;
    fail.state = server::JobState::kFailed;
    fail.message = "failed: <b>boom</b>";
    store_->UpdateJob(rec, fail);
    id_ = rec.id;
    run_ = rec.run_dir;
    fs::MakeDirs(run_ + "/logs");
    fs::MakeDirs(run_ + "/checkpoints");
    std::string metrics;
    for (int s = 1; s <= 12; ++s) {
      metrics += json{{"step", s},
                      {"loss", 10.0 / s},
                      {"std_min", s == 11 ? json(0.05) : s == 12 ? json(nullptr) : json(0.5)},  // null: not computed
                      {"pairwise_sim", 0.95}}
                     .dump() +
                 "\n";
    }
    testutil::WriteText(run_ + "/metrics.jsonl", metrics);
    testutil::WriteText(run_ + "/logs/rank-0.out",
                        "== attempt 1 ==\n\x1b[31mred\x1b[0m <script>alert(3)</script>\nprogress 10%\rprogress 100%\n");
    testutil::WriteText(run_ + "/logs/rank-1.out", "rank one\n");
    testutil::WriteText(run_ + "/checkpoints/epoch_0001.json",
                        R"({"file":"epoch_0001.pt","bytes":10,"epoch":1,"global_step":8,"kind":"epoch"})");
    server::EvalTaskRecord t;
    t.job_id = id_;
    t.epoch = 1;
    t.dataset = "fashion_mnist";
    t.state = server::EvalState::kSucceeded;
    t.rows = {{1, "fashion_mnist", "linear", "vicreg", 0.8125, 0.99},
              {0, "fashion_mnist", "linear", "random_init", 0.5, 0.9},
              {0, "fashion_mnist", "linear", "raw_pixels", 0.75, 0.95},
              {1, "fashion_mnist", "knn", "vicreg", 0.7, 0.98}};
    ASSERT_TRUE(store_->InsertEvalTask(t));
    store_->UpdateEvalTask(t, true);
  }

  void Serve(const std::string& token, bool exposed = false) {
    WebUiOptions o;
    o.token = token;
    o.exposed = exposed;
    server_.reset();  // stop serving before the UI it calls goes away
    ui_ = std::make_unique<WebUi>(*store_, o);
    server_ = std::make_unique<http::Server>(http::ServerOptions{});
    ui_->Mount(*server_);
  }
  http::ClientResponse Get(const std::string& path, std::vector<std::pair<std::string, std::string>> h = {}) {
    return http::Get(server_->endpoint(), path, h);
  }
  json GetJson(const std::string& path, int want = 200) {
    auto r = Get(path);
    EXPECT_EQ(r.status, want) << path << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json") << path;
    return json::parse(r.body);
  }

  std::unique_ptr<testutil::TempDir> dir_;
  std::unique_ptr<server::JobStore> store_;
  std::unique_ptr<WebUi> ui_;
  std::unique_ptr<http::Server> server_;
  std::string id_, run_;
};

TEST_F(WebUiTest, ApiDocumentsCarryTheJobItsCurvesEvalsEventsLogsAndSpec) {
  Serve("");
  json jobs = GetJson("/api/v1/jobs");
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  const json& j = jobs["jobs"][0];
  EXPECT_EQ(j["name"], kEvil);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["latest"]["step"], 12);
  EXPECT_DOUBLE_EQ(j["latest"]["std_min"].get<double>(), 0.05);
  EXPECT_EQ(jobs["thresholds"]["std_min_amber"], 0.1);
  EXPECT_EQ(GetJson("/api/v1/jobs?state=running")["jobs"].size(), 0u);

  json d = GetJson("/api/v1/jobs/" + id_);
  EXPECT_EQ(d["log_sources"], json({"rank-0.out", "rank-1.out"}));
  ASSERT_EQ(d["checkpoints"].size(), 1u);
  EXPECT_EQ(d["checkpoints"][0]["global_step"], 8);

  json m = GetJson("/api/v1/jobs/" + id_ + "/metrics");
  EXPECT_EQ(m["rows"], 12);
  EXPECT_EQ(m["x"].size(), 12u);
  EXPECT_FALSE(m["downsampled"].get<bool>());
  EXPECT_DOUBLE_EQ(m["series"]["loss"][1].get<double>(), 5.0);
  json ds = GetJson("/api/v1/jobs/" + id_ + "/metrics?max_points=4&from=2&keys=loss");
  EXPECT_EQ(ds["in_range"], 11);
  EXPECT_TRUE(ds["downsampled"].get<bool>());
  EXPECT_LE(ds["x"].size(), 4u);
  EXPECT_EQ(ds["series"].size(), 1u);

  json ev = GetJson("/api/v1/jobs/" + id_ + "/evals");
  ASSERT_EQ(ev["table"].size(), 2u);
  const json& lin = ev["table"][0];
  EXPECT_EQ(lin["probe"], "linear");
  EXPECT_DOUBLE_EQ(lin["vicreg_top1"].get<double>(), 0.8125);
  EXPECT_DOUBLE_EQ(lin["delta_random_init"].get<double>(), 0.3125);
  EXPECT_DOUBLE_EQ(lin["delta_raw_pixels"].get<double>(), 0.0625);
  EXPECT_TRUE(ev["table"][1]["random_init_top1"].is_null());

  json events = GetJson("/api/v1/jobs/" + id_ + "/events");
  std::vector<std::string> kinds;
  for (const auto& e : events["events"]) kinds.push_back(e["kind"]);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "submitted"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "failure"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "checkpoint"), kinds.end());

  json logs = GetJson("/api/v1/jobs/" + id_ + "/logs");
  EXPECT_EQ(logs["source"], "rank-0.out");
  EXPECT_EQ(logs["text"], "== attempt 1 ==\nred <script>alert(3)</script>\nprogress 100%") << logs["text"];
  EXPECT_EQ(GetJson("/api/v1/jobs/" + id_ + "/logs?source=rank-1.out&lines=1")["text"], "rank one");
  EXPECT_EQ(GetJson("/api/v1/jobs/" + id_ + "/spec")["yaml"], "name: x\ndata:\n  data_dir: /data/<b>bold</b>\n");
  EXPECT_EQ(GetJson("/api/v1/info")["auth"], false);
}

TEST_F(WebUiTest, BadParametersAreClearErrors) {
  Serve("");
  auto err = [&](const std::string& path, int status) {
    json j = GetJson(path, status);
    return j.value("error", std::string());
  };
  EXPECT_NE(err("/api/v1/jobs/" + id_ + "/metrics?max_points=5000", 400).find("max_points='5000'"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/" + id_ + "/metrics?max_points=abc", 400).find("2 to 2000"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/" + id_ + "/metrics?from=9&to=3", 400).find("from must be <= to"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs?state=bogus", 400).find("state='bogus'"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs?limit=0", 400).find("limit"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/job-999999", 404).find("not found"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/..%2f..%2fetc", 404).find("is not a job id"), std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/" + id_ + "/logs?source=../../coordinator.db", 400).find("rank-0.out, rank-1.out"),
            std::string::npos);
  EXPECT_NE(err("/api/v1/jobs/" + id_ + "/nope", 404).find("metrics, evals"), std::string::npos);
  EXPECT_EQ(Get("/assets/nope.js").status, 404);
  EXPECT_EQ(Get("/assets/index.html").status, 404);
  EXPECT_EQ(Get("/assets/app.js").content_type, "text/javascript; charset=utf-8");
}

TEST_F(WebUiTest, TokenGuardsPagesAndApiAndSignInSetsAnHttpOnlyCookie) {
  const std::string token = "s3cret-token";
  Serve(token);
  // Refused without the token: no job data anywhere.
  auto page = Get("/");
  EXPECT_EQ(page.status, 401);
  EXPECT_NE(page.body.find("data-page=\"login\""), std::string::npos);
  EXPECT_EQ(page.body.find(id_), std::string::npos);
  auto api = Get("/api/v1/jobs");
  EXPECT_EQ(api.status, 401);
  EXPECT_EQ(api.body.find(id_), std::string::npos);
  EXPECT_EQ(Header(api, "www-authenticate"), "Bearer realm=\"vicreg\"");
  EXPECT_EQ(Get("/api/v1/jobs/" + id_ + "/report").status, 401);
  EXPECT_EQ(Get("/api/v1/jobs", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(Get("/api/v1/jobs", {{"Cookie", "vicreg_session=forged"}}).status, 401);
  // Open: the assets (no data), the login form.
  EXPECT_EQ(Get("/assets/app.js").status, 200);
  EXPECT_EQ(Get("/login").status, 200);
  // The bearer token works for scripts.
  EXPECT_EQ(Get("/api/v1/jobs", {{"Authorization", "Bearer " + token}}).status, 200);
  // ?token= signs in and redirects to the same page without it.
  auto wrong = Get("/jobs/" + id_ + "?token=nope");
  EXPECT_EQ(wrong.status, 303);
  EXPECT_EQ(Header(wrong, "location"), "/login?failed=1&next=/jobs/" + id_);
  EXPECT_EQ(Header(wrong, "set-cookie"), "");
  auto in = Get("/jobs/" + id_ + "?token=" + token + "&max_points=20");
  EXPECT_EQ(in.status, 303);
  EXPECT_EQ(Header(in, "location"), "/jobs/" + id_ + "?max_points=20");
  const std::string cookie = Header(in, "set-cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  EXPECT_EQ(cookie.find(token), std::string::npos) << "the cookie must not carry the token itself";
  const std::string session = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(Get("/", {{"Cookie", session}}).status, 200);
  EXPECT_EQ(Get("/api/v1/jobs", {{"Cookie", "theme=dark; " + session}}).status, 200);
  EXPECT_EQ(GetJson("/api/v1/info", 401).count("auth"), 0u);
  // The sign-in form: POST /login, back to a local page only.
  auto post = [&](const std::string& body) {
    return RawRequest(server_->port(), "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                                       "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  };
  std::string ok = post("token=" + token + "&next=%2Fjobs%2F" + id_);
  EXPECT_NE(ok.find("303"), std::string::npos) << ok;
  EXPECT_NE(ok.find("Location: /jobs/" + id_), std::string::npos) << ok;
  EXPECT_NE(ok.find("Set-Cookie: vicreg_session="), std::string::npos) << ok;
  std::string evil = post("token=" + token + "&next=%2F%2Fevil.example%2Fx");
  EXPECT_NE(evil.find("Location: /\r\n"), std::string::npos) << evil;
  std::string bad = post("token=nope&next=%2F");
  EXPECT_NE(bad.find("Location: /login?failed=1"), std::string::npos) << bad;
  EXPECT_EQ(bad.find("Set-Cookie"), std::string::npos) << bad;
}

// Beyond loopback without a token, job data is not served at all (metrics/sd are not the UI's).
TEST_F(WebUiTest, NonLoopbackWithoutATokenIsRefused) {
  Serve("", /*exposed=*/true);
  auto page = Get("/");
  EXPECT_EQ(page.status, 403);
  EXPECT_NE(page.body.find("--token-file"), std::string::npos) << page.body;
  EXPECT_EQ(Get("/api/v1/jobs").status, 403);
  EXPECT_EQ(Get("/api/v1/jobs/" + id_ + "/report").status, 403);
  Serve("tok", /*exposed=*/true);
  EXPECT_EQ(Get("/api/v1/jobs", {{"Authorization", "Bearer tok"}}).status, 200);
}

TEST_F(WebUiTest, PagesCarryAStrictContentSecurityPolicy) {
  Serve("");
  auto page = Get("/jobs/" + id_);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(Header(page, "content-security-policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(Header(page, "x-content-type-options"), "nosniff");
  EXPECT_EQ(page.body.find(kEvil), std::string::npos);  // the shell holds no data
}

TEST_F(WebUiTest, ReportIsOneSelfContainedFileWithTheDataAsInertJson) {
  Serve("");
  auto r = Get("/api/v1/jobs/" + id_ + "/report");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(Header(r, "content-disposition").find(id_ + "-report.html"), std::string::npos);
  const std::string& html = r.body;
  // Nothing fetched from anywhere: no external scripts, styles or links to assets.
  EXPECT_EQ(html.find("<script src"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("/assets/"), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  // Job content only inside the JSON block, with '<' escaped: it cannot open an element.
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<img src=x"), std::string::npos);
  const std::string open = "<script id=\"vicreg-report-data\" type=\"application/json\">";
  const size_t a = html.find(open), b = html.find("</script>", a);
  ASSERT_NE(a, std::string::npos);
  json data = json::parse(html.substr(a + open.size(), b - a - open.size()));
  EXPECT_EQ(data["job"]["name"], kEvil);
  EXPECT_EQ(data["metrics"]["rows"], 12);
  EXPECT_EQ(data["evals"]["table"].size(), 2u);
  EXPECT_NE(data["logs"]["text"].get<std::string>().find("alert(3)"), std::string::npos);
  EXPECT_THROW(ui_->Report("job-999999"), UserError);
}

}  // namespace
}  // namespace vicreg::web
