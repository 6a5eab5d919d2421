// NCCL communicator. Compiled for real with VICREG_WITH_NCCL=ON; with VICREG_CHECK_CUDA_SOURCES=ON it
// is compile-checked against LibTorch's CUDA headers + the CUDA toolkit headers (not linked).
#define VICREG_COMPAT_CUDA
#include "worker/comm/nccl_communicator.h"

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "worker/comm/collective_tracker.h"
#include "worker/torch_compat.h"

namespace vicreg::comm {
namespace {

using Clock = std::chrono::steady_clock;

std::string NcclText(ncclResult_t r) {
  return std::string(ncclGetErrorString(r)) + " (ncclResult " + std::to_string(r) + ")";
}
std::string CudaText(cudaError_t e) {
  return std::string(cudaGetErrorString(e)) + " (cudaError " + std::to_string(e) + ")";
}

ncclDataType_t ToNccl(at::ScalarType t, bool for_reduction) {
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kDouble: return ncclFloat64;
    case at::kHalf: return ncclFloat16;
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= 21000
    case at::kBFloat16: return ncclBfloat16;
#endif
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: break;
  }
  if (!for_reduction && t == at::kBool) return ncclUint8;
  throw InternalError(std::string("NCCL communicator: dtype ") + c10::toString(t) + " is not supported" +
                      (for_reduction ? " for a sum reduction" : ""));
}

// A collective enqueued on a stream, watched until its event completes.
struct Pending {
  CollectiveDesc desc;
  cudaEvent_t done = nullptr;
  Clock::time_point enqueued;
};

class NcclCommunicator;

class NcclWork : public Work {
 public:
  NcclWork(NcclCommunicator* comm, cudaEvent_t done, CollectiveDesc desc, c10::DeviceIndex dev)
      : comm_(comm), done_(done), desc_(desc), dev_(dev) {}
  ~NcclWork() override;
  void Wait() override;
  bool Test() override;

