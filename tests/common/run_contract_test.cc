// common/run_contract: the run directory's JSON files as both sides see them. Writers (worker side)
// read back by the readers (coordinator side); the shim's formatters; tolerant readers (missing,
// truncated or foreign content reads as absent, never throws); the layout's paths.
#include "common/run_contract.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fs.h"
#include "tests/common/test_util.h"

namespace vicreg::contract {
namespace {

using testing_util::ReadText;
using testing_util::TempDir;

TEST(RunContractTest, PathsOfTheLayout) {
  RunPaths d("/s/runs/job-000001/");
  EXPECT_EQ(d.root(), "/s/runs/job-000001");
  EXPECT_EQ(d.job_yaml(), "/s/runs/job-000001/job.yaml");
  EXPECT_EQ(d.worker_log(2), "/s/runs/job-000001/logs/rank-2.log");
  EXPECT_EQ(d.rank_output(2), "/s/runs/job-000001/logs/rank-2.out");
  EXPECT_EQ(d.attempt_job_yaml(3), "/s/runs/job-000001/attempts/3/job.yaml");
  EXPECT_EQ(d.attempt_rank_exit(3, 1), "/s/runs/job-000001/attempts/3/ranks/rank-1.json");
  EXPECT_EQ(d.attempt_status(3), "/s/runs/job-000001/attempts/3/status.json");
  EXPECT_EQ(d.endpoint_json(0), "/s/runs/job-000001/endpoints/rank-0.json");
}

TEST(RunContractTest, StatusValuesAndExitCodes) {
  for (RunStatus s : {RunStatus::kSucceeded, RunStatus::kFailed}) EXPECT_EQ(ParseRunStatus(RunStatusName(s)), s);
  EXPECT_EQ(ParseRunStatus("SUCCEEDED"), RunStatus::kUnknown);
  EXPECT_EQ(ParseRunStatus(""), RunStatus::kUnknown);
  EXPECT_TRUE(IsInvalidInputExit(kExitUsage));
  EXPECT_FALSE(IsInvalidInputExit(kExitFailure));
  EXPECT_FALSE(IsInvalidInputExit(kExitOk));
}

TEST(RunContractTest, WrittenFilesReadBack) {
  TempDir dir("contract");
  RunPaths d(dir.path());
  fs::MakeDirs(d.endpoints_dir());
  WriteProgress(d, {12, 40, 2, 5, 3.5, 99.5});
  auto p = ReadProgress(d);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->progress.step, 12);
  EXPECT_EQ(p->progress.total_steps, 40);
  EXPECT_EQ(p->progress.epoch, 2);
  EXPECT_EQ(p->progress.num_epochs, 5);
  EXPECT_DOUBLE_EQ(p->progress.loss, 3.5);
  EXPECT_DOUBLE_EQ(p->progress.images_per_s, 99.5);
  EXPECT_GT(p->time, 1.6e9);
  EXPECT_GT(p->mtime, 1.6e9);
  // The byte layout other readers (Python, jq) rely on: one line, keys in this order.
  const std::string text = ReadText(d.progress_json());
  EXPECT_EQ(text.rfind("{\"step\":12,\"total_steps\":40,\"epoch\":2,\"num_epochs\":5,\"loss\":3.5,", 0), 0u) << text;

  RunResult r;
  r.status = RunStatus::kFailed;
  r.reason = "terminated by SIGTERM";
  r.step = 12;
  r.epoch = 2;
  r.checkpoint = "step_00000012.pt";
  WriteResult(d, r);
  auto back = ReadResult(d);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, RunStatus::kFailed);
  EXPECT_EQ(back->reason, r.reason);
  EXPECT_EQ(back->step, 12);
  EXPECT_EQ(back->checkpoint, r.checkpoint);
  EXPECT_EQ(nlohmann::json::parse(ReadText(d.result_json()))["status"], "failed");

  WriteEndpoint(d, {1, 1, 4242, "vm", "127.0.0.1:9465"});
  WriteEndpoint(d, {0, 0, 4241, "vm", ""});
  auto eps = ReadEndpoints(d);
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0].rank, 0);
  EXPECT_EQ(eps[0].metrics, "");  // written as null
  EXPECT_TRUE(nlohmann::json::parse(ReadText(d.endpoint_json(0)))["metrics"].is_null());
  EXPECT_EQ(eps[1].pid, 4242);
  EXPECT_EQ(eps[1].metrics, "127.0.0.1:9465");
}

