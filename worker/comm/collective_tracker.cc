#include "worker/comm/collective_tracker.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace vicreg::comm {
namespace {

struct State {
  std::atomic<const char*> backend{nullptr};
  std::atomic<const char*> op{nullptr};
  std::atomic<int64_t> seq{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> since_ns{0};
};

State g_waiting;    // op == nullptr: not waiting
State g_last_done;  // op == nullptr: none completed yet
std::atomic<int> g_rank{-1};
std::atomic<int> g_world{1};
std::atomic<bool> g_installed{false};
struct sigaction g_previous[65];  // handlers we chain to (index = signal number)

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void Store(State& s, const CollectiveDesc& d) {
  s.op.store(nullptr, std::memory_order_release);  // readers see either old or new op consistently
  s.backend.store(d.backend, std::memory_order_relaxed);
  s.seq.store(d.seq, std::memory_order_relaxed);
  s.bytes.store(d.bytes, std::memory_order_relaxed);
  s.since_ns.store(NowNs(), std::memory_order_relaxed);
  s.op.store(d.op, std::memory_order_release);
}

// ---- async-signal-safe formatting into a fixed buffer -------------------------------------
struct Buf {
  char data[512];
  size_t n = 0;
  void Put(const char* s) {
    while (s && *s && n + 1 < sizeof(data)) data[n++] = *s++;
  }
  void PutInt(int64_t v) {
    char tmp[24];
    int k = 0;
    bool neg = v < 0;
    uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
    do {
      tmp[k++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u && k < 23);
    if (neg) Put("-");
    while (k > 0 && n + 1 < sizeof(data)) data[n++] = tmp[--k];
  }
  void PutSeconds(int64_t ns) {  // "2.31"
    PutInt(ns / 1000000000LL);
    Put(".");
    int64_t cs = (ns % 1000000000LL) / 10000000LL;
    if (cs < 10) Put("0");
    PutInt(cs);
  }
  void PutDesc(const State& s, const char* op) {
    Put(s.backend.load(std::memory_order_relaxed));
    Put(" ");
    Put(op);
    Put(" #");
    PutInt(s.seq.load(std::memory_order_relaxed));
    Put(" (");
    PutInt(s.bytes.load(std::memory_order_relaxed));
    Put(" bytes)");
  }
};

bool Chains(int sig) {
  const struct sigaction& p = g_previous[sig];
  if (p.sa_flags & SA_SIGINFO) return p.sa_sigaction != nullptr;
  return p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN;
}

void OnTerminate(int sig, siginfo_t* info, void* ctx) {
  const int saved_errno = errno;
  const bool chain = sig > 0 && sig < 65 && Chains(sig);
  // With a chained (graceful-stop) handler, only a long wait is worth reporting: it means a peer
  // is gone and the graceful stop cannot complete.
  const char* waiting = g_waiting.op.load(std::memory_order_acquire);
  const int64_t waited = waiting ? NowNs() - g_waiting.since_ns.load(std::memory_order_relaxed) : 0;
  if (chain && waited < 500000000LL) {
    errno = saved_errno;
    const struct sigaction& p = g_previous[sig];
    if (p.sa_flags & SA_SIGINFO)
      p.sa_sigaction(sig, info, ctx);
    else
      p.sa_handler(sig);
    return;
  }
  Buf b;
  b.Put("[rank ");
  b.PutInt(g_rank.load());
  b.Put("/");
  b.PutInt(g_world.load());
  b.Put(chain ? "] received signal " : "] terminated by signal ");
  b.PutInt(sig);
  if (const char* op = g_waiting.op.load(std::memory_order_acquire)) {
    b.Put(" while waiting ");
    b.PutSeconds(NowNs() - g_waiting.since_ns.load(std::memory_order_relaxed));
    b.Put(" s in collective ");
    b.PutDesc(g_waiting, op);
    b.Put(": a peer rank probably died or hung (see the launcher's message), or the job was cancelled");
  } else if (const char* last = g_last_done.op.load(std::memory_order_acquire)) {
    b.Put(" outside any collective (last completed: ");
    b.PutDesc(g_last_done, last);
    b.Put(")");
  } else {
    b.Put(" before its first collective");
  }
  b.Put("\n");
  ssize_t ignored = write(STDERR_FILENO, b.data, b.n);
  (void)ignored;
  errno = saved_errno;
  if (chain) {
    const struct sigaction& p = g_previous[sig];
    if (p.sa_flags & SA_SIGINFO)
      p.sa_sigaction(sig, info, ctx);
    else
      p.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

std::string CollectiveDesc::ToString() const {
  return std::string(backend) + " " + op + " #" + std::to_string(seq) + " (" + std::to_string(bytes) + " bytes)";
}

CollectiveScope::CollectiveScope(const CollectiveDesc& d) { Store(g_waiting, d); }

CollectiveScope::~CollectiveScope() { g_waiting.op.store(nullptr, std::memory_order_release); }

void NoteCollectiveDone(const CollectiveDesc& d) { Store(g_last_done, d); }

void InstallTerminationReporter(int rank, int world_size) {
  g_rank.store(rank);
  g_world.store(world_size);
  if (g_installed.exchange(true)) return;
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) != 0) continue;
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) continue;  // ignored on purpose
    g_previous[sig] = old;
    struct sigaction sa {};
    sa.sa_sigaction = OnTerminate;
    sigemptyset(&sa.sa_mask);
    // Keep the handler installed when chaining (the previous handler may expect repeated signals).
    sa.sa_flags = SA_SIGINFO | (Chains(sig) ? (old.sa_flags & SA_RESTART) : SA_RESETHAND);
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace vicreg::comm
