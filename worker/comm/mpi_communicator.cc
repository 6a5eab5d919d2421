#include "worker/comm/mpi_communicator.h"

#include <ATen/ATen.h>
#include <mpi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "worker/comm/collective_tracker.h"
#include "worker/comm/mpi_environment.h"

namespace vicreg::comm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTagPing = 7001;
constexpr int kTagPong = 7002;

// Op codes carried in liveness answers (index into kOpNames).
enum OpCode : int64_t { kOpNone = 0, kOpAllReduce, kOpAllGather, kOpBroadcast, kOpBarrier };
constexpr const char* kOpNames[] = {"none", "allreduce", "allgather", "broadcast", "barrier"};

MPI_Datatype ToMpi(at::ScalarType t, bool for_reduction) {
  switch (t) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    case at::kByte: return MPI_UINT8_T;
    case at::kChar: return MPI_INT8_T;
    case at::kShort: return MPI_INT16_T;
    default: break;
  }
  if (!for_reduction && (t == at::kHalf || t == at::kBFloat16)) return MPI_UINT16_T;  // bit copies only
  if (!for_reduction && t == at::kBool) return MPI_C_BOOL;
  throw InternalError(std::string("MPI communicator: dtype ") + c10::toString(t) + " is not supported" +
                      (for_reduction ? " for a sum reduction (use float32/float64/int)" : ""));
}

// Polling policy while a request is pending. Open MPI progresses non-blocking collectives only
// inside MPI calls, so a large all-reduce needs frequent MPI_Test calls between its rounds:
// poll continuously (yielding the core to other runnable processes) for the first `busy`
// interval, then back off to short sleeps (20 us doubling to 200 us) so that a rank waiting for
// a slow peer leaves the core to it (ranks often share cores on CPU machines).
class Backoff {
 public:
  explicit Backoff(std::chrono::microseconds busy) : busy_(busy) {}
  void Pause() {
    ++n_;
    if (n_ < 64) return;
    if (Clock::now() - start_ < busy_) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(sleep_);
    sleep_ = std::min(sleep_ * 2, std::chrono::microseconds(200));
  }

 private:
  std::chrono::microseconds busy_;
  Clock::time_point start_ = Clock::now();
  std::chrono::microseconds sleep_{20};
  int64_t n_ = 0;
};

class MpiCommunicator;

class MpiWork : public Work {
 public:
  MpiWork(MpiCommunicator* comm, MPI_Request req, CollectiveDesc desc, int64_t op_code, std::vector<at::Tensor> keep)
      : comm_(comm), req_(req), desc_(desc), op_code_(op_code), keep_(std::move(keep)) {}
  ~MpiWork() override;
  void Wait() override;
  bool Test() override;

 private:
  friend class MpiCommunicator;
  MpiCommunicator* comm_;
  MPI_Request req_;
  CollectiveDesc desc_;
  int64_t op_code_;
  std::vector<at::Tensor> keep_;
  bool done_ = false;
};

