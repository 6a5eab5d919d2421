// JobStore (SQLite): schema, idempotent insert, paging, events, attempts, evals, durability
// across reopen. The 10k-job listing time is measured by vicreg_coordinator_bench, not here.
#include "server/store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "server/service_error.h"
#include "tests/server/test_util.h"

namespace vicreg::server {
namespace {

JobRecord NewJob(const std::string& name, const std::string& request_id = "", const std::string& hash = "h1") {
  JobRecord j;
  j.name = name;
  j.state = JobState::kQueued;
  j.ranks = 2;
  j.max_restarts = 1;
  j.created_unix = NowUnix();
  j.client_request_id = request_id;
  j.spec_yaml = "name: " + name + "\n";
  j.spec_hash = hash;
  return j;
}

EventRecord Submitted() {
  EventRecord e;
  e.kind = EventKind::kState;
  e.state = JobState::kQueued;
  e.message = "submitted";
  return e;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_.path = dir_.path() + "/coordinator.db";
    opts_.runs_root = dir_.path() + "/runs";
  }
  testutil::TempDir dir_{"store"};
  JobStore::Options opts_;
};

TEST_F(StoreTest, CreatesVersionedSchemaAndAssignsIdsAndRunDirs) {
  JobStore store(opts_);
  EXPECT_EQ(store.SchemaVersion(), JobStore::kSchemaVersion);
  auto a = store.InsertJob(NewJob("a"), Submitted());
  auto b = store.InsertJob(NewJob("b"), Submitted());
  EXPECT_FALSE(a.duplicate);
  EXPECT_EQ(a.job.id, "job-000001");
  EXPECT_EQ(b.job.id, "job-000002");
  EXPECT_EQ(a.job.run_dir, opts_.runs_root + "/job-000001");
  EXPECT_GT(a.job.last_sequence, 0);
  auto got = store.GetJob("job-000002");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "b");
  EXPECT_EQ(got->spec_yaml, "name: b\n");
  EXPECT_EQ(got->state, JobState::kQueued);
  EXPECT_FALSE(store.GetJob("job-000003"));
  EXPECT_TRUE(store.GetJob("job-000001", /*with_spec=*/false)->spec_yaml.empty());
}

TEST_F(StoreTest, ClientRequestIdMakesSubmitIdempotent) {
  JobStore store(opts_);
  auto first = store.InsertJob(NewJob("x", "req-1", "hash-A"), Submitted());
  auto again = store.InsertJob(NewJob("x", "req-1", "hash-A"), Submitted());
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.job.id, first.job.id);
  EXPECT_EQ(store.ListJobs({}).total, 1);
  try {
    store.InsertJob(NewJob("x", "req-1", "hash-B"), Submitted());
    FAIL() << "a reused request id with another spec must be refused";
  } catch (const ServiceError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
    EXPECT_NE(std::string(e.what()).find("req-1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(first.job.id), std::string::npos) << e.what();
  }
  // Jobs without a request id never collide.
  store.InsertJob(NewJob("y"), Submitted());
  store.InsertJob(NewJob("y"), Submitted());
  EXPECT_EQ(store.ListJobs({}).total, 3);
}

TEST_F(StoreTest, ListsNewestFirstWithFilterAndPaging) {
  JobStore store(opts_);
  for (int i = 0; i < 25; ++i) {
    auto r = store.InsertJob(NewJob("j" + std::to_string(i)), Submitted());
    if (i % 5 == 0) {
      r.job.state = JobState::kSucceeded;
      store.UpdateJob(r.job);
    }
  }
  JobStore::ListQuery q;
  q.limit = 10;
  auto p1 = store.ListJobs(q);
  ASSERT_EQ(p1.jobs.size(), 10u);
  EXPECT_TRUE(p1.more);
  EXPECT_EQ(p1.total, 25);
  EXPECT_EQ(p1.jobs.front().id, "job-000025");
  EXPECT_EQ(p1.jobs.back().id, "job-000016");
  q.before_seq = p1.jobs.back().seq;
  auto p2 = store.ListJobs(q);
  EXPECT_EQ(p2.jobs.front().id, "job-000015");
  q.before_seq = 6;
  auto last = store.ListJobs(q);
  EXPECT_EQ(last.jobs.size(), 5u);
  EXPECT_FALSE(last.more);

  JobStore::ListQuery done;
  done.state = JobState::kSucceeded;
  auto s = store.ListJobs(done);
  EXPECT_EQ(s.total, 5);
  ASSERT_EQ(s.jobs.size(), 5u);
  for (const auto& j : s.jobs) EXPECT_EQ(j.state, JobState::kSucceeded);
  EXPECT_EQ(s.jobs.front().id, "job-000021");
  auto counts = store.CountByState();
  EXPECT_EQ(counts[JobState::kQueued], 20);
  EXPECT_EQ(counts[JobState::kSucceeded], 5);
  EXPECT_EQ(store.LoadOpenJobs().size(), 20u);
}

TEST_F(StoreTest, EventsAreOrderedPerJobAndTrackLastSequence) {
  JobStore store(opts_);
  auto a = store.InsertJob(NewJob("a"), Submitted());
  auto b = store.InsertJob(NewJob("b"), Submitted());
  JobRecord ja = a.job;
  ja.state = JobState::kRunning;
  ja.progress.step = 7;
  EventRecord ev;
  ev.kind = EventKind::kProgress;
  ev.state = JobState::kRunning;
  ev.message = "step 7";
  ev.progress.step = 7;
  int64_t seq = store.UpdateJob(ja, ev);
  EXPECT_GT(seq, b.job.last_sequence);
  EXPECT_EQ(ja.last_sequence, seq);
  auto events = store.EventsAfter("job-000001", 0, 100);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message, "submitted");
  EXPECT_EQ(events[1].kind, EventKind::kProgress);
  EXPECT_EQ(events[1].progress.step, 7);
  EXPECT_TRUE(store.EventsAfter("job-000001", seq, 100).empty());
  EXPECT_EQ(store.EventsAfter("job-000002", 0, 100).size(), 1u);
  EXPECT_EQ(store.GetJob("job-000001")->last_sequence, seq);
  EXPECT_EQ(store.GetJob("job-000001")->progress.step, 7);
}

