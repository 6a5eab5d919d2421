#include "worker/model/host_memory.h"

#include <cstdlib>   // defines __GLIBC__ (via <features.h>) where glibc is the C library

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace vicreg::model {

bool RetainFreedHostMemory() {
#if defined(__GLIBC__)
  // No mmap-backed chunks (large blocks come from the heap and stay reusable after free) ...
  const bool a = mallopt(M_MMAP_MAX, 0) == 1;
  // ... and never give the top of the heap back to the OS.
  const bool b = mallopt(M_TRIM_THRESHOLD, -1) == 1;   // -1 = SIZE_MAX: trimming off
  return a && b;
#else
  return false;
#endif
}

}  // namespace vicreg::model
