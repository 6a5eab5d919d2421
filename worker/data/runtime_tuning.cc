#include "worker/data/runtime_tuning.h"

#include <dlfcn.h>

namespace vicreg::data {

bool SetBlasThreads(int n) {
  using SetFn = void (*)(int);
  // Looked up at run time: the BLAS is whatever libblas.so.3 the alternatives system points at.
  auto fn = reinterpret_cast<SetFn>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!fn || n < 1) return false;
  fn(n);
  return true;
}

}  // namespace vicreg::data
