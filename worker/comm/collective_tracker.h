// Process-wide record of the collective this rank is waiting in, readable from a signal handler.
//
// Backends open a CollectiveScope around every blocking wait. When the launcher kills the job
// (mpirun sends SIGTERM to the survivors after a peer died; scancel; Ctrl-C), the termination
// reporter prints which collective this rank was stuck in before the process dies, so the job's
// log names the collective even though the rank never got to time out itself.
#pragma once

#include <cstdint>
#include <string>

namespace vicreg::comm {

// Describes one collective call: "mpi allreduce #57 (16384 bytes)".
struct CollectiveDesc {
  const char* backend = "";  // static strings only (read from the signal handler)
  const char* op = "";
  int64_t seq = 0;  // per-communicator sequence number, the same on every rank
  int64_t bytes = 0;
  std::string ToString() const;
};

// RAII: marks this process as waiting in `d` (nesting is not expected; the innermost wins).
class CollectiveScope {
 public:
  explicit CollectiveScope(const CollectiveDesc& d);
  ~CollectiveScope();
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;
};

// Records the last collective that completed (for "not in a collective; last completed ...").
void NoteCollectiveDone(const CollectiveDesc& d);

// Installs handlers for SIGTERM, SIGINT and SIGHUP that write one line
//   "[rank R/W] terminated by signal 15 while waiting 2.31 s in collective mpi allreduce #57 (16384 bytes)"
// to stderr, then re-raise the signal with its default action. A handler installed earlier (e.g.
// the trainer's graceful stop) is chained to: the line ("received signal ...") is then written
// only when the rank has been waiting in a collective for >= 0.5 s, i.e. a peer is probably gone
// and the graceful stop cannot complete. Ignored signals stay ignored. A handler installed later
// replaces this one. Idempotent.
void InstallTerminationReporter(int rank, int world_size);

}  // namespace vicreg::comm
