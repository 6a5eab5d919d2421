#include "server/store.h"

#include <sqlite3.h>

#include <cstdio>
#include <stdexcept>

#include "server/service_error.h"

namespace vicreg::server {
namespace {

[[noreturn]] void Fail(sqlite3* db, const std::string& what) {
  throw ServiceError(ErrorCode::kInternal, "job store: " + what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

// Column count of the job SELECTs below; spec_yaml is read as column kJobColumnCount when requested.
constexpr int kJobColumnCount = 34;

}  // namespace

// One SQLite connection with its statement cache; used under its mutex.
struct JobStore::Conn {
  sqlite3* db = nullptr;
  std::mutex mu;
  std::map<const char*, sqlite3_stmt*> stmts;
  ~Conn() {
    for (auto& [sql, s] : stmts) sqlite3_finalize(s);
    if (db) sqlite3_close(db);
  }
  sqlite3_stmt* Prepare(const char* sql) {
    auto it = stmts.find(sql);
    if (it != stmts.end()) return it->second;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      Fail(db, std::string("prepare '") + sql + "'");
    stmts[sql] = s;
    return s;
  }
};

// Binds/reads with 1-based bind indexes and 0-based column indexes; resets on destruction.
class JobStore::Stmt {
 public:
  Stmt(Conn& c, const char* sql) : db_(c.db), s_(c.Prepare(sql)) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v) {
    Check(sqlite3_bind_double(s_, i, v));
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    Check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& BindNull(int i) {
    Check(sqlite3_bind_null(s_, i));
    return *this;
  }
  // True while a row is available.
  bool Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Fail(db_, std::string("step '") + sqlite3_sql(s_) + "'");
  }
  void Run() {
    while (Step()) {
    }
  }
  int64_t Int(int c) const { return sqlite3_column_int64(s_, c); }
  double Real(int c) const { return sqlite3_column_double(s_, c); }
  std::string Text(int c) const {
    const unsigned char* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c)) : std::string();
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK) Fail(db_, "bind");
  }
  sqlite3* db_;
  sqlite3_stmt* s_;
};

namespace {

// RAII transaction on the store's connection (caller holds the mutex).
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) { Exec("BEGIN IMMEDIATE"); }
  ~Txn() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void Commit() {
    Exec("COMMIT");
    done_ = true;
  }

 private:
  void Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw ServiceError(ErrorCode::kInternal, std::string("job store: ") + sql + ": " + msg);
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

JobRecord ReadJob(const JobStore::Stmt& s, bool with_spec);

}  // namespace

// Locks one of the reader connections for the duration of a read.
class JobStore::ReaderLock {
 public:
  explicit ReaderLock(JobStore* store) {
    const size_t n = store->readers_.size();
    const unsigned start = store->next_reader_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < n; ++i) {  // a free one if there is one ...
      Conn& c = *store->readers_[(start + i) % n];
      std::unique_lock<std::mutex> l(c.mu, std::try_to_lock);
      if (l.owns_lock()) {
        conn_ = &c;
        lock_ = std::move(l);
        return;
      }
    }
    conn_ = store->readers_[start % n].get();  // ... else wait for one
    lock_ = std::unique_lock<std::mutex>(conn_->mu);
  }
  Conn& conn() { return *conn_; }

 private:
  Conn* conn_ = nullptr;
  std::unique_lock<std::mutex> lock_;
};

sqlite3* JobStore::Open(bool read_only) {
  sqlite3* db = nullptr;
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options_.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw ServiceError(ErrorCode::kInternal, "job store: cannot open " + options_.path + ": " + msg);
  }
  sqlite3_busy_timeout(db, options_.busy_timeout_ms);
  return db;
}

