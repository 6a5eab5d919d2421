// Host (CPU) allocator policy for training processes.
//
// LibTorch's CPU allocator takes tensor memory from glibc malloc. By default glibc serves blocks of
// 128 KiB .. 32 MiB and up with fresh mmap()s and gives them back with munmap()/trim on free, so a
// training step that allocates the same activation/gradient tensors every iteration page-faults on
// every one of them (measured: page faults + zeroing were ~10% of a ViT step on this 2-core box).
// RetainFreedHostMemory() tells glibc to serve large blocks from the heap and never trim it, so
// freed tensor memory is reused by the next step. Peak RSS stays the same (the process still frees
// into its own heap); memory is just not returned to the OS until exit.
#pragma once

namespace vicreg::model {

// Call once at process start, before large allocations (vicreg_worker, vicreg_bench).
// Returns false where the C library offers no such control (non-glibc): nothing changes then.
bool RetainFreedHostMemory();

}  // namespace vicreg::model
