// The coordinator's web UI, mounted on its HTTP listener next to /metrics and /sd:
//   /                 jobs page            /jobs/<id>   job page          /login   sign-in form
//   /assets/...       CSS/JS embedded in the binary at build time (server/http/ui/, no CDN)
//   /api/v1/...       the JSON API (web_api.h)   /api/v1/jobs/<id>/report   self-contained HTML report
// Read-only: nothing here submits, cancels or changes a job.
//
// Authentication follows the coordinator's: without a token (the loopback default) everything is
// open; with --token-file, pages and the API need `Authorization: Bearer <token>` or a session
// cookie (HttpOnly, SameSite=Strict) obtained by signing in at /login or by opening any page with
// `?token=<token>` (then redirected without it). Unauthenticated pages get 401 with the sign-in
// form, the API 401 JSON. On a non-loopback address without a token, pages and API answer 403
// (job data never goes to the network unauthenticated; /metrics and /sd still do, as before). /metrics, /sd and /assets/ stay open (Prometheus scrapes them; the
// assets hold no data). Every HTML response carries a strict Content-Security-Policy (scripts and
// styles only from /assets/), and the pages build the DOM with textContent only.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/http_server.h"
#include "server/http/web_api.h"

namespace vicreg::server {
class JobStore;
}

namespace vicreg::web {

struct WebUiOptions {
  std::string token;                   // empty = no authentication
  bool exposed = false;                // listening beyond loopback: without a token, pages/API answer 403
  double session_ttl_s = 12 * 3600.0;  // sign-in lifetime
  size_t max_sessions = 1024;          // oldest dropped beyond this
};

class WebUi {
 public:
  WebUi(server::JobStore& store, WebUiOptions options);
  // Registers the routes above on `server` (which must outlive nothing: unmount by destroying it first).
  void Mount(http::Server& server);

  // The self-contained report of a job (inline CSS/JS/SVG data, no network); throws UserError for
  // an unknown job.
  std::string Report(const std::string& job_id);

  WebApi& api() { return api_; }

 private:
  bool Authorized(const http::Request& req);
  std::string NewSession();
  void Page(const http::Request& req, http::Response& res);
  void Login(const http::Request& req, http::Response& res);
  void Api(const http::Request& req, http::Response& res);

  WebApi api_;
  WebUiOptions o_;
  std::mutex sessions_mu_;
  std::map<std::string, double> sessions_;  // session id -> expiry (unix s)
};

// The shell page with the assets inlined and `data_json` embedded (html-safe JSON): the report.
std::string BuildReportHtml(const std::string& title, const std::string& data_json);

}  // namespace vicreg::web
