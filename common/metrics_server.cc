// MetricsServer: GET /metrics (prometheus-cpp's registry and text serializer) and extra exact-path
// GET handlers (the coordinator's /sd) on an http::Server (common/http_server.h: cpp-httplib with
// one deadline per connection and an elastic thread pool, so slow clients cannot block scrapes).
//
// Why not prometheus::Exposer: it runs on civetweb, whose Debian build creates its threads with
// a fixed 100 KiB stack. glibc puts the static TLS of every loaded library on each thread's
// stack, and a process with LibTorch + OpenBLAS + glog has ~108 KiB of it, so pthread_create
// fails with EINVAL and the exposer cannot start ("Cannot create threads") in vicreg_worker and
// vicreg_bench, depending on which libraries a binary happens to link. http::Server's threads use
// the default stack size.
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "common/errors.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/process_metrics.h"

namespace vicreg::metrics {

namespace {

// Constant time in the length of the expected token.
bool SameToken(const std::string& given, const std::string& expected) {
  unsigned char diff = given.size() != expected.size() ? 1 : 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(expected[i]);
  }
  return diff == 0;
}

}  // namespace

struct MetricsServer::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<http::Server> http;
  std::string token;

  // Runs `serve` only for an authorized request (see MetricsServerOptions::bearer_token).
  http::Handler Guarded(http::Handler serve) const {
    if (token.empty()) return serve;
    return [token = token, serve = std::move(serve)](const http::Request& req, http::Response& r) {
      const std::string auth = req.Header("authorization");
      if (auth.size() > 7 && (auth.compare(0, 7, "Bearer ") == 0 || auth.compare(0, 7, "bearer ") == 0) &&
          SameToken(auth.substr(7), token)) {
        serve(req, r);
        return;
      }
      r.status = 401;
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      r.body = "authentication required: send 'Authorization: Bearer <token>' (the coordinator's --token-file)\n";
    };
  }
};

MetricsServer::MetricsServer(const std::string& address, int port)
    : MetricsServer(MetricsServerOptions{address, port}) {}

MetricsServer::MetricsServer(const MetricsServerOptions& options) : impl_(std::make_unique<Impl>()) {
  http::ServerOptions o;
  o.address = options.address;
  o.port = options.port;
  o.threads = options.threads;
  o.max_threads = std::max(options.threads, options.max_threads);
  o.request_timeout_s = options.request_timeout_s;
  o.what = "metrics";
  impl_->http = std::make_unique<http::Server>(o);
  impl_->token = options.bearer_token;
  impl_->http->Get("/metrics", impl_->Guarded([registry = impl_->registry](const http::Request&, http::Response& r) {
    auto families = registry->Collect();
    for (auto& f : ProcessMetricFamilies()) families.push_back(std::move(f));  // process_* (common/process_metrics.h)
    r.body = prometheus::TextSerializer().Serialize(families);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  }));
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const { return impl_->http->port(); }
std::string MetricsServer::endpoint() const { return impl_->http->endpoint(); }
std::string MetricsServer::url() const { return "http://" + endpoint() + "/metrics"; }
std::shared_ptr<prometheus::Registry> MetricsServer::registry() const { return impl_->registry; }
http::Server& MetricsServer::http() { return *impl_->http; }

void MetricsServer::AddHandler(const std::string& path, const std::string& content_type, Handler handler) {
  VICREG_CHECK(!path.empty() && path.front() == '/', "handler path must start with '/': '" + path + "'");
  VICREG_CHECK(path != "/metrics", "/metrics is served from the registry");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + path);
  impl_->http->Get(path, impl_->Guarded([content_type, handler = std::move(handler)](const http::Request&,
                                                                                     http::Response& r) {
    r.body = handler();
    r.content_type = content_type;
  }));
}

}  // namespace vicreg::metrics