JobStore::JobStore(Options options) : options_(std::move(options)) {
  writer_ = std::make_unique<Conn>();
  writer_->db = Open(false);
  Exec(*writer_, "PRAGMA journal_mode=WAL");
  Exec(*writer_, options_.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  Exec(*writer_, "PRAGMA foreign_keys=ON");
  Migrate();
  for (int i = 0; i < std::max(1, options_.readers); ++i) {
    auto c = std::make_unique<Conn>();
    c->db = Open(true);
    readers_.push_back(std::move(c));
  }
  if (options_.checkpoint_interval_s > 0) {
    Exec(*writer_, "PRAGMA wal_autocheckpoint=0");
    ckpt_db_ = Open(false);
    ckpt_thread_ = std::thread([this] { CheckpointLoop(); });
  }
}

JobStore::~JobStore() {
  if (ckpt_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    ckpt_thread_.join();
  }
  readers_.clear();
  if (ckpt_db_) {
    sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    sqlite3_close(ckpt_db_);
  }
}

void JobStore::CheckpointLoop() {
  std::unique_lock<std::mutex> lock(ckpt_mu_);
  while (!ckpt_stop_) {
    ckpt_cv_.wait_for(lock, std::chrono::duration<double>(options_.checkpoint_interval_s), [&] { return ckpt_stop_; });
    if (ckpt_stop_) break;
    lock.unlock();
    // PASSIVE: copies what it can without waiting for readers or writers (they keep going).
    sqlite3_wal_checkpoint_v2(ckpt_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
  }
}

void JobStore::Exec(Conn& c, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(c.db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw ServiceError(ErrorCode::kInternal, "job store " + options_.path + ": " + msg);
  }
}

void JobStore::Migrate() {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Exec(c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  int version = 0;
  {
    Stmt s(c, "SELECT MAX(version) FROM schema_version");
    if (s.Step()) version = static_cast<int>(s.Int(0));
  }
  if (version > kSchemaVersion) {
    throw ServiceError(ErrorCode::kInternal, "job store " + options_.path + " has schema version " +
                                                 std::to_string(version) + ", newer than this coordinator's " +
                                                 std::to_string(kSchemaVersion) +
                                                 ": use a newer vicreg_coordinator or another --state-dir");
  }
  if (version == kSchemaVersion) return;
  Txn t(c.db);
  if (version < 1) MigrateTo1(c);
  if (version < 2) MigrateTo2(c);
  t.Commit();
}

void JobStore::MigrateTo2(Conn& c) {
  // Version 2: where each attempt is in the cluster (queue state and reason, queued/running times)
  // and the current attempt of an evaluation (launcher handle), so that both are re-adopted.
  Exec(c, R"sql(
    ALTER TABLE jobs ADD COLUMN a_phase INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN q_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN q_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN q_since REAL NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN phase INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN q_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE attempts ADD COLUMN q_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE attempts ADD COLUMN queued REAL NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN running REAL NOT NULL DEFAULT 0;
    ALTER TABLE evals ADD COLUMN launcher TEXT NOT NULL DEFAULT '';
    ALTER TABLE evals ADD COLUMN handle TEXT NOT NULL DEFAULT '';
    ALTER TABLE evals ADD COLUMN started REAL NOT NULL DEFAULT 0;
    ALTER TABLE evals ADD COLUMN running REAL NOT NULL DEFAULT 0;
    INSERT INTO schema_version(version) VALUES (2);
  )sql");
}

void JobStore::MigrateTo1(Conn& c) {
  // Version 1: the initial schema.
  Exec(c, R"sql(
    CREATE TABLE jobs (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      name TEXT NOT NULL,
      state INTEGER NOT NULL,
      priority INTEGER NOT NULL,
      ranks INTEGER NOT NULL,
      device TEXT NOT NULL,
      attempt INTEGER NOT NULL DEFAULT 0,
      restarts INTEGER NOT NULL DEFAULT 0,
      max_restarts INTEGER NOT NULL,
      created REAL NOT NULL,
      started REAL NOT NULL DEFAULT 0,
      finished REAL NOT NULL DEFAULT 0,
      pending_reason TEXT NOT NULL DEFAULT '',
      last_error TEXT NOT NULL DEFAULT '',
      result_reason TEXT NOT NULL DEFAULT '',
      p_step INTEGER NOT NULL DEFAULT 0,
      p_total INTEGER NOT NULL DEFAULT 0,
      p_epoch INTEGER NOT NULL DEFAULT 0,
      p_num_epochs INTEGER NOT NULL DEFAULT 0,
      p_loss REAL NOT NULL DEFAULT 0,
      p_ips REAL NOT NULL DEFAULT 0,
      p_rate REAL NOT NULL DEFAULT 0,
      p_eta REAL NOT NULL DEFAULT 0,
      p_updated REAL NOT NULL DEFAULT 0,
      run_dir TEXT NOT NULL,
      placement TEXT NOT NULL DEFAULT '',
      client_request_id TEXT,
      spec_hash TEXT NOT NULL,
      last_sequence INTEGER NOT NULL DEFAULT 0,
      spec_yaml TEXT NOT NULL
    );
    CREATE UNIQUE INDEX jobs_client_request_id ON jobs(client_request_id) WHERE client_request_id IS NOT NULL;
    CREATE INDEX jobs_state_seq ON jobs(state, seq);
    CREATE TABLE attempts (
      job_id TEXT NOT NULL REFERENCES jobs(id),
      number INTEGER NOT NULL,
      placement TEXT NOT NULL,
      launcher TEXT NOT NULL,
      handle TEXT NOT NULL,
      started REAL NOT NULL,
      ended REAL NOT NULL DEFAULT 0,
      exit_code INTEGER NOT NULL DEFAULT -1,
      cause TEXT NOT NULL DEFAULT '',
      restart_reason TEXT NOT NULL DEFAULT '',
      start_step INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (job_id, number)
    ) WITHOUT ROWID;
    CREATE TABLE events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      job_id TEXT NOT NULL REFERENCES jobs(id),
      time REAL NOT NULL,
      kind INTEGER NOT NULL,
      state INTEGER NOT NULL,
      message TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      p_step INTEGER NOT NULL, p_total INTEGER NOT NULL, p_epoch INTEGER NOT NULL,
      p_num_epochs INTEGER NOT NULL, p_loss REAL NOT NULL, p_ips REAL NOT NULL,
      p_rate REAL NOT NULL, p_eta REAL NOT NULL, p_updated REAL NOT NULL
    );
    CREATE INDEX events_job_seq ON events(job_id, seq);
    CREATE TABLE evals (
      job_id TEXT NOT NULL REFERENCES jobs(id),
      epoch INTEGER NOT NULL,
      dataset TEXT NOT NULL,
      data_dir TEXT NOT NULL,
      state INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      error TEXT NOT NULL DEFAULT '',
      updated REAL NOT NULL,
      next_try REAL NOT NULL DEFAULT 0,
      output_path TEXT NOT NULL,
      PRIMARY KEY (job_id, epoch, dataset)
    ) WITHOUT ROWID;
    CREATE INDEX evals_state ON evals(state);
    CREATE TABLE eval_rows (
      job_id TEXT NOT NULL,
      epoch INTEGER NOT NULL,
      dataset TEXT NOT NULL,
      probe TEXT NOT NULL,
      model TEXT NOT NULL,
      top1 REAL NOT NULL,
      top5 REAL NOT NULL,
      PRIMARY KEY (job_id, epoch, dataset, probe, model),
      FOREIGN KEY (job_id, epoch, dataset) REFERENCES evals(job_id, epoch, dataset)
    ) WITHOUT ROWID;
    INSERT INTO schema_version(version) VALUES (1);
  )sql");
}

int JobStore::SchemaVersion() {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  Stmt s(c, "SELECT MAX(version) FROM schema_version");
  return s.Step() ? static_cast<int>(s.Int(0)) : 0;
}

namespace {

JobRecord ReadJob(const JobStore::Stmt& s, bool with_spec) {
  JobRecord j;
  j.seq = s.Int(0);
  j.id = s.Text(1);
  j.name = s.Text(2);
  j.state = static_cast<JobState>(s.Int(3));
  j.priority = static_cast<int>(s.Int(4));
  j.ranks = static_cast<int>(s.Int(5));
  j.device = s.Text(6);
  j.attempt = static_cast<int>(s.Int(7));
  j.restarts = static_cast<int>(s.Int(8));
  j.max_restarts = static_cast<int>(s.Int(9));
  j.created_unix = s.Real(10);
  j.started_unix = s.Real(11);
  j.finished_unix = s.Real(12);
  j.pending_reason = s.Text(13);
  j.last_error = s.Text(14);
  j.result_reason = s.Text(15);
  j.progress.step = s.Int(16);
  j.progress.total_steps = s.Int(17);
  j.progress.epoch = s.Int(18);
  j.progress.num_epochs = s.Int(19);
  j.progress.loss = s.Real(20);
  j.progress.images_per_s = s.Real(21);
  j.progress.steps_per_s = s.Real(22);
  j.progress.eta_seconds = s.Real(23);
  j.progress.updated_unix = s.Real(24);
  j.run_dir = s.Text(25);
  j.placement = s.Text(26);
  j.client_request_id = s.Text(27);
  j.spec_hash = s.Text(28);
  j.last_sequence = s.Int(29);
  j.attempt_phase = static_cast<AttemptPhase>(s.Int(30));
  j.queue_state = s.Text(31);
  j.queue_reason = s.Text(32);
  j.queued_since_unix = s.Real(33);
  if (with_spec) j.spec_yaml = s.Text(kJobColumnCount);
  return j;
}

EventRecord ReadEvent(const JobStore::Stmt& s) {
  EventRecord e;
  e.sequence = s.Int(0);
  e.job_id = s.Text(1);
  e.time_unix = s.Real(2);
  e.kind = static_cast<EventKind>(s.Int(3));
  e.state = static_cast<JobState>(s.Int(4));
  e.message = s.Text(5);
  e.attempt = static_cast<int>(s.Int(6));
  e.progress.step = s.Int(7);
  e.progress.total_steps = s.Int(8);
  e.progress.epoch = s.Int(9);
  e.progress.num_epochs = s.Int(10);
  e.progress.loss = s.Real(11);
  e.progress.images_per_s = s.Real(12);
  e.progress.steps_per_s = s.Real(13);
  e.progress.eta_seconds = s.Real(14);
  e.progress.updated_unix = s.Real(15);
  return e;
}

#define VICREG_JOB_SELECT(where)                                                                              \
  "SELECT seq, id, name, state, priority, ranks, device, attempt, restarts, max_restarts, created, started, " \
  "finished, pending_reason, last_error, result_reason, p_step, p_total, p_epoch, p_num_epochs, p_loss, "     \
  "p_ips, p_rate, p_eta, p_updated, run_dir, placement, client_request_id, spec_hash, last_sequence, "        \
  "a_phase, q_state, q_reason, q_since, spec_yaml FROM jobs " where

#define VICREG_JOB_SELECT_NOSPEC(where)                                                                       \
  "SELECT seq, id, name, state, priority, ranks, device, attempt, restarts, max_restarts, created, started, " \
  "finished, pending_reason, last_error, result_reason, p_step, p_total, p_epoch, p_num_epochs, p_loss, "     \
  "p_ips, p_rate, p_eta, p_updated, run_dir, placement, client_request_id, spec_hash, last_sequence, "        \
  "a_phase, q_state, q_reason, q_since FROM jobs " where

}  // namespace

JobStore::InsertResult JobStore::InsertJob(JobRecord job, EventRecord first_event) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Txn t(c.db);
  if (!job.client_request_id.empty()) {
    Stmt s(c, VICREG_JOB_SELECT("WHERE client_request_id = ?1"));
    s.Bind(1, job.client_request_id);
    if (s.Step()) {
      JobRecord existing = ReadJob(s, true);
      if (existing.spec_hash != job.spec_hash) {
        throw ServiceError(ErrorCode::kAlreadyExists, "client_request_id '" + job.client_request_id +
                                                          "' was already used by job " + existing.id +
                                                          " with a different job spec; use a new client_request_id");
      }
      return {existing, true};
    }
  }
  int64_t seq = 1;
  {
    Stmt s(c, "SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs");
    if (s.Step()) seq = s.Int(0);
  }
  char id[32];
  std::snprintf(id, sizeof(id), "job-%06lld", static_cast<long long>(seq));
  job.seq = seq;
  job.id = id;
  job.run_dir = options_.runs_root + "/" + job.id;
  {
    Stmt s(c,
           "INSERT INTO jobs (seq, id, name, state, priority, ranks, device, max_restarts, created, "
           "pending_reason, run_dir, client_request_id, spec_hash, spec_yaml) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
    s.Bind(1, job.seq).Bind(2, job.id).Bind(3, job.name).Bind(4, static_cast<int>(job.state));
    s.Bind(5, job.priority).Bind(6, job.ranks).Bind(7, job.device).Bind(8, job.max_restarts);
    s.Bind(9, job.created_unix).Bind(10, job.pending_reason).Bind(11, job.run_dir);
    if (job.client_request_id.empty()) {
      s.BindNull(12);
    } else {
      s.Bind(12, job.client_request_id);
    }
    s.Bind(13, job.spec_hash).Bind(14, job.spec_yaml);
    s.Run();
  }
  first_event.job_id = job.id;
  job.last_sequence = AppendEventLocked(c, first_event);
  t.Commit();
  return {job, false};
}

std::optional<JobRecord> JobStore::GetJob(const std::string& id, bool with_spec) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  if (with_spec) {
    Stmt s(c, VICREG_JOB_SELECT("WHERE id = ?1"));
    s.Bind(1, id);
    if (s.Step()) return ReadJob(s, true);
  } else {
    Stmt s(c, VICREG_JOB_SELECT_NOSPEC("WHERE id = ?1"));
    s.Bind(1, id);
    if (s.Step()) return ReadJob(s, false);
  }
  return std::nullopt;
}

JobStore::ListPage JobStore::ListJobs(const ListQuery& q) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  ListPage page;
  const int64_t before = q.before_seq > 0 ? q.before_seq : INT64_MAX;
  const int limit = q.limit > 0 ? q.limit : 100;
  auto collect = [&](Stmt& s) {
    while (s.Step()) {
      if (static_cast<int>(page.jobs.size()) == limit) {
        page.more = true;
        break;
      }
      page.jobs.push_back(ReadJob(s, false));
    }
  };
  if (q.state == JobState::kUnspecified) {
    {
      Stmt s(c, VICREG_JOB_SELECT_NOSPEC("WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"));
      s.Bind(1, before).Bind(2, limit + 1);
      collect(s);
    }
    Stmt n(c, "SELECT COUNT(*) FROM jobs");
    if (n.Step()) page.total = n.Int(0);
  } else {
    {
      Stmt s(c, VICREG_JOB_SELECT_NOSPEC("WHERE state = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"));
      s.Bind(1, static_cast<int>(q.state)).Bind(2, before).Bind(3, limit + 1);
      collect(s);
    }
    Stmt n(c, "SELECT COUNT(*) FROM jobs WHERE state = ?1");
    n.Bind(1, static_cast<int>(q.state));
    if (n.Step()) page.total = n.Int(0);
  }
  return page;
}

