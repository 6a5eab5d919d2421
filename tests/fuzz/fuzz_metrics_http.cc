// The metrics HTTP server's request parsing (common/metrics_server.cc), from the outside: one
// MetricsServer on 127.0.0.1 (with an extra /sd handler, as the coordinator has) for the whole
// run; every input is sent as the request bytes of a new connection, whose write side is then
// closed. Promises checked: the server answers every request with a well-formed HTTP/1.1 status
// line (or closes the connection) within its per-connection deadline (request_timeout_s, 10 s by
// default), and keeps serving (the next input gets a fresh connection).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

vicreg::metrics::MetricsServer& Server() {
  static auto* server = [] {
    auto* s = new vicreg::metrics::MetricsServer("127.0.0.1", 0);
    s->AddHandler("/sd", "application/json", [] { return std::string("[{\"targets\":[\"127.0.0.1:1\"]}]"); });
    return s;
  }();
  return *server;
}

// Sends `request`, closes the write side, returns everything the server sent until it closed.
std::string Exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) VICREG_FUZZ_FINDING("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    // Interrupted by a signal, the connection is still being set up: wait for it.
    if (errno != EINTR) VICREG_FUZZ_FINDING(std::string("cannot connect: ") + std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    while (::poll(&p, 1, 20000) < 0 && errno == EINTR) {
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      VICREG_FUZZ_FINDING(std::string("cannot connect: ") + std::strerror(err));
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server may close early (oversized head): fine
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  // The server's deadline (10 s) plus a margin for a loaded machine, on a monotonic clock. poll()
  // is retried on EINTR: libFuzzer's -timeout watchdog raises SIGALRM every timeout/2 + 1 s, and
  // the interrupted poll once read as "no answer" (the finding of 2026-12-05, not a server bug).
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r;
    do {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      r = ::poll(&p, 1, static_cast<int>(left > 0 ? left : 0));
    } while (r < 0 && errno == EINTR);
    if (r < 0) VICREG_FUZZ_FINDING(std::string("poll failed: ") + std::strerror(errno));
    if (r == 0) VICREG_FUZZ_FINDING("no answer and no close within 20 s (the server's deadline is 10 s)");
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int port = Server().port();
  std::string response = Exchange(port, std::string(reinterpret_cast<const char*>(data), size));
  if (!response.empty()) {
    if (response.compare(0, 9, "HTTP/1.1 ") != 0 || response.size() < 12)
      VICREG_FUZZ_FINDING("malformed status line: " + response.substr(0, 64));
    int code = std::atoi(response.substr(9, 3).c_str());
    if (code < 200 || code > 599) VICREG_FUZZ_FINDING("bad status code: " + response.substr(0, 64));
    size_t end = response.find("\r\n\r\n");
    if (end == std::string::npos) VICREG_FUZZ_FINDING("response without a header end");
  }
  return 0;
}
