#include "worker/data/runtime_tuning.h"

#include <dlfcn.h>
#include <malloc.h>

#include <mutex>

namespace vicreg::data {

void TuneMallocForBatches() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
    // One arena: a thread arena's heaps are capped at 64 MB, so 28 MB view tensors made loader
    // threads map and drop whole heaps per batch (measured: 17k page faults per batch and thread,
    // half the throughput). Tensors are few and large, so the shared arena's lock is cheap.
    mallopt(M_ARENA_MAX, 1);
  });
}

bool SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  // Looked up at run time: the BLAS is whatever libblas.so.3 the alternatives system points at.
  auto fn = reinterpret_cast<SetFn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!fn || n < 1) return false;
  fn(n);
  return true;
}

}  // namespace vicreg::data
