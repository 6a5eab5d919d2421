// MetricsServer: a small HTTP/1.x server for GET /metrics (prometheus-cpp's registry and text
// serializer) and extra exact-path GET handlers (the coordinator's /sd).
//
// Why not prometheus::Exposer: it runs on civetweb, whose Debian build creates its threads with
// a fixed 100 KiB stack. glibc puts the static TLS of every loaded library on each thread's
// stack, and a process with LibTorch + OpenBLAS + glog has ~108 KiB of it, so pthread_create
// fails with EINVAL and the exposer cannot start ("Cannot create threads") in vicreg_worker and
// vicreg_bench, depending on which libraries a binary happens to link. These threads use the
// default stack size.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/metrics.h"

namespace vicreg::metrics {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;  // request line + headers
constexpr int kIoTimeoutMs = 5000;              // per read/write on a connection

struct Route {
  std::string content_type;
  MetricsServer::Handler handler;
};

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
    *is_v6 = true;
    return a;
  }
  throw UserError("metrics address '" + address +
                  "' is not an IP address: use an IPv4 or IPv6 literal (127.0.0.1, 0.0.0.0, ::1) or localhost");
}

const char* StatusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    default: return "Error";
  }
}

// Sends all of `data`; false if the peer went away or timed out.
bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void Respond(int fd, int status, const std::string& content_type, const std::string& body, bool head_only,
             const char* extra_headers = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + StatusText(status) +
                    "\r\nContent-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n" + extra_headers + "\r\n";
  if (!head_only) out += body;
  SendAll(fd, out.data(), out.size());
}

// Reads the request head (up to the blank line). Empty on timeout, EOF or an oversized head.
std::string ReadRequestHead(int fd) {
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() > kMaxRequestBytes) return "";
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return "";
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return "";
    head.append(buf, static_cast<size_t>(n));
  }
  return head;
}

}  // namespace

struct MetricsServer::Impl {
  std::string address;  // normalized, without brackets
  bool is_v6 = false;
  int port = 0;
  int listen_fd = -1;
  int wake_fd = -1;  // eventfd: written once to stop the serving threads
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::mutex routes_mu;
  std::map<std::string, std::shared_ptr<const Route>> routes;
  std::vector<std::thread> threads;

  std::string HostPort(int p) const { return (is_v6 ? "[" + address + "]" : address) + ":" + std::to_string(p); }

  void Bind(int requested_port) {
    const std::string where = HostPort(requested_port);
    listen_fd = socket(is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0) throw RuntimeFailure("cannot create the /metrics socket: " + std::string(strerror(errno)));
    const int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (is_v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<uint16_t>(requested_port));
      inet_pton(AF_INET6, address.c_str(), &a->sin6_addr);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(requested_port));
      inet_pton(AF_INET, address.c_str(), &a->sin_addr);
      len = sizeof *a;
    }
    if (bind(listen_fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(listen_fd, 64) != 0) {
      const int err = errno;
      close(listen_fd);
      listen_fd = -1;
      std::string why = strerror(err);
      if (err == EADDRINUSE) why += ": another process listens there";
      if (err == EADDRNOTAVAIL) why += ": the address is not local to this host";
      throw RuntimeFailure("cannot serve /metrics on " + where + " (" + why +
                           "); choose another metrics port, or 0 for a free one");
    }
    if (getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      throw RuntimeFailure("getsockname on the /metrics socket: " + std::string(strerror(errno)));
    }
    port =
        ntohs(is_v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }

  void ServeLoop() {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    for (;;) {
      fds[0].revents = fds[1].revents = 0;
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;  // stopping
      const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;  // another thread took it, or the client left
      HandleConnection(fd);
      close(fd);
    }
  }

  void HandleConnection(int fd) {
    const std::string head = ReadRequestHead(fd);
    if (head.empty()) return;
    const size_t eol = head.find_first_of("\r\n");
    const std::string line = head.substr(0, eol);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
      Respond(fd, 400, "text/plain; charset=utf-8", "malformed HTTP request line\n", false);
      return;
    }
    const std::string method = line.substr(0, sp1);
    std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const size_t query = path.find('?');
    if (query != std::string::npos) path.resize(query);
    const bool head_only = method == "HEAD";
    std::shared_ptr<const Route> route;
    const bool is_metrics = path == "/metrics";
    if (!is_metrics) {
      std::lock_guard<std::mutex> lock(routes_mu);
      auto it = routes.find(path);
      if (it != routes.end()) route = it->second;
    }
    if (!is_metrics && !route) {
      Respond(fd, 404, "text/plain; charset=utf-8", "not found: " + path + " (try /metrics)\n", head_only);
      return;
    }
    if (method != "GET" && method != "HEAD") {
      Respond(fd, 405, "text/plain; charset=utf-8", "method " + method + " not allowed on " + path + " (only GET)\n",
              false, "Allow: GET, HEAD\r\n");
      return;
    }
    std::string body;
    std::string content_type;
    try {
      if (is_metrics) {
        body = prometheus::TextSerializer().Serialize(registry->Collect());
        content_type = "text/plain; version=0.0.4; charset=utf-8";
      } else {
        body = route->handler();
        content_type = route->content_type;
      }
    } catch (const std::exception& e) {
      Respond(fd, 500, "text/plain; charset=utf-8", std::string(e.what()) + "\n", head_only);
      return;
    }
    Respond(fd, 200, content_type, body, head_only);
  }
};

MetricsServer::MetricsServer(const std::string& address, int port)
    : MetricsServer(MetricsServerOptions{address, port}) {}

MetricsServer::MetricsServer(const MetricsServerOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.address = NormalizeAddress(options.address, &m.is_v6);
  if (options.port < 0 || options.port > 65535) {
    throw UserError("metrics port " + std::to_string(options.port) +
                    " is out of range: use 0 (pick a free port) or 1..65535");
  }
  if (options.threads < 1 || options.threads > 64) {
    throw UserError("metrics server threads " + std::to_string(options.threads) + " is out of range: use 1..64");
  }
  m.Bind(options.port);
  m.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m.wake_fd < 0) {
    close(m.listen_fd);
    throw RuntimeFailure("eventfd for the /metrics server: " + std::string(strerror(errno)));
  }
  for (int i = 0; i < options.threads; ++i) m.threads.emplace_back([&m] { m.ServeLoop(); });
}

MetricsServer::~MetricsServer() {
  Impl& m = *impl_;
  const uint64_t one = 1;
  const ssize_t w = write(m.wake_fd, &one, sizeof one);  // an 8-byte eventfd write cannot fail here
  (void)w;
  for (auto& t : m.threads) t.join();
  close(m.wake_fd);
  close(m.listen_fd);
}

int MetricsServer::port() const { return impl_->port; }
std::string MetricsServer::endpoint() const { return impl_->HostPort(impl_->port); }
std::string MetricsServer::url() const { return "http://" + endpoint() + "/metrics"; }
std::shared_ptr<prometheus::Registry> MetricsServer::registry() const { return impl_->registry; }

void MetricsServer::AddHandler(const std::string& path, const std::string& content_type, Handler handler) {
  VICREG_CHECK(!path.empty() && path.front() == '/', "handler path must start with '/': '" + path + "'");
  VICREG_CHECK(path != "/metrics", "/metrics is served from the registry");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + path);
  auto route = std::make_shared<const Route>(Route{content_type, std::move(handler)});
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  const bool inserted = impl_->routes.emplace(path, std::move(route)).second;
  VICREG_CHECK(inserted, "a handler for " + path + " is already registered");
}

}  // namespace vicreg::metrics
