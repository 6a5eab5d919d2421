#include "server/http/web_ui.h"

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/errors.h"
#include "common/http_server.h"
#include "server/http/ui_assets.h"
#include "server/job.h"

namespace vicreg::web {
namespace {

using nlohmann::json;

constexpr const char* kCookie = "vicreg_session";
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

void SecurityHeaders(http::Response& r) {
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

// Equal length and bytes, in time that depends only on the lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// A local path to go back to after signing in: "/..." but never "//host" or a backslash trick.
std::string SafeNext(const std::string& next) {
  if (next.empty() || next[0] != '/' || (next.size() > 1 && (next[1] == '/' || next[1] == '\\'))) return "/";
  for (char c : next) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '\\') return "/";
  }
  return next.substr(0, 2000);
}

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// The query string of `req` without `drop` (for the redirect after ?token=).
std::string QueryWithout(const http::Request& req, const std::string& drop) {
  std::string q;
  for (const auto& [k, v] : req.params) {
    if (k == drop) continue;
    q += (q.empty() ? "?" : "&") + UrlEncode(k) + "=" + UrlEncode(v);
  }
  return q;
}

const Asset& MustFind(const char* name) {
  const Asset* a = FindAsset(name);
  VICREG_CHECK(a != nullptr, std::string("web UI asset ") + name + " is not embedded");
  return *a;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t pos = s.find(from);
  VICREG_CHECK(pos != std::string::npos, "web UI shell has no '" + from + "'");
  return s.replace(pos, from.size(), to);
}

// An asset's text for an inline <script>/<style>: must not close the element early.
std::string Inline(const char* name, const char* closing) {
  std::string text = MustFind(name).text();
  const std::string lower = http::AsciiLower(text);
  VICREG_CHECK(lower.find(closing) == std::string::npos && lower.find("<!--") == std::string::npos,
               std::string("asset ") + name + " cannot be inlined: it contains " + closing + " or <!--");
  return text;
}

}  // namespace

std::string BuildReportHtml(const std::string& title, const std::string& data_json) {
  std::string html = MustFind("index.html").text();
  html = Replace(html, "<title>vicreg</title>",
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src "
                 "'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n<title>" +
                     title + "</title>");
  html = Replace(html, "<link rel=\"stylesheet\" href=\"/assets/style.css\">",
                 "<style>\n" + Inline("style.css", "</style") + "</style>");
  html = Replace(html, "<script src=\"/assets/charts.js\"></script>",
                 "<script>\n" + Inline("charts.js", "</script") + "</script>");
  html = Replace(html, "<script src=\"/assets/app.js\"></script>",
                 "<script id=\"vicreg-report-data\" type=\"application/json\">" + data_json +
                     "</script>\n<script>\n" + Inline("app.js", "</script") + "</script>");
  return html;
}

WebUi::WebUi(server::JobStore& store, WebUiOptions options) : api_(store), o_(std::move(options)) {}

