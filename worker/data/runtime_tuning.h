// Process-wide knobs that decide the data pipeline's CPU throughput (measured in
// vicreg_bench augment; see docs/ARCHITECTURE.md "Data"). Both are idempotent and cheap.
#pragma once

namespace vicreg::data {

// OpenBLAS (Debian's libopenblas0-pthread behind libblas.so.3) threads its own GEMMs and ignores
// at::set_num_threads; the augmentation's many small GEMMs run best single-threaded inside each
// loader thread. Sets openblas_set_num_threads(n) when OpenBLAS is the loaded BLAS; returns false
// (and does nothing) otherwise. Process-wide: the worker decides (threads_per_rank), the loader
// does not call it.
bool SetBlasThreads(int n);

}  // namespace vicreg::data
