// Process-wide knobs that decide the data pipeline's CPU throughput (measured in
// vicreg_bench augment; see docs/ARCHITECTURE.md "Data"). Both are idempotent and cheap.
#pragma once

namespace vicreg::data {

// glibc malloc: blocks up to 32 MB come from the heap (M_MMAP_THRESHOLD), freed memory is kept
// for reuse (M_TRIM_THRESHOLD), and all threads share the main arena (M_ARENA_MAX 1; thread
// arenas' heaps are capped at 64 MB), instead of mmap/munmap + page faults on every fresh 28 MB
// view tensor, which doubled the augmentation time (measured: 57 -> 27 ms per view of 256 x 96
// px on one thread; 2x images per CPU-second with two loader threads). Called by the Loader's
// constructor and by vicreg_bench; call it first thing in main() so that no thread arena exists yet.
void TuneMallocForBatches();

// OpenBLAS (Debian's libopenblas0-pthread behind libblas.so.3) threads its own GEMMs and ignores
// at::set_num_threads; the augmentation's many small GEMMs run best single-threaded inside each
// loader thread. Sets openblas_set_num_threads(n) when OpenBLAS is the loaded BLAS; returns false
// (and does nothing) otherwise. Process-wide: the worker decides (threads_per_rank), the loader
// does not call it.
bool SetBlasThreads(int n);

}  // namespace vicreg::data
