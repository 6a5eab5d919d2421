// The one place for differences between the LibTorch versions we build against:
// Debian's LibTorch 1.13 (CPU, this CI) and PyTorch 2.x wheels (CUDA machines, tested with 2.11).
//
// The base section is tiny (version macros only). Heavier sections are opt-in so that a file
// pays only for what it uses; define the macro, then include this header:
//   #define VICREG_COMPAT_C10D   c10d stores / ProcessGroupGloo / Work   (needs USE_C10D_GLOO)
//   #define VICREG_COMPAT_CUDA   CUDA streams and the caching allocator  (needs the CUDA headers)
//   #define VICREG_COMPAT_AUTOCAST   autocast enable/dtype per device type
//   #define VICREG_COMPAT_SDPA       fused scaled_dot_product_attention (>= 2.0) or none
//   #define VICREG_COMPAT_OPTIM      optimizer state keys (TensorImpl* in 1.13, void* from 2.2)
//   #define VICREG_COMPAT_DEVICES    CUDA device count
//   #define VICREG_COMPAT_ARCHIVE    LibTorch's unpickler for a torch.save archive (zip)
// Each section has its own guard, so including the header again with another macro works.
//
// Differences handled (1.13 -> 2.x):
//   * c10d: ProcessGroupGloo derives from ProcessGroup (1.13) / c10d::Backend (2.x); the Work type
//     is c10d::Work in both (1.13 also spells it ProcessGroup::Work). createDeviceForHostname got a
//     defaulted `lazyInit` flag (2.6+). Failures throw c10::Error (1.13) / c10::DistBackendError, a
//     c10::Error subclass (2.x): catch c10::Error. TCPStoreOptions::numWorkers is c10::optional
//     (1.13) / std::optional (2.x). `_allgather_base` is unsupported by Gloo in 1.13: use allgather.
//   * CUDA: c10::cuda::getStreamFromPool gained an (int priority) overload in 2.x, so a bare 0 is
//     ambiguous: pass a bool. The width of c10::DeviceIndex changed during 2.x: always
//     static_cast to c10::DeviceIndex. Storage::data_ptr() returns DataPtr& (1.13) /
//     const DataPtr& (2.x); recordStream takes const DataPtr& in both.
//   * c10::optional is an alias of std::optional from 2.3; never rely on either being the other.
//   * The Unpickler's optionals (device) are std::optional in 2.x: pass {} for "none".
#ifndef VICREG_TORCH_COMPAT_BASE
#define VICREG_TORCH_COMPAT_BASE

#include <torch/version.h>

// VICREG_TORCH_AT_LEAST(2, 1): compile-time LibTorch version check.
#define VICREG_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace vicreg::compat {
constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
constexpr int kTorchMinor = TORCH_VERSION_MINOR;
}  // namespace vicreg::compat

#endif  // VICREG_TORCH_COMPAT_BASE

// ---- c10d (ProcessGroupGloo, stores) ----------------------------------------------------------
#if defined(VICREG_COMPAT_C10D) && !defined(VICREG_TORCH_COMPAT_C10D)
#define VICREG_TORCH_COMPAT_C10D

#include <chrono>
#include <string>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace vicreg::compat {

using C10dWork = ::c10d::Work;  // c10::intrusive_ptr<C10dWork> from every collective
using GlooGroup = ::c10d::ProcessGroupGloo;

// A Gloo TCP device bound to `host` (an address of this machine, e.g. 127.0.0.1).
inline std::shared_ptr<::gloo::transport::Device> GlooDeviceForHost(const std::string& host) {
  return GlooGroup::createDeviceForHostname(host);  // 2.6+: lazyInit defaults to false
}

inline c10::intrusive_ptr<GlooGroup::Options> GlooOptions(std::chrono::milliseconds timeout, int threads) {
  auto o = GlooGroup::Options::create(timeout);
  o->threads = threads;
  return o;
}

// TCPStore: `is_server` binds the port on every interface in 1.13 (0.0.0.0); only used when the
// launcher configured MASTER_ADDR/MASTER_PORT explicitly.
inline c10::intrusive_ptr<::c10d::Store> MakeTcpStore(const std::string& host, int port, bool is_server, int world_size,
                                                      std::chrono::milliseconds timeout) {
  ::c10d::TCPStoreOptions o;
  o.port = static_cast<decltype(o.port)>(port);
  o.isServer = is_server;
  o.numWorkers = static_cast<size_t>(world_size);
  o.timeout = timeout;
  return c10::make_intrusive<::c10d::TCPStore>(host, o);
}

}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_C10D

// ---- CUDA streams / caching allocator ------------------------------------------------------
#if defined(VICREG_COMPAT_CUDA) && !defined(VICREG_TORCH_COMPAT_CUDA)
#define VICREG_TORCH_COMPAT_CUDA

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace vicreg::compat {

using CudaStream = ::c10::cuda::CUDAStream;

inline CudaStream CurrentCudaStream(c10::DeviceIndex device) { return ::c10::cuda::getCurrentCUDAStream(device); }

// A stream from LibTorch's pool (normal priority). The bool literal picks the same overload in
// 1.13 and 2.x (2.x added getStreamFromPool(int priority, ...)).
inline CudaStream PoolCudaStream(c10::DeviceIndex device) {
  return ::c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device);
}

// Tells the caching allocator that `t`'s memory is in use on `stream` (a side stream), so it is
// not reused before the work queued there finishes.
inline void RecordStream(const at::Tensor& t, const CudaStream& stream) {
  ::c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream);
}