std::vector<JobRecord> JobStore::LoadOpenJobs() {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<JobRecord> out;
  Stmt s(c, VICREG_JOB_SELECT("WHERE state IN (1, 2, 3, 4) ORDER BY seq ASC"));
  while (s.Step()) out.push_back(ReadJob(s, true));
  return out;
}

std::vector<JobRecord> JobStore::LoadStoppingJobs() {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<JobRecord> out;
  Stmt s(c, VICREG_JOB_SELECT("WHERE state = 7 AND placement != '' ORDER BY seq ASC"));
  while (s.Step()) out.push_back(ReadJob(s, false));
  return out;
}

std::vector<JobRecord> JobStore::PruneFinishedJobs(double finished_before_unix, int limit) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Txn txn(c.db);
  std::vector<JobRecord> out;
  {
    Stmt s(c,
           "SELECT id, run_dir FROM jobs WHERE state IN (5, 6, 7) AND finished > 0 AND finished < ?1 AND "
           "placement = '' ORDER BY finished LIMIT ?2");
    s.Bind(1, finished_before_unix).Bind(2, limit);
    while (s.Step()) {
      JobRecord r;
      r.id = s.Text(0);
      r.run_dir = s.Text(1);
      out.push_back(std::move(r));
    }
  }
  for (const JobRecord& r : out) {
    for (const char* sql : {"DELETE FROM eval_rows WHERE job_id = ?1", "DELETE FROM evals WHERE job_id = ?1",
                            "DELETE FROM events WHERE job_id = ?1", "DELETE FROM attempts WHERE job_id = ?1",
                            "DELETE FROM jobs WHERE id = ?1"}) {
      Stmt d(c, sql);
      d.Bind(1, r.id);
      d.Run();
    }
  }
  txn.Commit();
  return out;
}