 private:
  NcclCommunicator* comm_;
  cudaEvent_t done_;  // owned (a second event; the watchdog owns its own)
  CollectiveDesc desc_;
  c10::DeviceIndex dev_;
  bool waited_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const RankInfo& info, const NcclCommunicatorOptions& opts)
      : opts_(opts), rank_(info.rank), world_(info.world_size), dev_(static_cast<c10::DeviceIndex>(opts.device_index)) {
    c10::cuda::CUDAGuard guard(dev_);
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank_ == 0) Check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    if (world_ > 1) {
      if (!opts.broadcast_bytes)
        throw InternalError("NCCL communicator needs a bootstrap broadcast for world size > 1");
      std::string bytes(reinterpret_cast<const char*>(&id), sizeof(id));
      opts.broadcast_bytes(bytes, 0);
      if (bytes.size() != sizeof(id)) {
        throw RuntimeFailure("NCCL bootstrap: received a unique id of " + std::to_string(bytes.size()) +
                             " bytes, expected " + std::to_string(sizeof(id)));
      }
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
    Check(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");
    side_stream_.emplace(compat::PoolCudaStream(dev_));
    watchdog_ = std::thread([this] { WatchdogLoop(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (comm_ != nullptr && !failed_.load()) {
      for (auto& p : pending_) {
        cudaEventSynchronize(p.done);
        cudaEventDestroy(p.done);
      }
      ncclCommDestroy(comm_);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "nccl"; }
  c10::Device device() const override { return c10::Device(c10::kCUDA, dev_); }
  bool SupportsAsync() const override { return true; }

  void AllReduceSum(at::Tensor& t) override {
    CheckTensor(t, "allreduce");
    auto desc = Next("allreduce", t);
    c10::cuda::CUDAGuard guard(dev_);
    auto stream = compat::CurrentCudaStream(dev_);
    Check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), ToNccl(t.scalar_type(), true),
                        ncclSum, comm_, stream.stream()),
          desc);
    Watch(desc, stream.stream());
  }

  std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) override {
    CheckTensor(t, "allreduce");
    auto desc = Next("allreduce", t);
    c10::cuda::CUDAGuard guard(dev_);
    auto current = compat::CurrentCudaStream(dev_);
    auto& side = *side_stream_;
    // The side stream starts after everything already queued on the current stream (the grads).
    cudaEvent_t ready = NewEvent();
    CheckCuda(cudaEventRecord(ready, current.stream()), desc);
    CheckCuda(cudaStreamWaitEvent(side.stream(), ready, 0), desc);
    cudaEventDestroy(ready);  // safe: destruction is deferred until the recorded work completes
    compat::RecordStream(t, side);
    Check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), ToNccl(t.scalar_type(), true),
                        ncclSum, comm_, side.stream()),
          desc);
    Watch(desc, side.stream());
    cudaEvent_t done = NewEvent();
    CheckCuda(cudaEventRecord(done, side.stream()), desc);
    return std::make_unique<NcclWork>(this, done, desc, dev_);
  }

  // t: [B, ...] -> [world*B, ...]
  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "allgather");
    VICREG_CHECK(t.dim() >= 1, "allgather needs a tensor with a leading batch dimension");
    auto sizes = t.sizes().vec();
    sizes[0] *= world_;
    at::Tensor out = at::empty(sizes, t.options());
    auto desc = Next("allgather", out);
    c10::cuda::CUDAGuard guard(dev_);
    auto stream = compat::CurrentCudaStream(dev_);
    Check(ncclAllGather(t.data_ptr(), out.data_ptr(), static_cast<size_t>(t.numel()), ToNccl(t.scalar_type(), false),
                        comm_, stream.stream()),
          desc);
    Watch(desc, stream.stream());
    return out;
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "broadcast");
    VICREG_CHECK(root >= 0 && root < world_, "broadcast root " + std::to_string(root) + " out of range");
    auto desc = Next("broadcast", t);
    c10::cuda::CUDAGuard guard(dev_);
    auto stream = compat::CurrentCudaStream(dev_);
    Check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), ToNccl(t.scalar_type(), false),
                        root, comm_, stream.stream()),
          desc);
    Watch(desc, stream.stream());
  }

  // Host-blocking: returns when every rank reached the barrier (a 1-element all-reduce completed).
  void Barrier() override {
    c10::cuda::CUDAGuard guard(dev_);
    at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(device()));
    auto desc = Next("barrier", one);
    auto stream = compat::CurrentCudaStream(dev_);
    Check(ncclAllReduce(one.data_ptr(), one.data_ptr(), 1, ncclFloat32, ncclSum, comm_, stream.stream()), desc);
    cudaEvent_t done = NewEvent();
    CheckCuda(cudaEventRecord(done, stream.stream()), desc);
    CollectiveScope scope(desc);
    const auto start = Clock::now();
    while (true) {
      const cudaError_t q = cudaEventQuery(done);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) {
        cudaEventDestroy(done);
        FailAndExit(desc, "CUDA error while waiting: " + CudaText(q));
      }
      if (failed_.load() || Clock::now() - start > opts_.timeout) {
        FailAndExit(desc, "did not complete within " + std::to_string(opts_.timeout.count()) + " ms");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    cudaEventDestroy(done);
    NoteCollectiveDone(desc);
  }

  [[noreturn]] void Abort(int exit_code, const std::string& reason) override {
    const int code = exit_code == 0 ? 1 : exit_code;
    std::fprintf(stderr, "[rank %d/%d] aborting job (exit code %d): %s\n", rank_, world_, code, reason.c_str());
    std::fflush(stderr);
    failed_.store(true);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    if (opts_.abort_hook) opts_.abort_hook(code);
    std::_Exit(code);
  }

  void CheckFailed(const CollectiveDesc& desc) const {
    if (failed_.load()) {
      throw RuntimeFailure(desc.ToString() + " on rank " + std::to_string(rank_) +
                           ": the NCCL communicator was aborted after an earlier failure");
    }
  }

 private:
  cudaEvent_t NewEvent() {
    cudaEvent_t e = nullptr;
    const cudaError_t rc = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    if (rc != cudaSuccess) throw RuntimeFailure("cudaEventCreateWithFlags failed: " + CudaText(rc));
    return e;
  }

  void CheckTensor(const at::Tensor& t, const char* op) const {
    VICREG_CHECK(t.defined(), std::string("nccl ") + op + ": undefined tensor");
    VICREG_CHECK(t.is_cuda() && t.device().index() == dev_,
                 std::string("nccl ") + op + ": tensor on " + t.device().str() + ", expected " + device().str());
    VICREG_CHECK(t.is_contiguous(), std::string("nccl ") + op + ": tensor must be contiguous");
  }

  CollectiveDesc Next(const char* op, const at::Tensor& t) {
    CollectiveDesc d;
    d.backend = "nccl";
    d.op = op;
    d.seq = ++seq_;
    d.bytes = t.defined() ? static_cast<int64_t>(t.numel() * t.element_size()) : 0;
    CheckFailed(d);
    return d;
  }

  void Check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess) {
      throw RuntimeFailure(std::string(what) + " failed on rank " + std::to_string(rank_) +
                           " (cuda:" + std::to_string(static_cast<int>(dev_)) + "): " + NcclText(r));
    }
  }
  void Check(ncclResult_t r, const CollectiveDesc& desc) {
    if (r != ncclSuccess) FailAndExit(desc, "NCCL error at enqueue: " + NcclText(r));
  }
  void CheckCuda(cudaError_t e, const CollectiveDesc& desc) {
    if (e != cudaSuccess) FailAndExit(desc, "CUDA error: " + CudaText(e));
  }

  // Hands the collective just enqueued on `stream` to the watchdog.
  void Watch(const CollectiveDesc& desc, cudaStream_t stream) {
    Pending p;
    p.desc = desc;
    p.done = NewEvent();
    p.enqueued = Clock::now();
    CheckCuda(cudaEventRecord(p.done, stream), desc);
    std::lock_guard<std::mutex> l(mu_);
    pending_.push_back(p);
  }

  void WatchdogLoop() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, opts_.watchdog_period);
      if (stop_ || failed_.load()) break;
      ncclResult_t async_err = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async_err) == ncclSuccess && async_err != ncclSuccess) {
        const CollectiveDesc d =
            pending_.empty() ? CollectiveDesc{"nccl", "(none pending)", seq_.load(), 0} : pending_.front().desc;
        l.unlock();
        FailAndExit(d, "asynchronous NCCL error: " + NcclText(async_err) + " (a peer rank died or the network failed)");
      }
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        const cudaError_t q = cudaEventQuery(p.done);
        if (q == cudaSuccess) {
          NoteCollectiveDone(p.desc);
          cudaEventDestroy(p.done);
          pending_.pop_front();
          continue;
        }
        if (q != cudaErrorNotReady) {
          const CollectiveDesc d = p.desc;
          l.unlock();
          FailAndExit(d, "CUDA error while waiting: " + CudaText(q));
        }
        if (Clock::now() - p.enqueued > opts_.timeout) {
          const CollectiveDesc d = p.desc;
          l.unlock();
          FailAndExit(d, "did not complete within " + std::to_string(opts_.timeout.count()) +
                             " ms (a peer rank is dead, stopped or did not issue this collective; NCCL cannot tell "
                             "which: see the other ranks' logs)");
        }
        break;  // collectives complete in order on a stream: the rest is younger
      }
    }
  }

  [[noreturn]] void FailAndExit(const CollectiveDesc& desc, const std::string& what) {
    std::ostringstream os;
    os << desc.ToString() << " failed on rank " << rank_ << " of " << world_ << " (cuda:" << static_cast<int>(dev_)
       << "): " << what;
    Abort(kExitFailure, os.str());
  }

  friend class NcclWork;
  NcclCommunicatorOptions opts_;
  int rank_;
  int world_;
  c10::DeviceIndex dev_;
  ncclComm_t comm_ = nullptr;
  c10::optional<compat::CudaStream> side_stream_;
  std::atomic<int64_t> seq_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  bool stop_ = false;
  std::thread watchdog_;
};

NcclWork::~NcclWork() {
  if (!waited_) {
    try {
      Wait();
    } catch (...) {
    }
  }
  cudaEventDestroy(done_);
}

void NcclWork::Wait() {
  if (waited_) return;
  waited_ = true;
  comm_->CheckFailed(desc_);
  c10::cuda::CUDAGuard guard(dev_);
  const cudaError_t rc = cudaStreamWaitEvent(compat::CurrentCudaStream(dev_).stream(), done_, 0);
  if (rc != cudaSuccess) throw RuntimeFailure(desc_.ToString() + ": cudaStreamWaitEvent failed: " + CudaText(rc));
}

bool NcclWork::Test() {
  comm_->CheckFailed(desc_);
  return cudaEventQuery(done_) == cudaSuccess;
}

}  // namespace

std::shared_ptr<Communicator> CreateNcclCommunicator(const RankInfo& info, const NcclCommunicatorOptions& opts) {
  return std::make_shared<NcclCommunicator>(info, opts);
}

}  // namespace vicreg::comm