class MpiCommunicator : public Communicator, public std::enable_shared_from_this<MpiCommunicator> {
 public:
  MpiCommunicator(const RankInfo& info, const MpiCommunicatorOptions& opts) : opts_(opts) {
    auto& env = mpi::Environment::Get();
    if (env.world_size() != info.world_size || env.world_rank() != info.rank) {
      throw RuntimeFailure("MPI_COMM_WORLD says rank " + std::to_string(env.world_rank()) + " of " +
                           std::to_string(env.world_size()) + " but the launcher environment (" + info.source +
                           ") says rank " + std::to_string(info.rank) + " of " + std::to_string(info.world_size) +
                           ": the worker was probably started by another MPI than the one it was built with "
                           "(use Open MPI's mpirun, or srun --mpi=pmix)");
    }
    rank_ = env.world_rank();
    world_ = env.world_size();
    auto lock = env.Lock();
    MPI_Comm_dup(MPI_COMM_WORLD, &data_comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &ctrl_comm_);
    MPI_Comm_set_errhandler(data_comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(ctrl_comm_, MPI_ERRORS_RETURN);
    PostPingRecvLocked();
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || mpi::Environment::Get().broken()) return;  // requests may never complete
    auto lock = mpi::Environment::Get().Lock();
    if (ping_req_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&ping_req_);
      MPI_Wait(&ping_req_, MPI_STATUS_IGNORE);
    }
    for (auto& p : pongs_) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
    MPI_Comm_free(&ctrl_comm_);
    MPI_Comm_free(&data_comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "mpi"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  bool SupportsAsync() const override { return true; }

  void AllReduceSum(at::Tensor& t) override { AllReduceSumAsync(t)->Wait(); }

  std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) override {
    CheckTensor(t, "allreduce");
    auto desc = Next("allreduce", t);
    MPI_Request req = MPI_REQUEST_NULL;
    const auto type = ToMpi(t.scalar_type(), /*for_reduction=*/true);
    const int count = Count(t, desc);
    int rc;
    {
      auto lock = mpi::Environment::Get().Lock();
      rc = MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count, type, MPI_SUM, data_comm_, &req);
    }
    if (rc != MPI_SUCCESS) Fail(desc, kOpAllReduce, "MPI_Iallreduce failed: " + mpi::Environment::ErrorString(rc));
    return std::make_unique<MpiWork>(this, req, desc, kOpAllReduce, std::vector<at::Tensor>{t});
  }

  // t: [B, ...] -> [world*B, ...]
  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "allgather");
    auto sizes = t.sizes().vec();
    VICREG_CHECK(!sizes.empty(), "allgather needs a tensor with a leading batch dimension");
    sizes[0] *= world_;
    at::Tensor out = at::empty(sizes, t.options());
    auto desc = Next("allgather", out);
    const auto type = ToMpi(t.scalar_type(), false);
    const int count = Count(t, desc);
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    {
      auto lock = mpi::Environment::Get().Lock();
      rc = MPI_Iallgather(t.data_ptr(), count, type, out.data_ptr(), count, type, data_comm_, &req);
    }
    if (rc != MPI_SUCCESS) Fail(desc, kOpAllGather, "MPI_Iallgather failed: " + mpi::Environment::ErrorString(rc));
    MpiWork w(this, req, desc, kOpAllGather, {t, out});
    w.Wait();
    return out;
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "broadcast");
    VICREG_CHECK(root >= 0 && root < world_, "broadcast root " + std::to_string(root) + " out of range");
    auto desc = Next("broadcast", t);
    const auto type = ToMpi(t.scalar_type(), false);
    const int count = Count(t, desc);
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    {
      auto lock = mpi::Environment::Get().Lock();
      rc = MPI_Ibcast(t.data_ptr(), count, type, root, data_comm_, &req);
    }
    if (rc != MPI_SUCCESS) Fail(desc, kOpBroadcast, "MPI_Ibcast failed: " + mpi::Environment::ErrorString(rc));
    MpiWork w(this, req, desc, kOpBroadcast, {t});
    w.Wait();
  }

  void Barrier() override {
    auto desc = Next("barrier", at::Tensor());
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    {
      auto lock = mpi::Environment::Get().Lock();
      rc = MPI_Ibarrier(data_comm_, &req);
    }
    if (rc != MPI_SUCCESS) Fail(desc, kOpBarrier, "MPI_Ibarrier failed: " + mpi::Environment::ErrorString(rc));
    MpiWork w(this, req, desc, kOpBarrier, {});
    w.Wait();
  }

  [[noreturn]] void Abort(int exit_code, const std::string& reason) override {
    std::fprintf(stderr, "[rank %d/%d] aborting job (exit code %d): %s\n", rank_, world_, exit_code, reason.c_str());
    mpi::Environment::Get().Abort(exit_code);
  }

  // ---- used by MpiWork ----------------------------------------------------------------------
  // Returns true when done; throws (via Fail) on MPI error.
  bool TestRequest(MPI_Request* req, const CollectiveDesc& desc, int64_t op_code) {
    int flag = 0;
    MPI_Status status;
    int rc;
    {
      auto lock = mpi::Environment::Get().Lock();
      rc = MPI_Test(req, &flag, &status);
      if (rc == MPI_SUCCESS && !flag) ServiceControlLocked();
    }
    if (rc != MPI_SUCCESS) Fail(desc, op_code, mpi::Environment::ErrorString(rc));
    return flag != 0;
  }

  void WaitRequest(MPI_Request* req, const CollectiveDesc& desc, int64_t op_code) {
    CheckHealthy(desc);
    CollectiveScope scope(desc);
    waiting_op_.store(op_code);
    waiting_seq_.store(desc.seq);
    const auto start = Clock::now();
    Backoff backoff(opts_.busy_poll);
    while (!TestRequest(req, desc, op_code)) {
      if (Clock::now() - start > opts_.timeout) {
        Fail(desc, op_code, "did not complete within " + Seconds(opts_.timeout) + " (collective timeout)");
      }
      backoff.Pause();
    }
    waiting_op_.store(kOpNone);
    MarkDone(desc);
  }

  void MarkDone(const CollectiveDesc& desc) {
    NoteCollectiveDone(desc);
    int64_t prev = last_done_seq_.load();
    while (prev < desc.seq && !last_done_seq_.compare_exchange_weak(prev, desc.seq)) {
    }
  }

 private:
  static std::string Seconds(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f s", ms.count() / 1000.0);
    return buf;
  }

  void CheckTensor(const at::Tensor& t, const char* op) const {
    VICREG_CHECK(t.defined(), std::string("mpi ") + op + ": undefined tensor");
    VICREG_CHECK(t.device().is_cpu(), std::string("mpi ") + op + ": tensor on " + t.device().str() +
                                          "; the MPI backend moves CPU tensors only (use nccl for cuda)");
    VICREG_CHECK(t.is_contiguous(), std::string("mpi ") + op + ": tensor must be contiguous");
  }

  int Count(const at::Tensor& t, const CollectiveDesc& desc) const {
    VICREG_CHECK(t.numel() <= 0x7fffffffLL, desc.ToString() + ": more than 2^31-1 elements; split the tensor");
    return static_cast<int>(t.numel());
  }

  CollectiveDesc Next(const char* op, const at::Tensor& t) {
    CollectiveDesc d;
    d.backend = "mpi";
    d.op = op;
    d.seq = ++seq_;
    d.bytes = t.defined() ? static_cast<int64_t>(t.numel() * t.element_size()) : 0;
    CheckHealthy(d);
    return d;
  }

  void CheckHealthy(const CollectiveDesc& d) const {
    if (broken_) {
      throw RuntimeFailure(d.ToString() + " on rank " + std::to_string(rank_) +
                           ": the communicator is broken by an earlier failure: " + broken_reason_);
    }
  }

  // ---- liveness protocol on ctrl_comm_ (caller holds the MPI lock) ----------------------------
  struct Pong {
    std::array<int64_t, 3> buf;  // {waiting(0/1), op code, seq (waiting) or last completed seq}
    MPI_Request req = MPI_REQUEST_NULL;
  };

  void PostPingRecvLocked() {
    MPI_Irecv(ping_buf_.data(), 2, MPI_INT64_T, MPI_ANY_SOURCE, kTagPing, ctrl_comm_, &ping_req_);
  }

  // Answers pending pings: "I am waiting in <op> #seq" or "idle, last completed #seq".
  void ServiceControlLocked() {
    for (int guard = 0; guard < 64 && ping_req_ != MPI_REQUEST_NULL; ++guard) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Test(&ping_req_, &flag, &st) != MPI_SUCCESS || !flag) break;
      pongs_.emplace_back();
      auto& p = pongs_.back();
      const int64_t op = waiting_op_.load();
      p.buf = {op != kOpNone ? 1 : 0, op, op != kOpNone ? waiting_seq_.load() : last_done_seq_.load()};
      MPI_Isend(p.buf.data(), 3, MPI_INT64_T, st.MPI_SOURCE, kTagPong, ctrl_comm_, &p.req);
      PostPingRecvLocked();
    }
    // Retire completed answers.
    for (auto it = pongs_.begin(); it != pongs_.end();) {
      int flag = 0;
      MPI_Test(&it->req, &flag, MPI_STATUS_IGNORE);
      it = flag ? pongs_.erase(it) : std::next(it);
    }
  }

  // Asks every peer where it is; returns one line per peer.
  std::string ProbePeers() {
    const auto grace = std::clamp(std::min(opts_.probe_grace, opts_.timeout), std::chrono::milliseconds(100),
                                  std::chrono::milliseconds(5000));
    std::vector<std::array<int64_t, 2>> ping_out(world_);
    std::vector<std::array<int64_t, 3>> answers(world_);
    std::vector<MPI_Request> send_req(world_, MPI_REQUEST_NULL), recv_req(world_, MPI_REQUEST_NULL);
    std::vector<bool> answered(world_, false);
    {
      auto lock = mpi::Environment::Get().Lock();
      for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        ping_out[p] = {rank_, seq_};
        MPI_Irecv(answers[p].data(), 3, MPI_INT64_T, p, kTagPong, ctrl_comm_, &recv_req[p]);
        MPI_Isend(ping_out[p].data(), 2, MPI_INT64_T, p, kTagPing, ctrl_comm_, &send_req[p]);
      }
    }
    const auto start = Clock::now();
    Backoff backoff(std::chrono::microseconds(0));
    int pending = world_ - 1;
    while (pending > 0 && Clock::now() - start < grace) {
      {
        auto lock = mpi::Environment::Get().Lock();
        ServiceControlLocked();  // peers probe us at the same time
        for (int p = 0; p < world_; ++p) {
          if (p == rank_ || answered[p]) continue;
          int flag = 0;
          if (MPI_Test(&recv_req[p], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) {
            answered[p] = true;
            --pending;
          }
        }
      }
      backoff.Pause();
    }
    // Unanswered requests are left pending on purpose: the job is about to be aborted.
    std::ostringstream os;
    for (int p = 0; p < world_; ++p) {
      if (p == rank_) continue;
      os << "\n    rank " << p << ": ";
      if (!answered[p]) {
        os << "did not answer a liveness probe within " << grace.count()
           << " ms (dead, stopped, or busy outside collectives)";
        unresponsive_.push_back(p);
        continue;
      }
      const auto& a = answers[p];
      const char* name = (a[1] >= 0 && a[1] <= kOpBarrier) ? kOpNames[a[1]] : "?";
      if (a[0]) {
        os << "alive, waiting in mpi " << name << " #" << a[2];
      } else {
        os << "alive, not in a collective (last completed #" << a[2] << ")";
      }
    }
    return os.str();
  }

  [[noreturn]] void Fail(const CollectiveDesc& desc, int64_t op_code, const std::string& what) {
    waiting_op_.store(op_code);  // keep answering probes as "waiting" while we probe
    unresponsive_.clear();
    std::string peers = world_ > 1 ? ProbePeers() : std::string();
    std::ostringstream os;
    os << desc.ToString() << " failed on rank " << rank_ << " of " << world_ << ": " << what;
    if (!unresponsive_.empty()) {
      os << "; unresponsive rank(s):";
      for (int p : unresponsive_) os << " " << p;
    }
    if (!peers.empty()) os << "\n  peers:" << peers;
    broken_ = true;
    broken_reason_ = os.str();
    mpi::Environment::Get().MarkBroken(kExitFailure);
    std::fprintf(stderr, "[rank %d/%d] %s\n", rank_, world_, broken_reason_.c_str());
    std::fflush(stderr);
    throw RuntimeFailure(broken_reason_);
  }

  MpiCommunicatorOptions opts_;
  int rank_ = 0;
  int world_ = 1;
  MPI_Comm data_comm_ = MPI_COMM_NULL;
  MPI_Comm ctrl_comm_ = MPI_COMM_NULL;
  std::atomic<int64_t> seq_{0};
  std::atomic<int64_t> waiting_op_{kOpNone};
  std::atomic<int64_t> waiting_seq_{0};
  std::atomic<int64_t> last_done_seq_{0};
  std::array<int64_t, 2> ping_buf_{};
  MPI_Request ping_req_ = MPI_REQUEST_NULL;
  std::list<Pong> pongs_;  // answers in flight (list: buffers must not move while MPI sends them)
  std::vector<int> unresponsive_;
  bool broken_ = false;
  std::string broken_reason_;
};