std::map<JobState, int64_t> JobStore::CountByState() {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::map<JobState, int64_t> out;
  Stmt s(c, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  while (s.Step()) out[static_cast<JobState>(s.Int(0))] = s.Int(1);
  return out;
}

void JobStore::WriteJobLocked(Conn& c, const JobRecord& j) {
  Stmt s(c,
         "UPDATE jobs SET state = ?2, priority = ?3, attempt = ?4, restarts = ?5, started = ?6, finished = ?7, "
         "pending_reason = ?8, last_error = ?9, result_reason = ?10, p_step = ?11, p_total = ?12, "
         "p_epoch = ?13, p_num_epochs = ?14, p_loss = ?15, p_ips = ?16, p_rate = ?17, p_eta = ?18, "
         "p_updated = ?19, run_dir = ?20, placement = ?21, a_phase = ?22, q_state = ?23, q_reason = ?24, "
         "q_since = ?25 WHERE id = ?1");
  s.Bind(1, j.id).Bind(2, static_cast<int>(j.state)).Bind(3, j.priority).Bind(4, j.attempt);
  s.Bind(5, j.restarts).Bind(6, j.started_unix).Bind(7, j.finished_unix).Bind(8, j.pending_reason);
  s.Bind(9, j.last_error).Bind(10, j.result_reason).Bind(11, j.progress.step).Bind(12, j.progress.total_steps);
  s.Bind(13, j.progress.epoch).Bind(14, j.progress.num_epochs).Bind(15, j.progress.loss);
  s.Bind(16, j.progress.images_per_s).Bind(17, j.progress.steps_per_s).Bind(18, j.progress.eta_seconds);
  s.Bind(19, j.progress.updated_unix).Bind(20, j.run_dir).Bind(21, j.placement);
  s.Bind(22, static_cast<int>(j.attempt_phase)).Bind(23, j.queue_state).Bind(24, j.queue_reason);
  s.Bind(25, j.queued_since_unix);
  s.Run();
  if (sqlite3_changes(c.db) != 1) {
    throw ServiceError(ErrorCode::kNotFound, "job " + j.id + " is not in the store");
  }
}

int64_t JobStore::AppendEventLocked(Conn& c, EventRecord& e) {
  {
    Stmt s(c,
           "INSERT INTO events (job_id, time, kind, state, message, attempt, p_step, p_total, p_epoch, "
           "p_num_epochs, p_loss, p_ips, p_rate, p_eta, p_updated) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
    s.Bind(1, e.job_id).Bind(2, e.time_unix).Bind(3, static_cast<int>(e.kind)).Bind(4, static_cast<int>(e.state));
    s.Bind(5, e.message).Bind(6, e.attempt).Bind(7, e.progress.step).Bind(8, e.progress.total_steps);
    s.Bind(9, e.progress.epoch).Bind(10, e.progress.num_epochs).Bind(11, e.progress.loss);
    s.Bind(12, e.progress.images_per_s).Bind(13, e.progress.steps_per_s).Bind(14, e.progress.eta_seconds);
    s.Bind(15, e.progress.updated_unix);
    s.Run();
  }
  e.sequence = sqlite3_last_insert_rowid(c.db);
  Stmt u(c, "UPDATE jobs SET last_sequence = ?2 WHERE id = ?1");
  u.Bind(1, e.job_id).Bind(2, e.sequence);
  u.Run();
  return e.sequence;
}

int64_t JobStore::UpdateJob(JobRecord& job, std::optional<EventRecord> event) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Txn t(c.db);
  WriteJobLocked(c, job);
  int64_t seq = 0;
  if (event) {
    event->job_id = job.id;
    seq = AppendEventLocked(c, *event);
    job.last_sequence = seq;
  }
  t.Commit();
  return seq;
}

int64_t JobStore::AppendEvent(EventRecord& event) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Txn t(c.db);
  int64_t seq = AppendEventLocked(c, event);
  t.Commit();
  return seq;
}

