// Durable job store on SQLite (WAL): tables schema_version, jobs, attempts, events, evals,
// eval_rows. One connection guarded by a mutex, prepared statements cached per SQL text,
// every multi-row change in one transaction. Thread-safe.
//
// Durability: WAL with synchronous=NORMAL by default survives a crash of the coordinator
// process without losing a committed change; synchronous=FULL (Options) also survives a
// power loss at the cost of an fsync per commit.
// WAL checkpoints (the only fsyncs with NORMAL) run on a background thread with its own
// connection every checkpoint_interval_s, never inside a request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/job.h"

struct sqlite3;
struct sqlite3_stmt;

namespace vicreg::server {

class JobStore {
 public:
  struct Options {
    std::string path;               // <state_dir>/coordinator.db
    bool synchronous_full = false;  // see the header comment
    int busy_timeout_ms = 5000;
    std::string runs_root;               // a new job's run_dir = <runs_root>/<job id>
    double checkpoint_interval_s = 1.0;  // background WAL checkpoints (0 = SQLite's automatic ones)
    int readers = 4;                     // reader connections
  };
  // 1: initial; 2: attempts' cluster queue state (jobs/attempts), evals' launcher handle.
  static constexpr int kSchemaVersion = 2;

  explicit JobStore(Options options);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  int SchemaVersion();

  // Inserts a new job (id and seq are assigned: "job-%06d" of seq) with its first event.
  // If job.client_request_id is not empty and already used: returns the existing job with
  // duplicate=true when spec_hash matches, throws ServiceError(kAlreadyExists) otherwise.
  struct InsertResult {
    JobRecord job;
    bool duplicate = false;
  };
  InsertResult InsertJob(JobRecord job, EventRecord first_event);

  std::optional<JobRecord> GetJob(const std::string& id, bool with_spec = true);

  struct ListQuery {
    JobState state = JobState::kUnspecified;  // kUnspecified = every state
    int limit = 100;
    int64_t before_seq = 0;  // 0 = start from the newest
  };
  struct ListPage {
    std::vector<JobRecord> jobs;  // newest first, without spec_yaml
    int64_t total = 0;            // jobs matching the filter
    bool more = false;            // older jobs remain
  };
  ListPage ListJobs(const ListQuery& q);

  // Jobs in a non-terminal state, oldest first, with spec.
  std::vector<JobRecord> LoadOpenJobs();
  // CANCELLED jobs that still hold slots (placement not empty: their attempt's processes were
  // being stopped when the coordinator stopped or died), oldest first.
  std::vector<JobRecord> LoadStoppingJobs();
  std::map<JobState, int64_t> CountByState();
  // Retention: removes up to `limit` ended jobs (SUCCEEDED, FAILED, CANCELLED with no placement
  // left) that finished before finished_before_unix, oldest first, with their attempts, events
  // and evaluations, in one transaction. Returns them (id, run_dir) so that the caller can drop
  // what it keeps about them.
  std::vector<JobRecord> PruneFinishedJobs(double finished_before_unix, int limit);

  // Writes the job's mutable columns and, when event is given, appends it (sequence assigned,
  // job.last_sequence updated) in the same transaction. Returns the event's sequence (0 if none).
  int64_t UpdateJob(JobRecord& job, std::optional<EventRecord> event = std::nullopt);
  // Appends an event without touching other job columns.
  int64_t AppendEvent(EventRecord& event);
  std::vector<EventRecord> EventsAfter(const std::string& job_id, int64_t after_sequence, int limit);

  void UpsertAttempt(const AttemptRecord& a);
  std::vector<AttemptRecord> Attempts(const std::string& job_id);
  std::optional<AttemptRecord> GetAttempt(const std::string& job_id, int number);

  // Evaluation tasks (rows are written with the task when given).
  // Inserts the task if (job, epoch, dataset) is new; returns false if it existed.
  bool InsertEvalTask(const EvalTaskRecord& t);
  void UpdateEvalTask(const EvalTaskRecord& t, bool write_rows);
  std::vector<EvalTaskRecord> EvalTasks(const std::string& job_id);  // with rows
  std::optional<EvalTaskRecord> GetEvalTask(const std::string& job_id, int epoch,
                                            const std::string& dataset);  // with rows
  std::vector<EvalTaskRecord> OpenEvalTasks();                            // pending/running, no rows

  // Implementation details (connection, statement wrapper), public only for helpers in store.cc.
  struct Conn;
  class Stmt;

 private:
  class ReaderLock;
  sqlite3* Open(bool read_only);
  void Exec(Conn& c, const char* sql);
  void Migrate();
  void MigrateTo1(Conn& c);
  void MigrateTo2(Conn& c);
  void WriteJobLocked(Conn& c, const JobRecord& job);
  int64_t AppendEventLocked(Conn& c, EventRecord& event);
  std::vector<EvalRowRecord> EvalRowsLocked(Conn& c, const std::string& job_id, int epoch, const std::string& dataset);

  void CheckpointLoop();

  Options options_;
  std::unique_ptr<Conn> writer_;
  std::vector<std::unique_ptr<Conn>> readers_;
  std::atomic<unsigned> next_reader_{0};
  // Background checkpointer.
  sqlite3* ckpt_db_ = nullptr;
  std::thread ckpt_thread_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_stop_ = false;
};

}  // namespace vicreg::server
