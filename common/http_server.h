// A small HTTP/1.1 server with bounded time per connection: the transport of every vicreg HTTP
// endpoint (a rank's /metrics, the coordinator's /metrics, /sd, web UI and JSON API).
//
// Built on cpp-httplib (Debian libcpp-httplib-dev: parsing, routing, gzip) with two vicreg
// policies on top (http_server.cc):
//   - each connection gets ONE deadline (request_timeout_s) for reading the whole request,
//     running the handler and writing the whole response, then it is closed (no keep-alive): a
//     client that sends slowly, reads slowly or idles cannot hold a thread longer than that;
//   - connections are served concurrently by an elastic pool: `threads` are started up front and
//     more (up to `max_threads`) are added while all are busy, so a few slow clients never block
//     /metrics for the others.
// Threads use the default stack size (see metrics_server.cc for why that matters).
//
//   vicreg::http::Server s({"127.0.0.1", 0});
//   s.Get("/sd", [](const Request&, Response& r) { r.content_type = "application/json"; r.body = "[]"; });
//   s.GetPrefix("/api/v1/", handler);   // longest registered prefix wins; exact paths first
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::http {

// ASCII lower case: header names, auth schemes and HTML tag names compare case-insensitively.
std::string AsciiLower(std::string s);

struct Request {
  std::string method;  // GET, HEAD, POST
  std::string path;    // percent-decoded, without the query string
  std::multimap<std::string, std::string> params;  // query string (and a POSTed urlencoded form)
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote_addr;

  std::string Header(const std::string& lower_case_name) const;  // "" when absent
  bool HasParam(const std::string& name) const;
  std::string Param(const std::string& name) const;  // first value, "" when absent
  std::string Cookie(const std::string& name) const;  // from the Cookie header, "" when absent
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Set-Cookie, Location, ...)
};

using Handler = std::function<void(const Request&, Response&)>;

struct ServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal ("0.0.0.0", "::1", "[::1]"), or "localhost"
  int port = 0;                       // 0 = pick a free port; else 1..65535
  int threads = 2;                    // serving threads started up front (1..64)
  int max_threads = 64;               // most concurrent connections served (>= threads, <= 256)
  double request_timeout_s = 10;      // per connection: read request + handle + write response
  size_t max_body_bytes = 64 * 1024;  // POST bodies (larger: 413)
  std::string what = "HTTP";          // names the endpoint in error messages ("metrics")
};

class Server {
 public:
  // Validates the options (UserError naming the value and what is valid), binds (RuntimeFailure:
  // port in use, address not local) and starts serving.
  explicit Server(const ServerOptions& options);
  ~Server();  // stops accepting, cuts open connections, joins every thread
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Handlers run on serving threads (make them thread-safe). A handler that throws answers 500
  // with the message. Registering a path twice is an InternalError. May be called while serving.
  void Get(const std::string& path, Handler handler);          // GET and HEAD, exact path
  void GetPrefix(const std::string& prefix, Handler handler);  // GET and HEAD, every path under prefix
  void Post(const std::string& path, Handler handler);         // POST, exact path

  int port() const;              // the bound port (the chosen one when asked for 0)
  std::string endpoint() const;  // "127.0.0.1:9400", "[::1]:9400"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vicreg::http
