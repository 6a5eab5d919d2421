#include "common/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "common/errors.h"

namespace vicreg::http {
namespace {

using Clock = std::chrono::steady_clock;

std::string NormalizeAddress(const std::string& address, const std::string& what, bool* is_v6) {
  if (address.empty()) {
    throw UserError(what + " address is empty: use an IP address such as 127.0.0.1 (default), ::1 or 0.0.0.0");
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
  throw UserError(what + " address '" + address +
                  "' is not an IP address: use an IPv4 or IPv6 literal (127.0.0.1, 0.0.0.0, ::1) or localhost");
}

// A connection's stream with one deadline for everything read and written on it. Reads are
// buffered (httplib reads request lines byte by byte).
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  bool is_readable() const override { return pos_ < len_ || Wait(POLLIN); }
  bool is_writable() const override { return Wait(POLLOUT); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ == len_) {
      if (!Wait(POLLIN)) return -1;
      ssize_t n;
      do n = recv(fd_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!Wait(POLLOUT)) return -1;
    ssize_t n;
    do n = send(fd_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { Name(getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { Name(getsockname, ip, port); }
  socket_t socket() const override { return fd_; }

 private:
  // Waits until the socket is ready or the connection's deadline passes (false).
  bool Wait(short events) const {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      const int r = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000 * 1000)));
      if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
      if (r < 0 && errno != EINTR) return false;
    }
  }
  template <typename F>
  void Name(F f, std::string& ip, int& port) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ip.clear();
    port = 0;
    if (f(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    char buf[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      port = ntohs(a->sin6_port);
    }
    ip = buf;
  }

  int fd_;
  Clock::time_point deadline_;
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
};

// httplib's TaskQueue: `min` threads up front, one more (up to `max`) whenever a connection
// arrives while none is idle. Threads are joined at shutdown after the queue drained.
class ElasticPool : public httplib::TaskQueue {
 public:
  ElasticPool(int min, int max) : max_(static_cast<size_t>(max)) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < min; ++i) Spawn();
  }
  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
    if (idle_ < queue_.size() && threads_.size() < max_) Spawn();
    cv_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();  // threads_ only changes on the listening thread, which calls this
    threads_.clear();
  }

 private:
  void Spawn() { threads_.emplace_back([this] { Work(); }); }
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // stopping and drained
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

// httplib::Server serving a listening socket we bound ourselves (precise bind errors, no
// SO_REUSEPORT), one request per connection under one deadline.
class BoundedServer : public httplib::Server {
 public:
  explicit BoundedServer(double timeout_s) : timeout_(std::chrono::duration<double>(timeout_s)) {}

  void Adopt(int fd) { svr_sock_ = fd; }

  // Shuts down every open connection (their threads then finish at once).
  void CutConnections() {
    std::lock_guard<std::mutex> lock(conn_mu_);
    stopping_ = true;
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    fcntl(sock, F_SETFD, FD_CLOEXEC);  // never leak into launched jobs
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      if (stopping_) {
        ::close(sock);
        return false;
      }
      conns_.insert(sock);
    }
    DeadlineStream stream(sock, Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout_));
    bool closed = false;
    const bool ok = process_request(stream, /*close_connection=*/true, closed, nullptr);
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      conns_.erase(sock);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  std::chrono::duration<double> timeout_;
  std::mutex conn_mu_;
  std::set<int> conns_;
  bool stopping_ = false;
};

}  // namespace

std::string Request::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

bool Request::HasParam(const std::string& name) const { return params.count(name) > 0; }

std::string Request::Param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