TEST(RunContractTest, ShimRecordsReadBack) {
  TempDir dir("contract");
  RunPaths d(dir.path());
  fs::MakeDirs(d.attempt_ranks_dir(1));
  ExitRecord a{0, 5, -1, 15, 20.0};
  ExitRecord b{1, 6, -1, 9, 10.0};
  fs::AtomicWriteFile(d.attempt_rank_exit(1, 0), FormatExitRecord(a));
  fs::AtomicWriteFile(d.attempt_rank_exit(1, 1), FormatExitRecord(b));
  auto exits = ReadRankExits(d, 1);
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].rank, 1);  // ordered by finish time
  EXPECT_EQ(exits[0].signal, 9);
  EXPECT_EQ(exits[1].pid, 5);

  ExitRecord sup;  // the supervisor's record has no rank
  sup.pid = 77;
  sup.exit_code = kExitUsage;
  sup.finished = 1.5;
  EXPECT_EQ(FormatExitRecord(sup), "{\"pid\":77,\"exit_code\":2,\"signal\":0,\"finished\":1.500}\n");
  fs::AtomicWriteFile(d.attempt_status(1), FormatExitRecord(sup));
  auto s = ReadExitRecord(d.attempt_status(1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->rank, -1);
  EXPECT_EQ(s->exit_code, kExitUsage);

  fs::AtomicWriteFile(d.attempt_launcher_info(1), FormatLauncherInfo({4321, 987654321ULL}));
  auto info = ReadLauncherInfo(d.attempt_launcher_info(1));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pid, 4321);
  EXPECT_EQ(info->start_ticks, 987654321ULL);
}

TEST(RunContractTest, ReadersTolerateMissingAndMalformedFiles) {
  TempDir dir("contract");
  RunPaths d(dir.path());
  EXPECT_FALSE(ReadProgress(d));
  EXPECT_FALSE(ReadResult(d));
  EXPECT_TRUE(ReadEndpoints(d).empty());
  EXPECT_TRUE(ReadRankExits(d, 1).empty());
  EXPECT_TRUE(CheckpointEpochs(d).empty());
  fs::AtomicWriteFile(d.progress_json(), "{\"step\": 1");  // truncated: ignored, never throws
  EXPECT_FALSE(ReadProgress(d));
  fs::AtomicWriteFile(d.progress_json(), "[1, 2]");  // not an object
  EXPECT_FALSE(ReadProgress(d));
  fs::AtomicWriteFile(d.progress_json(), R"({"step": "twelve", "loss": null, "epoch": 3})");  // wrong types
  auto p = ReadProgress(d);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->progress.step, 0);
  EXPECT_EQ(p->progress.epoch, 3);
  fs::AtomicWriteFile(d.result_json(), R"({"status": "exploded", "reason": "x"})");
  EXPECT_EQ(ReadResult(d)->status, RunStatus::kUnknown);
  fs::AtomicWriteFile(dir.path() + "/info.json", R"({"pid": 0})");
  EXPECT_FALSE(ReadLauncherInfo(dir.path() + "/info.json"));  // pid 0 is no process

  fs::MakeDirs(d.checkpoints_dir());
  for (const char* f :
       {"epoch_0002.pt", "epoch_0010.pt", "epoch_0001.pt.tmp.7", "latest", "step_00000100.pt", "epoch_x.pt"})
    fs::AtomicWriteFile(d.checkpoints_dir() + "/" + f, "x");
  EXPECT_EQ(CheckpointEpochs(d), (std::vector<int>{2, 10}));
}

TEST(RunContractTest, TailLinesOfALog) {
  TempDir dir("contract");
  const std::string log = dir.path() + "/log";
  std::string text;
  for (int i = 1; i <= 30; ++i) text += "line " + std::to_string(i) + "\n";
  fs::AtomicWriteFile(log, text);
  EXPECT_EQ(TailLines(log, 3), "line 28\nline 29\nline 30");
  EXPECT_EQ(TailLines(log, 2, 12), "line 30");  // the window starts mid-line: partial line dropped
  EXPECT_EQ(TailLines(dir.path() + "/missing", 3), "");
}

}  // namespace
}  // namespace vicreg::contract
