// The metrics HTTP server's request parsing (common/metrics_server.cc), from the outside: one
// MetricsServer on 127.0.0.1 (with an extra /sd handler, as the coordinator has) for the whole
// run; every input is sent as the request bytes of a new connection, whose write side is then
// closed. Promises checked: the server answers every request with a well-formed HTTP/1.1 status
// line (or closes the connection), and keeps serving (the next input gets a fresh connection).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
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
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) VICREG_FUZZ_FINDING("cannot connect");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (oversized head): fine
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) VICREG_FUZZ_FINDING("no answer and no close within 10 s");
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
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