std::string WebUi::NewSession() {
  unsigned char raw[24];
  size_t got = 0;
  while (got < sizeof raw) {
    const ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw RuntimeFailure("getrandom failed: " + std::string(std::strerror(errno)));
    got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (unsigned char c : raw) {
    id += hex[c >> 4];
    id += hex[c & 15];
  }
  const double now = server::NowUnix();
  std::lock_guard<std::mutex> lock(sessions_mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) it = it->second < now ? sessions_.erase(it) : std::next(it);
  while (sessions_.size() >= o_.max_sessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    sessions_.erase(oldest);
  }
  sessions_[id] = now + o_.session_ttl_s;
  return id;
}

bool WebUi::Authorized(const http::Request& req) {
  if (o_.token.empty()) return true;
  const std::string auth = req.Header("authorization");
  if (auth.size() > 7 && http::AsciiLower(auth.substr(0, 7)) == "bearer ") {
    return ConstantTimeEquals(auth.substr(7), o_.token);
  }
  const std::string sid = req.Cookie(kCookie);
  if (sid.empty()) return false;
  std::lock_guard<std::mutex> lock(sessions_mu_);
  auto it = sessions_.find(sid);
  return it != sessions_.end() && it->second >= server::NowUnix();
}

// Without a token the UI only serves loopback listeners (see WebUiOptions::exposed).
static bool RefuseExposed(const WebUiOptions& o, http::Response& res) {
  if (!o.token.empty() || !o.exposed) return false;
  res.status = 403;
  res.content_type = "text/plain; charset=utf-8";
  res.body =
      "the web UI and its API are not served on a non-loopback address without a token: start "
      "vicreg_coordinator with --token-file, or bind --metrics-port to 127.0.0.1\n";
  return true;
}

void WebUi::Page(const http::Request& req, http::Response& res) {
  SecurityHeaders(res);
  if (RefuseExposed(o_, res)) return;
  res.headers.emplace_back("Content-Security-Policy", kCsp);
  res.headers.emplace_back("Cache-Control", "no-store");
  res.content_type = "text/html; charset=utf-8";
  const bool login_page = req.path == "/login";
  if (!o_.token.empty() && req.HasParam("token") && !login_page) {
    if (ConstantTimeEquals(req.Param("token"), o_.token)) {
      res.status = 303;
      res.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + NewSession() +
                                                 "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                                 std::to_string(static_cast<long>(o_.session_ttl_s)));
      res.headers.emplace_back("Location", SafeNext(req.path) + QueryWithout(req, "token"));
      res.body = "signed in\n";
    } else {
      res.status = 303;
      res.headers.emplace_back("Location", "/login?failed=1&next=" + UrlEncode(SafeNext(req.path)));
      res.body = "wrong token\n";
    }
    return;
  }
  std::string shell = MustFind("index.html").text();
  if (!login_page && !Authorized(req)) {
    res.status = 401;
    res.body = Replace(shell, "<div id=\"app\">", "<div id=\"app\" data-page=\"login\">");
    return;
  }
  res.body = login_page ? Replace(shell, "<div id=\"app\">", "<div id=\"app\" data-page=\"login\">") : shell;
}

void WebUi::Login(const http::Request& req, http::Response& res) {
  SecurityHeaders(res);
  const std::string next = SafeNext(req.Param("next"));
  res.status = 303;
  if (!o_.token.empty() && ConstantTimeEquals(req.Param("token"), o_.token)) {
    res.headers.emplace_back("Set-Cookie", std::string(kCookie) + "=" + NewSession() +
                                               "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                               std::to_string(static_cast<long>(o_.session_ttl_s)));
    res.headers.emplace_back("Location", next);
    res.body = "signed in\n";
  } else if (o_.token.empty()) {
    res.headers.emplace_back("Location", next);  // nothing to sign in to
    res.body = "this coordinator has no token\n";
  } else {
    res.headers.emplace_back("Location", "/login?failed=1&next=" + UrlEncode(next));
    res.body = "wrong token\n";
  }
}

void WebUi::Api(const http::Request& req, http::Response& res) {
  SecurityHeaders(res);
  if (RefuseExposed(o_, res)) return;
  if (!Authorized(req)) {
    res.status = 401;
    res.content_type = "application/json";
    res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"vicreg\"");
    res.body = WebApi::Dump(json{{"error",
                                  "authentication required: send 'Authorization: Bearer <token>' (the coordinator's "
                                  "--token-file) or sign in at /login"}});
    return;
  }
  // /api/v1/jobs/<id>/report: the self-contained HTML report.
  const std::string prefix = "/api/v1/jobs/", suffix = "/report";
  if (req.path.size() > prefix.size() + suffix.size() && req.path.rfind(prefix, 0) == 0 &&
      req.path.compare(req.path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const std::string id = req.path.substr(prefix.size(), req.path.size() - prefix.size() - suffix.size());
    try {
      res.body = Report(id);
      res.content_type = "text/html; charset=utf-8";
      res.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + id + "-report.html\"");
      res.headers.emplace_back("Cache-Control", "no-store");
    } catch (const UserError& e) {
      res.status = 404;
      res.content_type = "application/json";
      res.body = WebApi::Dump(json{{"error", e.what()}});
    }
    return;
  }
  api_.Handle(req, res);
  if (req.path == "/api/v1/info" && res.status == 200) {
    json j = json::parse(res.body);
    j["auth"] = !o_.token.empty();
    res.body = WebApi::Dump(j);
  }
}

std::string WebUi::Report(const std::string& job_id) {
  auto job = api_.FindJob(job_id);
  if (!job) throw UserError("job '" + job_id.substr(0, 40) + "' not found");
  SeriesQuery q;
  json info = api_.Info();
  info["auth"] = !o_.token.empty();
  std::string data = "{\"generated_unix\":" + json(server::NowUnix()).dump() +
                     ",\"info\":" + WebApi::Dump(info, true) + ",\"job\":" + WebApi::Dump(api_.JobDetail(*job), true) +
                     ",\"metrics\":" + WebApi::Dump(json::parse(api_.MetricsJson(*job, q)), true) +
                     ",\"evals\":" + WebApi::Dump(api_.Evals(*job), true) +
                     ",\"events\":" + WebApi::Dump(api_.Events(*job), true) +
                     ",\"logs\":" + WebApi::Dump(api_.Logs(*job, "", 200), true) +
                     ",\"spec\":" + WebApi::Dump(api_.Spec(*job), true) + "}";
  // The title goes into HTML text: only the id (generated, [a-z0-9-]), never the name.
  return BuildReportHtml("vicreg report " + job->id, data);
}

void WebUi::Mount(http::Server& s) {
  auto page = [this](const http::Request& req, http::Response& res) { Page(req, res); };
  s.Get("/", page);
  s.GetPrefix("/jobs/", page);
  s.Get("/login", page);
  s.Post("/login", [this](const http::Request& req, http::Response& res) { Login(req, res); });
  s.GetPrefix("/assets/", [](const http::Request& req, http::Response& res) {
    SecurityHeaders(res);
    const Asset* a = FindAsset(req.path.substr(std::strlen("/assets/")));
    if (a == nullptr || std::string(a->name) == "index.html") {
      res.status = 404;
      res.body = "no such asset: " + req.path.substr(0, 100) + "\n";
      return;
    }
    res.content_type = a->content_type;
    res.body = a->text();
    res.headers.emplace_back("Cache-Control", "no-cache");
  });
  s.GetPrefix("/api/v1/", [this](const http::Request& req, http::Response& res) { Api(req, res); });
}

}  // namespace vicreg::web