std::string Request::Cookie(const std::string& name) const {
  for (auto [it, end] = headers.equal_range("cookie"); it != end; ++it) {
    const std::string& c = it->second;
    size_t pos = 0;
    while (pos < c.size()) {
      size_t semi = c.find(';', pos);
      if (semi == std::string::npos) semi = c.size();
      std::string part = c.substr(pos, semi - pos);
      const size_t b = part.find_first_not_of(' ');
      if (b != std::string::npos) part = part.substr(b);
      const size_t eq = part.find('=');
      if (eq != std::string::npos && part.compare(0, eq, name) == 0 && eq == name.size()) return part.substr(eq + 1);
      pos = semi + 1;
    }
  }
  return "";
}

struct Server::Impl {
  ServerOptions o;
  std::string address;
  bool is_v6 = false;
  int port = 0;
  std::unique_ptr<BoundedServer> server;
  std::thread listener;
  std::mutex routes_mu;
  std::map<std::string, Handler> exact_get, prefix_get, exact_post;

  std::string HostPort(int p) const { return (is_v6 ? "[" + address + "]" : address) + ":" + std::to_string(p); }

  int Bind(int requested_port) {
    const std::string where = HostPort(requested_port);
    const int fd = socket(is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw RuntimeFailure("cannot create the " + o.what + " socket: " + std::string(strerror(errno)));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT only; never SO_REUSEPORT
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
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd, 128) != 0) {
      const int err = errno;
      close(fd);
      std::string why = strerror(err);
      if (err == EADDRINUSE) why += ": another process listens there";
      if (err == EADDRNOTAVAIL) why += ": the address is not local to this host";
      throw RuntimeFailure("cannot serve " + o.what + " on " + where + " (" + why + "); choose another " + o.what +
                           " port, or 0 for a free one");
    }
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      const int err = errno;
      close(fd);
      throw RuntimeFailure("getsockname on the " + o.what + " socket: " + std::string(strerror(err)));
    }
    port =
        ntohs(is_v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
  }

  static Request Convert(const httplib::Request& in) {
    Request r;
    r.method = in.method;
    r.path = in.path;
    r.params.insert(in.params.begin(), in.params.end());
    for (const auto& [k, v] : in.headers) r.headers.emplace(AsciiLower(k), v);
    r.body = in.body;
    r.remote_addr = in.remote_addr;
    return r;
  }

  static void Run(const Handler& h, const httplib::Request& in, httplib::Response& out) {
    Response r;
    try {
      h(Convert(in), r);
    } catch (const std::exception& e) {
      r = Response{};
      r.status = 500;
      r.body = std::string(e.what()) + "\n";
    }
    out.status = r.status;
    for (const auto& [k, v] : r.headers) out.headers.emplace(k, v);
    out.set_content(r.body, r.content_type.c_str());
  }

  static void Plain(httplib::Response& out, int status, const std::string& text) {
    out.status = status;
    out.set_content(text, "text/plain; charset=utf-8");
  }

  // GET/HEAD dispatch (exact, then the longest prefix); other methods: 405 on a known path.
  httplib::Server::HandlerResponse Route(const httplib::Request& in, httplib::Response& out) {
    Handler h;
    bool known = false, post_known = false;
    {
      std::lock_guard<std::mutex> lock(routes_mu);
      auto e = exact_get.find(in.path);
      if (e != exact_get.end()) h = e->second;
      if (!h) {
        for (auto it = prefix_get.rbegin(); it != prefix_get.rend(); ++it) {
          if (in.path.compare(0, it->first.size(), it->first) == 0) {
            h = it->second;
            break;
          }
        }
      }
      known = static_cast<bool>(h);
      post_known = exact_post.count(in.path) > 0;
    }
    if (in.method == "GET" || in.method == "HEAD") {
      if (!h) {
        Plain(out, 404, "not found: " + in.path + "\n");
        return httplib::Server::HandlerResponse::Handled;
      }
      Run(h, in, out);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (in.method == "POST" && post_known) return httplib::Server::HandlerResponse::Unhandled;  // body first
    if (known || post_known) {
      Plain(out, 405, "method " + in.method + " not allowed on " + in.path + (known ? " (only GET)\n" : " (only POST)\n"));
      out.set_header("Allow", known ? "GET, HEAD" : "POST");
      return httplib::Server::HandlerResponse::Handled;
    }
    Plain(out, 404, "not found: " + in.path + "\n");
    return httplib::Server::HandlerResponse::Handled;
  }
};