std::vector<EventRecord> JobStore::EventsAfter(const std::string& job_id, int64_t after, int limit) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<EventRecord> out;
  Stmt s(c,
         "SELECT seq, job_id, time, kind, state, message, attempt, p_step, p_total, p_epoch, p_num_epochs, "
         "p_loss, p_ips, p_rate, p_eta, p_updated FROM events WHERE job_id = ?1 AND seq > ?2 "
         "ORDER BY seq ASC LIMIT ?3");
  s.Bind(1, job_id).Bind(2, after).Bind(3, limit);
  while (s.Step()) out.push_back(ReadEvent(s));
  return out;
}

void JobStore::UpsertAttempt(const AttemptRecord& a) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Stmt s(c,
         "INSERT INTO attempts (job_id, number, placement, launcher, handle, started, ended, exit_code, cause, "
         "restart_reason, start_step, phase, q_state, q_reason, queued, running) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
         "ON CONFLICT (job_id, number) DO UPDATE SET placement = ?3, launcher = ?4, handle = ?5, started = ?6, "
         "ended = ?7, exit_code = ?8, cause = ?9, restart_reason = ?10, start_step = ?11, phase = ?12, "
         "q_state = ?13, q_reason = ?14, queued = ?15, running = ?16");
  s.Bind(1, a.job_id).Bind(2, a.number).Bind(3, a.placement).Bind(4, a.launcher).Bind(5, a.handle);
  s.Bind(6, a.started_unix).Bind(7, a.ended_unix).Bind(8, a.exit_code).Bind(9, a.cause);
  s.Bind(10, std::string(RestartReasonName(a.restart_reason))).Bind(11, a.start_step);
  s.Bind(12, static_cast<int>(a.phase)).Bind(13, a.queue_state).Bind(14, a.queue_reason);
  s.Bind(15, a.queued_unix).Bind(16, a.running_unix);
  s.Run();
}

