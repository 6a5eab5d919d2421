// vicreg_eval: see worker/eval/commands.h.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/host_memory.h"
#include "worker/eval/commands.h"

int main(int argc, char** argv) {
  // vicreg_eval uses every core for ATen ops (--threads 0) while OpenBLAS runs its own threads
  // for the GEMMs. With libgomp's default (active, spinning) wait policy the idle OpenMP workers
  // spin on the cores OpenBLAS needs: measured 2x slower probes/extraction at 2 threads on a
  // 2-core machine (vicreg_bench eval). libgomp reads OMP_WAIT_POLICY once, when it is loaded,
  // so the process re-executes itself once with the passive policy unless the user chose one.
  // (Not for --version / --help, which run no ATen op: loading LibTorch twice costs a second.)
  const bool info_only = argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "--help") ||
                                       !strcmp(argv[1], "-h"));
  if (!info_only && getenv("OMP_WAIT_POLICY") == nullptr && setenv("OMP_WAIT_POLICY", "passive", 1) == 0) {
    execv("/proc/self/exe", argv);  // returns only on failure: then continue with the default policy
  }
  vicreg::TuneHostAllocator();  // reuse freed batch/feature memory (common/host_memory.h)
  return vicreg::eval::EvalMain(argc, argv);
}