TEST_F(StoreTest, AttemptsAndEvalsRoundTrip) {
  JobStore store(opts_);
  auto a = store.InsertJob(NewJob("a"), Submitted());
  AttemptRecord at;
  at.job_id = a.job.id;
  at.number = 1;
  at.placement = "cpu:0,1";
  at.launcher = "local";
  at.handle = "local:123:456";
  at.started_unix = 1.0;
  store.UpsertAttempt(at);
  at.ended_unix = 2.0;
  at.exit_code = 137;
  at.cause = "rank 1 killed by signal 9 (SIGKILL)";
  store.UpsertAttempt(at);
  auto attempts = store.Attempts(a.job.id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].exit_code, 137);
  EXPECT_EQ(attempts[0].cause, at.cause);
  EXPECT_EQ(store.GetAttempt(a.job.id, 1)->handle, "local:123:456");
  EXPECT_FALSE(store.GetAttempt(a.job.id, 2));

  EvalTaskRecord t;
  t.job_id = a.job.id;
  t.epoch = 2;
  t.dataset = "fashion_mnist";
  t.output_path = "/x/eval/epoch_2_fashion_mnist.json";
  EXPECT_TRUE(store.InsertEvalTask(t));
  EXPECT_FALSE(store.InsertEvalTask(t));  // once per (job, epoch, dataset)
  EXPECT_EQ(store.OpenEvalTasks().size(), 1u);
  t.state = EvalState::kSucceeded;
  t.attempts = 1;
  t.rows = {{2, "fashion_mnist", "linear", "vicreg", 0.81, 0.99}, {2, "fashion_mnist", "knn", "raw_pixels", 0.7, 0.95}};
  store.UpdateEvalTask(t, true);
  auto got = store.GetEvalTask(a.job.id, 2, "fashion_mnist");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, EvalState::kSucceeded);
  ASSERT_EQ(got->rows.size(), 2u);
  EXPECT_EQ(got->rows[0].probe, "knn");  // ordered by probe, model
  EXPECT_DOUBLE_EQ(got->rows[1].top1, 0.81);
  EXPECT_TRUE(store.OpenEvalTasks().empty());
  EXPECT_EQ(store.EvalTasks(a.job.id).size(), 1u);
}

TEST_F(StoreTest, SurvivesReopen) {
  {
    JobStore store(opts_);
    auto r = store.InsertJob(NewJob("persist", "rid"), Submitted());
    r.job.state = JobState::kRunning;
    r.job.attempt = 1;
    r.job.placement = "cpu:0,1";
    store.UpdateJob(r.job);
  }
  JobStore again(opts_);
  EXPECT_EQ(again.SchemaVersion(), JobStore::kSchemaVersion);
  auto open = again.LoadOpenJobs();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].state, JobState::kRunning);
  EXPECT_EQ(open[0].placement, "cpu:0,1");
  EXPECT_EQ(open[0].client_request_id, "rid");
  EXPECT_EQ(again.InsertJob(NewJob("next"), Submitted()).job.id, "job-000002");
}

