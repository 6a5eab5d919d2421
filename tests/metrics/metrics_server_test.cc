// Regression test of issue 17's review: /metrics (and /sd, on the same server) cannot be blocked
// by slow clients. Before, two serving threads each held one connection for up to 5 s per read,
// so two clients trickling a byte every few seconds kept Prometheus (and the readiness probe)
// out indefinitely. Now (common/http_server.h) every connection has one deadline for its whole
// exchange and more serving threads are started while all are busy.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/http_server.h"
#include "common/metrics.h"
#include "tests/metrics/test_support.h"

namespace vicreg::metrics {
namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

TEST(MetricsServerTest, SlowClientsDoNotBlockScrapes) {
  MetricsServerOptions o;
  o.threads = 2;
  o.request_timeout_s = 3;  // short, to keep the test short; the default (10 s) behaves the same
  MetricsServer server(o);
  server.AddHandler("/sd", "application/json", [] { return std::string("[]"); });
  // 8 clients (4x the initial serving threads) that send a request one byte every 2 s and never finish it.
  std::atomic<bool> stop{false};
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(Connect(server.port()));
  std::thread trickle([&] {
    const std::string partial = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (size_t k = 0; !stop && k < partial.size(); ++k) {
      for (int fd : slow) send(fd, &partial[k], 1, MSG_NOSIGNAL);
      for (int t = 0; t < 20 && !stop; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the slow ones are accepted first
  // Scrapes keep being answered while the slow clients hold their connections (a 15 s cap per
  // request: before the fix these waited for as long as the slow clients kept trickling).
  for (const char* path : {"/metrics", "/sd", "/metrics"}) {
    auto t0 = Clock::now();
    testing::HttpResponse r = testing::HttpGet("127.0.0.1", server.port(), path, 15.0);
    EXPECT_EQ(r.status, 200) << path << " not answered while slow clients are connected";
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 15.0);
  }
  // A slow client is cut off after its deadline (3 s for the whole exchange, whatever it sends).
  auto t0 = Clock::now();
  pollfd p{slow[0], POLLIN, 0};
  char c;
  bool closed = false;
  while (!closed && std::chrono::duration<double>(Clock::now() - t0).count() < 30) {
    if (poll(&p, 1, 500) > 0) closed = recv(slow[0], &c, 1, 0) <= 0;
  }
  EXPECT_TRUE(closed) << "a client trickling its request was never disconnected";
  stop = true;
  trickle.join();
  for (int fd : slow) close(fd);
}

// Issue 17: a coordinator's /metrics off loopback requires the bearer token (Prometheus sends it
// with `authorization: {credentials_file: ...}`); /sd too, routes mounted through http() are not
// affected (the coordinator's /healthz for probes).
TEST(MetricsServerTest, BearerTokenGuardsMetricsAndHandlers) {
  MetricsServerOptions o;
  o.bearer_token = "s3cret-token";
  MetricsServer server(o);
  server.AddHandler("/sd", "application/json", [] { return std::string("[]"); });
  server.http().Get("/healthz", [](const http::Request&, http::Response& r) { r.body = "ok\n"; });
  auto get = [&](const std::string& path, const std::string& auth) {
    int fd = Connect(server.port());
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                      (auth.empty() ? "" : "Authorization: " + auth + "\r\n") + "\r\n";
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out.substr(0, out.find("\r\n"));  // the status line
  };
  EXPECT_EQ(get("/metrics", ""), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(get("/metrics", "Bearer wrong"), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(get("/metrics", "Bearer s3cret-token"), "HTTP/1.1 200 OK");
  EXPECT_EQ(get("/sd", ""), "HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(get("/sd", "Bearer s3cret-token"), "HTTP/1.1 200 OK");
  EXPECT_EQ(get("/healthz", ""), "HTTP/1.1 200 OK");
}

}  // namespace
}  // namespace vicreg::metrics