namespace {
AttemptRecord ReadAttempt(const JobStore::Stmt& s) {
  AttemptRecord a;
  a.job_id = s.Text(0);
  a.number = static_cast<int>(s.Int(1));
  a.placement = s.Text(2);
  a.launcher = s.Text(3);
  a.handle = s.Text(4);
  a.started_unix = s.Real(5);
  a.ended_unix = s.Real(6);
  a.exit_code = static_cast<int>(s.Int(7));
  a.cause = s.Text(8);
  a.restart_reason = ParseRestartReason(s.Text(9));
  a.start_step = s.Int(10);
  a.phase = static_cast<AttemptPhase>(s.Int(11));
  a.queue_state = s.Text(12);
  a.queue_reason = s.Text(13);
  a.queued_unix = s.Real(14);
  a.running_unix = s.Real(15);
  return a;
}
}  // namespace

std::vector<AttemptRecord> JobStore::Attempts(const std::string& job_id) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<AttemptRecord> out;
  Stmt s(c,
         "SELECT job_id, number, placement, launcher, handle, started, ended, exit_code, cause, restart_reason, "
         "start_step, phase, q_state, q_reason, queued, running FROM attempts WHERE job_id = ?1 ORDER BY number ASC");
  s.Bind(1, job_id);
  while (s.Step()) out.push_back(ReadAttempt(s));
  return out;
}

