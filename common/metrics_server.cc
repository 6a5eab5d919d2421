// MetricsServer: prometheus::Exposer for /metrics plus extra exact-path GET handlers (the
// coordinator's /sd) on the same civetweb server, through civetweb's begin_request hook.
#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/errors.h"
#include "common/metrics.h"

namespace vicreg::metrics {
namespace {

struct Route {
  std::string content_type;
  MetricsServer::Handler handler;
};

// The extra routes of one server, shared with in-flight requests (which keep it alive).
struct Routes {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const Route>> by_path;
};

// civetweb calls begin_request with plain function pointers: servers are found by their port.
std::mutex g_servers_mu;
std::map<int, std::shared_ptr<Routes>>& Servers() {
  static auto* servers = new std::map<int, std::shared_ptr<Routes>>();
  return *servers;
}

std::shared_ptr<const Route> FindRoute(int port, const char* path) {
  std::shared_ptr<Routes> routes;
  {
    std::lock_guard<std::mutex> lock(g_servers_mu);
    auto it = Servers().find(port);
    if (it == Servers().end()) return nullptr;
    routes = it->second;
  }
  std::lock_guard<std::mutex> lock(routes->mu);
  auto it = routes->by_path.find(path);
  return it == routes->by_path.end() ? nullptr : it->second;
}

// civetweb reports why mg_start failed only through its log callback: collect those lines
// for the exception, on the thread that constructs the server.
thread_local std::string* t_startup_log = nullptr;

int LogMessage(const mg_connection*, const char* message) {
  if (t_startup_log != nullptr && message != nullptr) {
    if (!t_startup_log->empty()) t_startup_log->append("; ");
    t_startup_log->append(message);
  }
  return 1;  // handled: civetweb writes nothing itself
}

// Returns 0 to let civetweb (the Exposer's /metrics handler) process the request, or the HTTP
// status code after answering it here.
int BeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (info == nullptr || info->local_uri == nullptr) return 0;
  std::shared_ptr<const Route> route = FindRoute(info->server_port, info->local_uri);
  if (!route) return 0;
  const std::string method = info->request_method ? info->request_method : "";
  if (method != "GET" && method != "HEAD") {
    mg_send_http_error(conn, 405, "method %s not allowed on %s (only GET)", method.c_str(), info->local_uri);
    return 405;
  }
  std::string body;
  try {
    body = route->handler();
  } catch (const std::exception& e) {
    mg_send_http_error(conn, 500, "%s", e.what());
    return 500;
  }
  mg_send_http_ok(conn, route->content_type.c_str(), static_cast<long long>(body.size()));
  if (method == "GET") mg_write(conn, body.data(), body.size());
  return 200;
}

std::string NormalizeAddress(const std::string& address, bool* is_v6) {
  if (address.empty()) {
    throw UserError("metrics address is empty: use an IP address such as 127.0.0.1 (default), ::1 or 0.0.0.0");
  }
  std::string a = address == "localhost" ? "127.0.0.1" : address;
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, a.c_str(), buf) == 1) {
    *is_v6 = false;
    return a;
  }
  if (inet_pton(AF_INET6, a.c_str(), buf) == 1) {
    if (mg_check_feature(8) == 0) {  // 8 = IPv6 support compiled into civetweb
      throw UserError("metrics address '" + address +
                      "' is IPv6, which this build's HTTP server (civetweb without IPv6) cannot bind: "
                      "use an IPv4 address such as 127.0.0.1 or 0.0.0.0");
    }
    *is_v6 = true;
    return a;
  }
  throw UserError("metrics address '" + address +
                  "' is not an IP address: use an IPv4 or IPv6 literal (127.0.0.1, 0.0.0.0, ::1) or localhost");
}