TEST_F(StoreTest, MigratesAVersion1StoreAndKeepsItsJobs) {
  std::string id;
  {
    JobStore store(opts_);
    auto r = store.InsertJob(NewJob("old", "rid-old"), Submitted());
    id = r.job.id;
    AttemptRecord a;
    a.job_id = id;
    a.number = 1;
    a.launcher = "slurm";
    a.handle = "slurm:57";
    store.UpsertAttempt(a);
  }
  // What a version-1 coordinator left behind: the same tables without the version-2 columns.
  const char* v2_columns[][2] = {{"jobs", "a_phase"},      {"jobs", "q_state"},    {"jobs", "q_reason"},
                                 {"jobs", "q_since"},      {"attempts", "phase"},  {"attempts", "q_state"},
                                 {"attempts", "q_reason"}, {"attempts", "queued"}, {"attempts", "running"},
                                 {"evals", "launcher"},    {"evals", "handle"},    {"evals", "started"},
                                 {"evals", "running"}};
  for (const auto& c : v2_columns) {
    ASSERT_EQ(testutil::Sqlite(opts_.path, std::string("ALTER TABLE ") + c[0] + " DROP COLUMN " + c[1]), 0) << c[1];
  }
  ASSERT_EQ(testutil::Sqlite(opts_.path, "DELETE FROM schema_version WHERE version > 1"), 0);

  JobStore store(opts_);
  EXPECT_EQ(store.SchemaVersion(), 2);
  auto job = store.GetJob(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->client_request_id, "rid-old");
  EXPECT_EQ(job->attempt_phase, AttemptPhase::kNone);
  auto a = store.GetAttempt(id, 1);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->handle, "slurm:57");
  EXPECT_EQ(a->phase, AttemptPhase::kNone);
  // The new columns are written and read back.
  a->phase = AttemptPhase::kQueued;
  a->queue_state = "PENDING";
  a->queue_reason = "Resources";
  a->queued_unix = 123.5;
  store.UpsertAttempt(*a);
  job->attempt_phase = AttemptPhase::kQueued;
  job->queue_state = "PENDING";
  job->queue_reason = "Resources";
  job->queued_since_unix = 123.5;
  store.UpdateJob(*job);
  EXPECT_EQ(store.GetAttempt(id, 1)->queue_reason, "Resources");
  EXPECT_EQ(store.GetAttempt(id, 1)->phase, AttemptPhase::kQueued);
  auto listed = store.ListJobs({});
  ASSERT_EQ(listed.jobs.size(), 1u);
  EXPECT_EQ(listed.jobs[0].attempt_phase, AttemptPhase::kQueued);
  EXPECT_EQ(listed.jobs[0].queue_state, "PENDING");
  EXPECT_DOUBLE_EQ(listed.jobs[0].queued_since_unix, 123.5);
}

TEST_F(StoreTest, RefusesANewerSchema) {
  { JobStore store(opts_); }
  ASSERT_EQ(testutil::Sqlite(opts_.path, "INSERT INTO schema_version(version) VALUES (99)"), 0);
  try {
    JobStore store(opts_);
    FAIL() << "a store with a newer schema must not be opened";
  } catch (const ServiceError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

// Retention (issue 17): only ended jobs that finished before the cutoff go, with every row of theirs;
// open jobs and a cancelled job still holding slots (its processes are being stopped) stay.
TEST_F(StoreTest, PruneFinishedJobsRemovesOldEndedJobsWithTheirRows) {
  JobStore store(opts_);
  const double now = NowUnix();
  auto make = [&](const std::string& name, JobState state, double finished, const std::string& placement = "") {
    JobRecord j = store.InsertJob(NewJob(name), Submitted()).job;
    j.state = state;
    j.finished_unix = finished;
    j.placement = placement;
    EventRecord e;
    e.kind = EventKind::kState;
    e.state = state;
    e.message = "changed";
    store.UpdateJob(j, e);
    AttemptRecord a;
    a.job_id = j.id;
    a.number = 1;
    a.started_unix = now - 1000;
    store.UpsertAttempt(a);
    EvalTaskRecord t;
    t.job_id = j.id;
    t.epoch = 1;
    t.dataset = "cifar10";
    t.state = EvalState::kSucceeded;
    t.rows.push_back({1, "cifar10", "linear", "vicreg", 0.5, 0.9});
    store.InsertEvalTask(t);
    store.UpdateEvalTask(t, true);
    return j.id;
  };
  const std::string old_ok = make("old-ok", JobState::kSucceeded, now - 1000);
  const std::string old_failed = make("old-failed", JobState::kFailed, now - 900);
  const std::string recent = make("recent", JobState::kCancelled, now - 10);
  const std::string stopping = make("stopping", JobState::kCancelled, now - 1000, "cpu:0");
  const std::string open = make("open", JobState::kRunning, 0);
  auto pruned = store.PruneFinishedJobs(now - 100, 500);
  ASSERT_EQ(pruned.size(), 2u);
  EXPECT_EQ(pruned[0].id, old_ok);
  EXPECT_EQ(pruned[0].run_dir, opts_.runs_root + "/" + old_ok);
  EXPECT_EQ(pruned[1].id, old_failed);
  for (const std::string& id : {old_ok, old_failed}) {
    EXPECT_FALSE(store.GetJob(id)) << id;
    EXPECT_TRUE(store.EventsAfter(id, 0, 100).empty()) << id;
    EXPECT_TRUE(store.Attempts(id).empty()) << id;
    EXPECT_TRUE(store.EvalTasks(id).empty()) << id;
  }
  for (const std::string& id : {recent, stopping, open}) {
    EXPECT_TRUE(store.GetJob(id)) << id;
    EXPECT_FALSE(store.EventsAfter(id, 0, 100).empty()) << id;
    EXPECT_EQ(store.EvalTasks(id).size(), 1u) << id;
  }
  EXPECT_EQ(store.ListJobs({}).total, 3);
  EXPECT_TRUE(store.PruneFinishedJobs(now - 100, 500).empty());
}

}  // namespace
}  // namespace vicreg::server