MpiWork::~MpiWork() {
  if (!done_ && req_ != MPI_REQUEST_NULL && !mpi::Environment::Get().broken()) {
    // A work dropped without Wait(): finish it so the buffers stay valid while MPI writes them.
    try {
      Wait();
    } catch (...) {
    }
  }
}

void MpiWork::Wait() {
  if (done_) return;
  comm_->WaitRequest(&req_, desc_, op_code_);
  done_ = true;
  keep_.clear();
}

bool MpiWork::Test() {
  if (done_) return true;
  if (comm_->TestRequest(&req_, desc_, op_code_)) {
    done_ = true;
    comm_->MarkDone(desc_);
    keep_.clear();
  }
  return done_;
}

}  // namespace

std::shared_ptr<Communicator> CreateMpiCommunicator(const RankInfo& info, const MpiCommunicatorOptions& opts) {
  return std::make_shared<MpiCommunicator>(info, opts);
}

void MpiBroadcastBytes(std::string& bytes, int root) {
  auto& env = mpi::Environment::Get();
  auto lock = env.Lock();
  int64_t n = static_cast<int64_t>(bytes.size());
  MPI_Bcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD);
  bytes.resize(static_cast<size_t>(n));
  if (n > 0) MPI_Bcast(bytes.data(), static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD);
}

void MpiAbort(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) mpi::Environment::Get().Abort(exit_code);
  std::_Exit(exit_code == 0 ? 1 : exit_code);
}

}  // namespace vicreg::comm