// The caching allocator's bytes on `device`, aggregate pool: held by tensors now, their peak since
// the process started, reserved from the driver. 1.13 returns c10::cuda::CUDACachingAllocator's own
// DeviceStats from getDeviceStats(int), 2.x c10::CachingDeviceAllocator::DeviceStats from
// getDeviceStats(DeviceIndex); in both, index 0 of a StatArray is StatType::AGGREGATE.
struct CudaAllocatorBytes {
  int64_t allocated = 0, max_allocated = 0, reserved = 0;
};
inline CudaAllocatorBytes CudaAllocatorStats(c10::DeviceIndex device) {
  const auto stats = ::c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  constexpr size_t kAggregate = 0;
  return {stats.allocated_bytes[kAggregate].current, stats.allocated_bytes[kAggregate].peak,
          stats.reserved_bytes[kAggregate].current};
}

}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_CUDA

// ---- autocast (CUDA) -------------------------------------------------------------------------
// 2.4 made the autocast state per device type (set_autocast_enabled(kCUDA, on), ...); 1.13 has
// CUDA-specific free functions (set_enabled, get_autocast_gpu_dtype, ...).
#if defined(VICREG_COMPAT_AUTOCAST) && !defined(VICREG_TORCH_COMPAT_AUTOCAST)
#define VICREG_TORCH_COMPAT_AUTOCAST

#include <ATen/autocast_mode.h>

namespace vicreg::compat {
#if VICREG_TORCH_AT_LEAST(2, 4)
inline bool CudaAutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
inline void SetCudaAutocast(bool on) { at::autocast::set_autocast_enabled(at::kCUDA, on); }
inline at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
inline void SetCudaAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_dtype(at::kCUDA, t); }
#else
inline bool CudaAutocastEnabled() { return at::autocast::is_enabled(); }
inline void SetCudaAutocast(bool on) { at::autocast::set_enabled(on); }
inline at::ScalarType CudaAutocastDtype() { return at::autocast::get_autocast_gpu_dtype(); }
inline void SetCudaAutocastDtype(at::ScalarType t) { at::autocast::set_autocast_gpu_dtype(t); }
#endif
}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_AUTOCAST

// ---- fused attention ---------------------------------------------------------------------------
// at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA) exists from 2.0;
// with 1.13 callers use their composite path. Default scale = head_dim^-0.5 (timm's).
#if defined(VICREG_COMPAT_SDPA) && !defined(VICREG_TORCH_COMPAT_SDPA)
#define VICREG_TORCH_COMPAT_SDPA

#include <ATen/ATen.h>

namespace vicreg::compat {
#if VICREG_TORCH_AT_LEAST(2, 0)
constexpr bool kHaveSdpa = true;
// q: [B, H, Nq, hd], k/v: [B, H, N, hd] -> [B, H, Nq, hd]
inline at::Tensor Sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::scaled_dot_product_attention(q, k, v);
}
#else
constexpr bool kHaveSdpa = false;
inline at::Tensor Sdpa(const at::Tensor&, const at::Tensor&, const at::Tensor&) { return at::Tensor(); }
#endif
}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_SDPA

// ---- torch::optim state keys -------------------------------------------------------------------
// Optimizer::state_ is keyed by the parameter's TensorImpl: as its decimal string
// (c10::guts::to_string) up to 2.1, as the void* itself from 2.2 (pytorch#108480).
#if defined(VICREG_COMPAT_OPTIM) && !defined(VICREG_TORCH_COMPAT_OPTIM)
#define VICREG_TORCH_COMPAT_OPTIM

#include <ATen/core/Tensor.h>

#include <string>
#if !VICREG_TORCH_AT_LEAST(2, 2)
#include <c10/util/string_utils.h>
#endif

namespace vicreg::compat {
#if VICREG_TORCH_AT_LEAST(2, 2)
using OptimStateKey = void*;
inline OptimStateKey OptimKey(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }
#else
using OptimStateKey = std::string;
inline OptimStateKey OptimKey(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }
#endif
}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_OPTIM

// ---- device count ------------------------------------------------------------------------------
// torch::cuda::device_count() exists in every version (CUDAHooks::getNumGPUs is deprecated in 2.x);
// 0 in a CPU-only LibTorch.
#if defined(VICREG_COMPAT_DEVICES) && !defined(VICREG_TORCH_COMPAT_DEVICES)
#define VICREG_TORCH_COMPAT_DEVICES
#include <torch/cuda.h>
namespace vicreg::compat {
inline int64_t CudaDeviceCount() { return static_cast<int64_t>(torch::cuda::device_count()); }
}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_DEVICES

// ---- torch.save archives -------------------------------------------------------------------------
// LibTorch's unpickler over a pickle `read` callback and a `read_record` callback for the tensor
// storages, as torch::jit::readArchiveAndTensors builds it for pickle_load (the caller opens the
// archive and chooses the records). The constructor has the same parameters in 1.13 and 2.x; its
// device is c10::optional (1.13) / std::optional (2.x): passed as {}.
#if defined(VICREG_COMPAT_ARCHIVE) && !defined(VICREG_TORCH_COMPAT_ARCHIVE)
#define VICREG_TORCH_COMPAT_ARCHIVE
#include <torch/csrc/jit/serialization/unpickler.h>

#include <functional>
namespace vicreg::compat {
inline c10::IValue Unpickle(std::function<size_t(char*, size_t)> read,
                            std::function<at::DataPtr(const std::string&)> read_record, uint64_t version) {
  torch::jit::Unpickler unpickler(std::move(read), /*type_resolver=*/nullptr, /*obj_loader=*/nullptr,
                                  std::move(read_record), /*device=*/{});
  unpickler.set_version(version);
  return unpickler.parse_ivalue();
}
}  // namespace vicreg::compat
#endif  // VICREG_COMPAT_ARCHIVE
