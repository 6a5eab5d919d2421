#ifndef USE_C10D_GLOO
#error "this LibTorch was built without c10d Gloo (USE_C10D_GLOO is not defined): configure with -DVICREG_WITH_GLOO=OFF"
#endif
#define VICREG_COMPAT_C10D
#include "worker/comm/gloo_communicator.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "worker/comm/collective_tracker.h"
#include "worker/comm/gloo_address.h"
#include "worker/torch_compat.h"

namespace vicreg::comm {
namespace {

using Clock = std::chrono::steady_clock;

std::string Sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return out;
}

std::string ErrorText(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

class GlooCommunicator;

class GlooWork : public Work {
 public:
  GlooWork(GlooCommunicator* comm, c10::intrusive_ptr<compat::C10dWork> work, CollectiveDesc desc)
      : comm_(comm), work_(std::move(work)), desc_(desc) {}
  ~GlooWork() override;
  void Wait() override;
  bool Test() override;

 private:
  GlooCommunicator* comm_;
  c10::intrusive_ptr<compat::C10dWork> work_;
  CollectiveDesc desc_;
  bool done_ = false;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(const RankInfo& info, const GlooCommunicatorOptions& opts)
      : opts_(opts), rank_(info.rank), world_(info.world_size), local_world_(info.local_world_size) {
    std::string where;
    try {
      if (!opts.rendezvous_dir.empty() || opts.master_addr.empty()) {
        std::string dir = opts.rendezvous_dir;
        if (dir.empty()) {
          const char* tmp = std::getenv("TMPDIR");
          dir = (tmp && *tmp) ? tmp : "/tmp";
        }
        if (opts.job_token.empty() && opts.rendezvous_dir.empty() && world_ > 1) {
          throw UserError(
              "the gloo backend needs a job id to name its rendezvous file: launch the ranks with "
              "mpirun, srun or torchrun, or set a rendezvous folder unique to this run");
        }
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);  // e.g. <run_dir>/.rendezvous before the run dir exists
        if (ec && !std::filesystem::is_directory(dir)) {
          throw UserError("cannot create the gloo rendezvous folder " + dir + ": " + ec.message());
        }
        const std::string path = dir + "/gloo-" + (opts.job_token.empty() ? "store" : Sanitize(opts.job_token));
        where = "FileStore " + path;
        store_ = c10::make_intrusive<::c10d::FileStore>(path, world_);
      } else {
        where = "TCPStore " + opts.master_addr + ":" + std::to_string(opts.master_port);
        store_ = compat::MakeTcpStore(opts.master_addr, opts.master_port, rank_ == 0, world_, opts.timeout);
      }
      store_->setTimeout(opts.timeout);
      auto gopts = compat::GlooOptions(opts.timeout, /*threads=*/2);
      for (const auto& bind : BindAddresses()) {
        where += ", binding " + bind.address;
        spdlog::info("gloo: rank {} of {} binds {} ({})", rank_, world_, bind.address, bind.reason);
        gopts->devices.push_back(compat::GlooDeviceForHost(bind.address));
      }
      pg_ = c10::make_intrusive<compat::GlooGroup>(c10::make_intrusive<::c10d::PrefixStore>("vicreg/pg", store_), rank_,
                                                   world_, gopts);
    } catch (const UserError&) {
      throw;
    } catch (const std::exception& e) {
      throw RuntimeFailure("gloo rendezvous of rank " + std::to_string(rank_) + " of " + std::to_string(world_) +
                           " through " + where + " failed within " + std::to_string(opts.timeout.count()) +
                           " ms: " + ErrorText(e));
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "gloo"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  bool SupportsAsync() const override { return true; }

  void AllReduceSum(at::Tensor& t) override { AllReduceSumAsync(t)->Wait(); }

  std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) override {
    CheckTensor(t, "allreduce");
    auto desc = Next("allreduce", t);
    std::vector<at::Tensor> v{t};
    return std::make_unique<GlooWork>(this, Launch(desc, [&] { return pg_->allreduce(v); }), desc);
  }

  // t: [B, ...] -> [world*B, ...]
  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "allgather");
    VICREG_CHECK(t.dim() >= 1, "allgather needs a tensor with a leading batch dimension");
    auto sizes = t.sizes().vec();
    sizes[0] *= world_;
    at::Tensor out = at::empty(sizes, t.options());
    auto desc = Next("allgather", out);
    // Gloo in LibTorch 1.13 has no _allgather_base: gather into views of one flat buffer.
    std::vector<std::vector<at::Tensor>> outs(1, out.chunk(world_, 0));
    std::vector<at::Tensor> in{t};
    GlooWork(this, Launch(desc, [&] { return pg_->allgather(outs, in); }), desc).Wait();
    return out;
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "broadcast");
    VICREG_CHECK(root >= 0 && root < world_, "broadcast root " + std::to_string(root) + " out of range");
    auto desc = Next("broadcast", t);
    std::vector<at::Tensor> v{t};
    ::c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    GlooWork(this, Launch(desc, [&] { return pg_->broadcast(v, o); }), desc).Wait();
  }

  void Barrier() override {
    auto desc = Next("barrier", at::Tensor());
    GlooWork(this, Launch(desc, [&] { return pg_->barrier(); }), desc).Wait();
  }

  [[noreturn]] void Abort(int exit_code, const std::string& reason) override {
    const int code = exit_code == 0 ? 1 : exit_code;
    std::fprintf(stderr, "[rank %d/%d] aborting job (exit code %d): %s\n", rank_, world_, code, reason.c_str());
    std::fflush(stderr);
    if (opts_.abort_hook) opts_.abort_hook(code);
    std::_Exit(code);
  }

  // ---- used by GlooWork ---------------------------------------------------------------------
  void WaitWork(compat::C10dWork& work, const CollectiveDesc& desc) {
    CheckHealthy(desc);
    CollectiveScope scope(desc);
    try {
      work.wait();
    } catch (const std::exception& e) {
      Fail(desc, ErrorText(e));
    }
    NoteCollectiveDone(desc);
  }

  bool TestWork(compat::C10dWork& work, const CollectiveDesc& desc) {
    if (!work.isCompleted()) return false;
    WaitWork(work, desc);  // rethrows a failure
    return true;
  }

 private:
  // See gloo_address.h. The exchange uses the rendezvous store (keys vicreg/hostaddr/<rank>).
  std::vector<BindChoice> BindAddresses() {
    if (!opts_.gloo_host.empty()) return {{opts_.gloo_host, "configured"}};
    std::string ifnames = opts_.socket_ifname;
    if (ifnames.empty()) {
      const char* env = std::getenv("GLOO_SOCKET_IFNAME");
      ifnames = env ? env : "";
    }
    if (!ifnames.empty()) return AddressesOfInterfaces(ifnames, LocalIpv4Interfaces());
    if (world_ == 1 || local_world_ >= world_) {
      return {{"127.0.0.1", "all " + std::to_string(world_) + " rank(s) on this host"}};
    }
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    HostAddresses mine{host, LocalIpv4Interfaces()};
    const std::string text = EncodeHostAddresses(mine);
    store_->set("vicreg/hostaddr/" + std::to_string(rank_), std::vector<uint8_t>(text.begin(), text.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < world_; ++r) keys.push_back("vicreg/hostaddr/" + std::to_string(r));
    store_->wait(keys, opts_.timeout);
    std::vector<HostAddresses> all;
    for (int r = 0; r < world_; ++r) {
      const auto v = store_->get(keys[r]);
      all.push_back(DecodeHostAddresses(std::string(v.begin(), v.end()), "the entry of rank " + std::to_string(r)));
    }
    return {ChooseBindAddress(rank_, all, RouteSourceAddress)};
  }

  template <class F>
  c10::intrusive_ptr<compat::C10dWork> Launch(const CollectiveDesc& desc, F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      Fail(desc, ErrorText(e));
    }
  }

  void CheckTensor(const at::Tensor& t, const char* op) const {
    VICREG_CHECK(t.defined(), std::string("gloo ") + op + ": undefined tensor");
    VICREG_CHECK(t.device().is_cpu(), std::string("gloo ") + op + ": tensor on " + t.device().str() +
                                          "; this backend moves CPU tensors only (use nccl for cuda)");
    VICREG_CHECK(t.is_contiguous(), std::string("gloo ") + op + ": tensor must be contiguous");
  }

  CollectiveDesc Next(const char* op, const at::Tensor& t) {
    CollectiveDesc d;
    d.backend = "gloo";
    d.op = op;
    d.seq = ++seq_;
    d.bytes = t.defined() ? static_cast<int64_t>(t.numel() * t.element_size()) : 0;
    CheckHealthy(d);
    return d;
  }

  void CheckHealthy(const CollectiveDesc& d) const {
    if (broken_.load()) {
      throw RuntimeFailure(d.ToString() + " on rank " + std::to_string(rank_) +
                           ": the communicator is broken by an earlier failure: " + broken_reason_);
    }
  }

  // Every failing rank announces itself in the store; ranks that do not within the grace
  // period are dead, stopped or not in a collective.
  std::string ProbePeers(const CollectiveDesc& desc, std::vector<int>* missing) {
    const auto grace = std::clamp(std::min(opts_.probe_grace, opts_.timeout), std::chrono::milliseconds(100),
                                  std::chrono::milliseconds(5000));
    const std::string prefix = "vicreg/failed/" + std::to_string(desc.seq) + "/";
    try {
      const std::string me = desc.ToString();
      store_->set(prefix + std::to_string(rank_), std::vector<uint8_t>(me.begin(), me.end()));
      std::vector<bool> seen(world_, false);
      seen[rank_] = true;
      const auto start = Clock::now();
      int pending = world_ - 1;
      while (pending > 0 && Clock::now() - start < grace) {
        for (int p = 0; p < world_; ++p) {
          if (!seen[p] && store_->check({prefix + std::to_string(p)})) {
            seen[p] = true;
            --pending;
          }
        }
        if (pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::ostringstream os;
      for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        os << "\n    rank " << p << ": "
           << (seen[p] ? "alive, failed in the same collective"
                       : "did not report within " + std::to_string(grace.count()) +
                             " ms (dead, stopped, or busy outside collectives)");
        if (!seen[p]) missing->push_back(p);
      }
      return os.str();
    } catch (const std::exception& e) {
      return "\n    (peer probe through the store failed: " + ErrorText(e) + ")";
    }
  }

  [[noreturn]] void Fail(const CollectiveDesc& desc, const std::string& what) {
    std::vector<int> missing;
    std::string peers = world_ > 1 ? ProbePeers(desc, &missing) : std::string();
    std::ostringstream os;
    os << desc.ToString() << " failed on rank " << rank_ << " of " << world_ << " (timeout " << opts_.timeout.count()
       << " ms): " << what;
    if (!missing.empty()) {
      os << "; unresponsive rank(s):";
      for (int p : missing) os << " " << p;
    }
    if (!peers.empty()) os << "\n  peers:" << peers;
    broken_reason_ = os.str();
    broken_.store(true);
    std::fprintf(stderr, "[rank %d/%d] %s\n", rank_, world_, broken_reason_.c_str());
    std::fflush(stderr);
    throw RuntimeFailure(broken_reason_);
  }

  GlooCommunicatorOptions opts_;
  int rank_;
  int world_;
  int local_world_;
  c10::intrusive_ptr<::c10d::Store> store_;
  c10::intrusive_ptr<compat::GlooGroup> pg_;
  std::atomic<int64_t> seq_{0};
  std::atomic<bool> broken_{false};
  std::string broken_reason_;
};

GlooWork::~GlooWork() {
  if (!done_) {
    try {
      Wait();
    } catch (...) {
    }
  }
}

void GlooWork::Wait() {
  if (done_) return;
  done_ = true;
  comm_->WaitWork(*work_, desc_);
}

bool GlooWork::Test() {
  if (done_) return true;
  if (comm_->TestWork(*work_, desc_)) done_ = true;
  return done_;
}

}  // namespace

std::shared_ptr<Communicator> CreateGlooCommunicator(const RankInfo& info, const GlooCommunicatorOptions& opts) {
  return std::make_shared<GlooCommunicator>(info, opts);
}

}  // namespace vicreg::comm
