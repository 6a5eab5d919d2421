// Host (CPU) allocator policy for the worker processes (vicreg_worker, vicreg_eval, vicreg_bench).
//
// LibTorch's CPU allocator takes tensor memory from glibc malloc. By default glibc serves large
// blocks with fresh mmap()s, gives them back on free, and puts each thread on its own arena whose
// heaps are capped at 64 MB; a training step or a loader thread that allocates the same large
// tensors every iteration then page-faults on all of them (measured: ~10% of a ViT step on 2 cores;
// half the augmentation throughput for 28 MB view batches). TuneHostAllocator() makes glibc serve
// every block from the heap (no mmap'ed chunks), never trim it, and use one shared arena, so freed
// memory is reused by the next step. Peak RSS is unchanged; memory returns to the OS at exit.
#pragma once

namespace vicreg {

// Idempotent. Call first thing in main(), before threads start (the Loader calls it too).
// Returns false where the C library offers no such control (non-glibc): nothing changes then.
bool TuneHostAllocator();

}  // namespace vicreg