Server::Server(const ServerOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = options;
  m.address = NormalizeAddress(options.address, options.what, &m.is_v6);
  if (options.port < 0 || options.port > 65535) {
    throw UserError(options.what + " port " + std::to_string(options.port) +
                    " is out of range: use 0 (pick a free port) or 1..65535");
  }
  if (options.threads < 1 || options.threads > 64) {
    throw UserError(options.what + " server threads " + std::to_string(options.threads) +
                    " is out of range: use 1..64");
  }
  if (options.max_threads < options.threads || options.max_threads > 256) {
    throw UserError(options.what + " server max_threads " + std::to_string(options.max_threads) +
                    " is out of range: use threads (" + std::to_string(options.threads) + ")..256");
  }
  if (!(options.request_timeout_s > 0 && options.request_timeout_s <= 3600)) {
    throw UserError(options.what + " request timeout " + std::to_string(options.request_timeout_s) +
                    " s is out of range: use (0, 3600] seconds");
  }
  const int fd = m.Bind(options.port);
  m.server = std::make_unique<BoundedServer>(options.request_timeout_s);
  BoundedServer& s = *m.server;
  const int min_threads = options.threads, max_threads = options.max_threads;
  s.new_task_queue = [min_threads, max_threads] { return new ElasticPool(min_threads, max_threads); };
  s.set_payload_max_length(options.max_body_bytes);
  s.set_pre_routing_handler(
      [&m](const httplib::Request& in, httplib::Response& out) { return m.Route(in, out); });
  s.Post(".*", [&m](const httplib::Request& in, httplib::Response& out) {
    Handler h;
    {
      std::lock_guard<std::mutex> lock(m.routes_mu);
      auto it = m.exact_post.find(in.path);
      if (it != m.exact_post.end()) h = it->second;
    }
    if (h) Impl::Run(h, in, out);
    else Impl::Plain(out, 404, "not found: " + in.path + "\n");
  });
  s.Adopt(fd);
  m.listener = std::thread([&s] { s.listen_after_bind(); });
  // stop() only works once the loop runs: wait for it (microseconds).
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (!s.is_running() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  VICREG_CHECK(s.is_running(), "the " + options.what + " server did not start listening within 10 s");
}

Server::~Server() {
  Impl& m = *impl_;
  m.server->stop();
  m.server->CutConnections();
  if (m.listener.joinable()) m.listener.join();
}

void Server::Get(const std::string& path, Handler handler) {
  VICREG_CHECK(!path.empty() && path.front() == '/', "handler path must start with '/': '" + path + "'");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + path);
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  VICREG_CHECK(impl_->exact_get.emplace(path, std::move(handler)).second,
               "a handler for " + path + " is already registered");
}

void Server::GetPrefix(const std::string& prefix, Handler handler) {
  VICREG_CHECK(!prefix.empty() && prefix.front() == '/', "handler prefix must start with '/': '" + prefix + "'");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + prefix);
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  VICREG_CHECK(impl_->prefix_get.emplace(prefix, std::move(handler)).second,
               "a handler for " + prefix + "* is already registered");
}

void Server::Post(const std::string& path, Handler handler) {
  VICREG_CHECK(!path.empty() && path.front() == '/', "handler path must start with '/': '" + path + "'");
  VICREG_CHECK(static_cast<bool>(handler), "empty handler for " + path);
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  VICREG_CHECK(impl_->exact_post.emplace(path, std::move(handler)).second,
               "a POST handler for " + path + " is already registered");
}

int Server::port() const { return impl_->port; }
std::string Server::endpoint() const { return impl_->HostPort(impl_->port); }

std::string AsciiLower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace vicreg::http