std::optional<AttemptRecord> JobStore::GetAttempt(const std::string& job_id, int number) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  Stmt s(c,
         "SELECT job_id, number, placement, launcher, handle, started, ended, exit_code, cause, restart_reason, "
         "start_step, phase, q_state, q_reason, queued, running FROM attempts WHERE job_id = ?1 AND number = ?2");
  s.Bind(1, job_id).Bind(2, number);
  if (s.Step()) return ReadAttempt(s);
  return std::nullopt;
}

bool JobStore::InsertEvalTask(const EvalTaskRecord& t) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Stmt s(c,
         "INSERT INTO evals (job_id, epoch, dataset, data_dir, state, attempts, error, updated, next_try, "
         "output_path) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING");
  s.Bind(1, t.job_id).Bind(2, t.epoch).Bind(3, t.dataset).Bind(4, t.data_dir).Bind(5, static_cast<int>(t.state));
  s.Bind(6, t.attempts).Bind(7, t.error).Bind(8, t.updated_unix).Bind(9, t.next_try_unix).Bind(10, t.output_path);
  s.Run();
  return sqlite3_changes(c.db) == 1;
}

void JobStore::UpdateEvalTask(const EvalTaskRecord& t, bool write_rows) {
  Conn& c = *writer_;
  std::lock_guard<std::mutex> lock(c.mu);
  Txn txn(c.db);
  {
    Stmt s(
        c,
        "UPDATE evals SET state = ?4, attempts = ?5, error = ?6, updated = ?7, next_try = ?8, output_path = ?9, "
        "launcher = ?10, handle = ?11, started = ?12, running = ?13 WHERE job_id = ?1 AND epoch = ?2 AND dataset = ?3");
    s.Bind(1, t.job_id).Bind(2, t.epoch).Bind(3, t.dataset).Bind(4, static_cast<int>(t.state));
    s.Bind(5, t.attempts).Bind(6, t.error).Bind(7, t.updated_unix).Bind(8, t.next_try_unix).Bind(9, t.output_path);
    s.Bind(10, t.launcher).Bind(11, t.handle).Bind(12, t.started_unix).Bind(13, t.running_unix);
    s.Run();
  }
  if (write_rows) {
    {
      Stmt d(c, "DELETE FROM eval_rows WHERE job_id = ?1 AND epoch = ?2 AND dataset = ?3");
      d.Bind(1, t.job_id).Bind(2, t.epoch).Bind(3, t.dataset);
      d.Run();
    }
    for (const auto& r : t.rows) {
      Stmt s(c,
             "INSERT OR REPLACE INTO eval_rows (job_id, epoch, dataset, probe, model, top1, top5) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      s.Bind(1, t.job_id).Bind(2, t.epoch).Bind(3, t.dataset).Bind(4, r.probe).Bind(5, r.model);
      s.Bind(6, r.top1).Bind(7, r.top5);
      s.Run();
    }
  }
  txn.Commit();
}

namespace {
EvalTaskRecord ReadEvalTask(const JobStore::Stmt& s) {
  EvalTaskRecord t;
  t.job_id = s.Text(0);
  t.epoch = static_cast<int>(s.Int(1));
  t.dataset = s.Text(2);
  t.data_dir = s.Text(3);
  t.state = static_cast<EvalState>(s.Int(4));
  t.attempts = static_cast<int>(s.Int(5));
  t.error = s.Text(6);
  t.updated_unix = s.Real(7);
  t.next_try_unix = s.Real(8);
  t.output_path = s.Text(9);
  t.launcher = s.Text(10);
  t.handle = s.Text(11);
  t.started_unix = s.Real(12);
  t.running_unix = s.Real(13);
  return t;
}
#define VICREG_EVAL_SELECT                                                                                      \
  "SELECT job_id, epoch, dataset, data_dir, state, attempts, error, updated, next_try, output_path, launcher, " \
  "handle, started, running FROM evals "
}  // namespace

std::vector<EvalRowRecord> JobStore::EvalRowsLocked(Conn& c, const std::string& job_id, int epoch,
                                                    const std::string& dataset) {
  std::vector<EvalRowRecord> rows;
  Stmt s(c,
         "SELECT probe, model, top1, top5 FROM eval_rows WHERE job_id = ?1 AND epoch = ?2 AND dataset = ?3 "
         "ORDER BY probe, model");
  s.Bind(1, job_id).Bind(2, epoch).Bind(3, dataset);
  while (s.Step()) {
    EvalRowRecord r;
    r.epoch = epoch;
    r.dataset = dataset;
    r.probe = s.Text(0);
    r.model = s.Text(1);
    r.top1 = s.Real(2);
    r.top5 = s.Real(3);
    rows.push_back(r);
  }
  return rows;
}

std::vector<EvalTaskRecord> JobStore::EvalTasks(const std::string& job_id) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<EvalTaskRecord> out;
  {
    Stmt s(c, VICREG_EVAL_SELECT "WHERE job_id = ?1 ORDER BY epoch, dataset");
    s.Bind(1, job_id);
    while (s.Step()) out.push_back(ReadEvalTask(s));
  }
  for (auto& t : out) t.rows = EvalRowsLocked(c, t.job_id, t.epoch, t.dataset);
  return out;
}

std::optional<EvalTaskRecord> JobStore::GetEvalTask(const std::string& job_id, int epoch, const std::string& dataset) {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::optional<EvalTaskRecord> out;
  {
    Stmt s(c, VICREG_EVAL_SELECT "WHERE job_id = ?1 AND epoch = ?2 AND dataset = ?3");
    s.Bind(1, job_id).Bind(2, epoch).Bind(3, dataset);
    if (s.Step()) out = ReadEvalTask(s);
  }
  if (out) out->rows = EvalRowsLocked(c, job_id, epoch, dataset);
  return out;
}

std::vector<EvalTaskRecord> JobStore::OpenEvalTasks() {
  ReaderLock reader(this);
  Conn& c = reader.conn();
  std::vector<EvalTaskRecord> out;
  Stmt s(c, VICREG_EVAL_SELECT "WHERE state IN (1, 2) ORDER BY updated");
  while (s.Step()) out.push_back(ReadEvalTask(s));
  return out;
}

}  // namespace vicreg::server
