#include "common/host_memory.h"

#include <cstdlib>  // defines __GLIBC__ (via <features.h>) where glibc is the C library
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace vicreg {

bool TuneHostAllocator() {
#if defined(__GLIBC__)
  static bool ok = false;
  static std::once_flag once;
  std::call_once(once, [] {
    const bool no_mmap = mallopt(M_MMAP_MAX, 0) == 1;         // large blocks from the heap, reusable
    const bool no_trim = mallopt(M_TRIM_THRESHOLD, -1) == 1;  // -1 = SIZE_MAX: never give the top back
    const bool one_arena = mallopt(M_ARENA_MAX, 1) == 1;      // no 64 MB-capped thread arenas
    ok = no_mmap && no_trim && one_arena;
  });
  return ok;
#else
  return false;
#endif
}

}  // namespace vicreg
