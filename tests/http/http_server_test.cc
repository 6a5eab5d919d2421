// http::Server (common/http_server.h) over real sockets: routing, methods, errors, and the two
// policies that keep /metrics answering: one deadline per connection and concurrent serving.
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

#include "common/errors.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace vicreg {
namespace {

using Clock = std::chrono::steady_clock;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until the peer closes or timeout_s passes; returns what arrived.
std::string ReadAll(int fd, double timeout_s) {
  std::string out;
  const auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
  char buf[4096];
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Raw(int port, const std::string& request) {
  int fd = Connect(port);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string r = ReadAll(fd, 10);
  close(fd);
  return r;
}

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

TEST(HttpServer, RoutesExactPrefixAndPostWithClearErrors) {
  http::Server s(http::ServerOptions{});
  s.Get("/a", [](const http::Request& r, http::Response& w) { w.body = "exact " + r.Param("q"); });
  s.GetPrefix("/p/", [](const http::Request& r, http::Response& w) { w.body = "prefix " + r.path; });
  s.GetPrefix("/p/deeper/", [](const http::Request& r, http::Response& w) { w.body = "deeper " + r.path; });
  s.Post("/form", [](const http::Request& r, http::Response& w) {
    w.status = 201;
    w.body = "token=" + r.Param("token");
  });
  s.Get("/throws", [](const http::Request&, http::Response&) { throw RuntimeFailure("store is locked"); });
  const std::string ep = s.endpoint();
  EXPECT_EQ(http::Get(ep, "/a?q=x%20y").body, "exact x y");
  EXPECT_EQ(http::Get(ep, "/p/one").body, "prefix /p/one");
  EXPECT_EQ(http::Get(ep, "/p/deeper/two").body, "deeper /p/deeper/two");
  auto missing = http::Get(ep, "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("/nope"), std::string::npos);
  auto thrown = http::Get(ep, "/throws");
  EXPECT_EQ(thrown.status, 500);
  EXPECT_NE(thrown.body.find("store is locked"), std::string::npos);

  std::string post = Raw(s.port(),
                         "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         "Content-Length: 9\r\n\r\ntoken=abc");
  EXPECT_NE(post.find("HTTP/1.1 201"), std::string::npos) << post;
  EXPECT_NE(post.find("token=abc"), std::string::npos) << post;
  EXPECT_NE(Raw(s.port(), "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").find("405"), std::string::npos);
  EXPECT_NE(Raw(s.port(), "DELETE /form HTTP/1.1\r\nHost: x\r\n\r\n").find("405"), std::string::npos);
  EXPECT_NE(Raw(s.port(), "garbage\r\n\r\n").find("400"), std::string::npos);
  std::string head = Raw(s.port(), "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(head.find("200 OK"), std::string::npos) << head;
  EXPECT_EQ(head.find("exact"), std::string::npos) << head;
  // Too big a body is refused, the server goes on.
  std::string big(100 * 1024, 'x');
  std::string r = Raw(s.port(), "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(big.size()) +
                                    "\r\n\r\n" + big);
  EXPECT_NE(r.find("413"), std::string::npos) << r.substr(0, 200);
  EXPECT_EQ(http::Get(ep, "/a").status, 200);
  EXPECT_THROW(s.Get("/a", [](const http::Request&, http::Response&) {}), InternalError);
  EXPECT_THROW(s.Get("a", [](const http::Request&, http::Response&) {}), InternalError);
}

TEST(HttpServer, RejectsBadOptionsNamingTheValue) {
  http::ServerOptions o;
  o.threads = 0;
  EXPECT_THROW(http::Server{o}, UserError);
  o = {};
  o.max_threads = 1000;
  EXPECT_THROW(http::Server{o}, UserError);
  o = {};
  o.request_timeout_s = 0;
  EXPECT_THROW(http::Server{o}, UserError);
  o = {};
  o.address = "example.org";
  try {
    http::Server s(o);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'example.org'"), std::string::npos) << e.what();
  }
}

// The issue-17 defect: two slow clients used to block /metrics for everyone (two serial threads,
// 5 s per read). Now: many idle and trickling clients, and /metrics still answers at once.
TEST(HttpServer, SlowClientsDoNotBlockMetrics) {
  metrics::MetricsServerOptions o;
  o.threads = 2;
  o.max_threads = 32;
  o.request_timeout_s = 30;
  metrics::MetricsServer server(o);
  std::vector<int> idle;
  for (int i = 0; i < 10; ++i) {
    int fd = Connect(server.port());
    ASSERT_GE(fd, 0);
    if (i % 2) send(fd, "GET /metr", 9, MSG_NOSIGNAL);  // half a request line, then nothing
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    auto r = http::Get(server.endpoint(), "/metrics", {}, 10);
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_LT(Seconds(t0), 5.0) << "a scrape waited behind the slow clients";
  }
  for (int fd : idle) close(fd);
}

// A client that trickles its request (one byte at a time, never finishing) is cut off at the
// connection's deadline, not kept forever by per-read timeouts.
TEST(HttpServer, ConnectionDeadlineCutsATricklingClient) {
  http::ServerOptions o;
  o.request_timeout_s = 1.0;
  http::Server s(o);
  s.Get("/x", [](const http::Request&, http::Response& w) { w.body = "x"; });
  int fd = Connect(s.port());
  ASSERT_GE(fd, 0);
  const auto t0 = Clock::now();
  const std::string req = "GET /x HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  bool closed = false;
  for (size_t i = 0; i < req.size() && Seconds(t0) < 8; ++i) {
    if (send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      char c;
      if (recv(fd, &c, 1, MSG_PEEK) <= 0) {
        closed = true;
        break;
      }
    }
  }
  const double took = Seconds(t0);
  close(fd);
  EXPECT_TRUE(closed) << "the server kept a trickling connection for " << took << " s";
  EXPECT_LT(took, 4.0);
  EXPECT_EQ(http::Get(s.endpoint(), "/x").body, "x");
}

TEST(HttpServer, ServesConcurrentSlowHandlersInParallel) {
  http::ServerOptions o;
  o.threads = 1;
  o.max_threads = 8;
  http::Server s(o);
  std::atomic<int> in_flight{0}, most{0};
  s.Get("/slow", [&](const http::Request&, http::Response& w) {
    const int now = ++in_flight;
    int prev = most.load();
    while (now > prev && !most.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    --in_flight;
    w.body = "ok";
  });
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&] {
      if (http::Get(s.endpoint(), "/slow").body == "ok") ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_GE(most.load(), 3) << "requests were served one after another";
  EXPECT_LT(Seconds(t0), 6 * 0.4);
}

TEST(HttpServer, StopsPromptlyWithOpenConnections) {
  auto s = std::make_unique<http::Server>(http::ServerOptions{});
  int a = Connect(s->port()), b = Connect(s->port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  send(b, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t0 = Clock::now();
  s.reset();
  EXPECT_LT(Seconds(t0), 3.0);
  close(a);
  close(b);
}

}  // namespace
}  // namespace vicreg
