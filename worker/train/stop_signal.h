// Graceful stop on SIGTERM / SIGINT: the first signal sets a flag that the Trainer polls after every
// step (all ranks agree on it through the per-step flag all-reduce), so the run finishes the current
// step, writes a checkpoint and exits with status "failed", reason "terminated by SIGTERM" (resumable
// with --resume auto). A second signal of either kind exits immediately (status 128 + signo).
// Call it early in main(), before other threads start: it blocks SIGTERM/SIGINT in the calling thread
// (inherited by the threads it creates) and takes them on a dedicated signal thread.
#pragma once

namespace vicreg::train {

void InstallStopHandlers();
// 0 = no stop requested, else the signal number received first.
int StopSignal();
// For tests / programmatic stops.
void RequestStop(int signo);
void ResetStop();

}  // namespace vicreg::train