// Opens and closes a TCP connection to the server. civetweb's listener thread polls its
// sockets with a 2 s timeout and only then notices mg_stop(); a connection wakes it at once.
void Poke(bool is_v6, const std::string& address, int port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (is_v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (address == "::" || inet_pton(AF_INET6, address.c_str(), &a->sin6_addr) != 1) a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (address == "0.0.0.0" || inet_pton(AF_INET, address.c_str(), &a->sin_addr) != 1) {
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    len = sizeof *a;
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  close(fd);
}

}  // namespace

struct MetricsServer::Impl {
  std::string address;  // normalized, without brackets
  bool is_v6 = false;
  int port = 0;
  std::shared_ptr<prometheus::Registry> registry;
  std::shared_ptr<Routes> routes = std::make_shared<Routes>();
  std::unique_ptr<prometheus::Exposer> exposer;

  std::string HostPort(int p) const {
    return (is_v6 ? "[" + address + "]" : address) + ":" + std::to_string(p);
  }
};

MetricsServer::MetricsServer(const std::string& address, int port)
    : MetricsServer(MetricsServerOptions{address, port}) {}

MetricsServer::MetricsServer(const MetricsServerOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->address = NormalizeAddress(options.address, &impl_->is_v6);
  if (options.port < 0 || options.port > 65535) {
    throw UserError("metrics port " + std::to_string(options.port) +
                    " is out of range: use 0 (pick a free port) or 1..65535");
  }
  if (options.threads < 1 || options.threads > 64) {
    throw UserError("metrics server threads " + std::to_string(options.threads) + " is out of range: use 1..64");
  }
  const std::string bind = impl_->HostPort(options.port);
  CivetCallbacks callbacks;
  callbacks.begin_request = &BeginRequest;
  callbacks.log_message = &LogMessage;
  std::string startup_log;
  t_startup_log = &startup_log;
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(bind, static_cast<std::size_t>(options.threads),
                                                           &callbacks);
  } catch (const std::exception& e) {
    t_startup_log = nullptr;
    throw RuntimeFailure("cannot serve /metrics on " + bind + ": " +
                         (startup_log.empty() ? std::string(e.what()) : startup_log) +
                         " (is the port in use, or the address not local to this host? choose another metrics "
                         "port, or 0 for a free one)");
  }
  t_startup_log = nullptr;
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    throw RuntimeFailure("the /metrics server on " + bind + " reports no listening port");
  }
  impl_->port = ports.front();
  impl_->registry = std::make_shared<prometheus::Registry>();
  impl_->exposer->RegisterCollectable(impl_->registry);
  std::lock_guard<std::mutex> lock(g_servers_mu);
  Servers()[impl_->port] = impl_->routes;
}

MetricsServer::~MetricsServer() {
  {
    std::lock_guard<std::mutex> lock(g_servers_mu);
    auto it = Servers().find(impl_->port);
    if (it != Servers().end() && it->second == impl_->routes) Servers().erase(it);
  }
  // Stop the HTTP threads (before the registry goes), waking the listener so that this takes
  // milliseconds instead of civetweb's 2 s poll quantum.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      Poke(impl_->is_v6, impl_->address, impl_->port);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  impl_->exposer.reset();
  stopped.store(true);
  waker.join();
}

int MetricsServer::port() const { return impl_->port; }
std::string MetricsServer::endpoint() const { return impl_->HostPort(impl_->port); }
std::string MetricsServer::url() const { return "http://" + endpoint() + "/metrics"; }
std::shared_ptr<prometheus::Registry> MetricsServer::registry() const { return impl_->registry; }

void MetricsServer::AddHandler(const std::string& path, const std::string& content_type, Handler handler) {
  VICREG_CHECK(!path.empty() && path.front() == '/', "handler path must start with '/': '" + path + "'");
  VICREG_CHECK(path != "/metrics", "/metrics is served by the exposer");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + path);
  auto route = std::make_shared<const Route>(Route{content_type, std::move(handler)});
  std::lock_guard<std::mutex> lock(impl_->routes->mu);
  const bool inserted = impl_->routes->by_path.emplace(path, std::move(route)).second;
  VICREG_CHECK(inserted, "a handler for " + path + " is already registered");
}

}  // namespace vicreg::metrics
