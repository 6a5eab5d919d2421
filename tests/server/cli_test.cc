// vicregctl's commands of issue 20 as real processes: `validate` (local, the loader the worker and
// the coordinator run) on every shipped config and on the bad-config corpus, and `submit --dry-run`
// against a real vicreg_coordinator launching the fake worker (nothing stored or queued).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

namespace fs = std::filesystem;
using testutil::Coordinator;
using testutil::TempDir;

server::CommandResult Ctl(const std::vector<std::string>& args, double timeout_s = 60) {
  std::vector<std::string> argv = {testutil::CtlBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return server::RunCommand(argv, timeout_s);
}

// Rows of a table in the coordinator's store (-1 when the query fails).
int64_t CountRows(const std::string& db, const std::string& table) {
  sqlite3* h = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, ("SELECT COUNT(*) FROM " + table).c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return n;
}

TEST(CliValidateTest, EveryShippedConfigIsValidAndEveryBadConfigNamesItsKey) {
  const std::string src = testutil::SourceDir();
  // configs/: the job files, and the seed's three files together (the form vicreg_worker loads them in).
  int job_files = 0;
  for (const auto& e : fs::directory_iterator(src + "/configs")) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".yaml" || name.find("_config") != std::string::npos) continue;
    ++job_files;
    auto r = Ctl({"validate", e.path().string()});
    EXPECT_EQ(r.exit_code, 0) << name << "\n" << r.out << r.err;
    EXPECT_EQ(r.out.rfind("OK ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line: " << r.out;
  }
  EXPECT_GE(job_files, 3);
  auto r = Ctl({"validate", "--data_config", src + "/configs/data_config.yaml", "--train_config",
                src + "/configs/train_config_vicreg.yaml", "--model_config", src + "/configs/model_config_vicreg.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Ctl({"-o", "json", "validate", src + "/configs/tiny_cpu.yaml", "--set", "resources.ranks=3"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["ranks"], 3);

  // The bad-config corpus (tests/common/bad_configs/: "# schema: reject KEY" or "# loader: KEY" in
  // its first two lines), plus cases of our own: exit 2 and the key named on its own line.
  std::vector<std::pair<std::string, std::string>> bad;  // file, key
  const fs::path corpus = src + "/tests/common/bad_configs";
  if (fs::exists(corpus)) {
    for (const auto& e : fs::directory_iterator(corpus)) {
      if (e.path().extension() != ".yaml") continue;
      std::ifstream in(e.path());
      std::string first, second, key;
      std::getline(in, first);
      std::getline(in, second);
      for (const std::string& line : {first, second})
        for (const char* marker : {"# schema: reject ", "# loader: "})
          if (line.rfind(marker, 0) == 0) key = line.substr(std::string(marker).size());
      ASSERT_FALSE(key.empty()) << e.path();
      bad.emplace_back(e.path().string(), key);
    }
    EXPECT_GE(bad.size(), 10u);
  }
  TempDir dir("cli-validate");
  const std::vector<std::pair<std::string, std::string>> own = {
      {"name: x\ntrain: {batch_size: -1}\n", "train.batch_size"},
      {"name: x\ntrian: {epochs: 2}\n", "trian"},
      {"name: x\ntrain: {vicreg: {lamda_invariance: 25}}\n", "train.vicreg.lamda_invariance"},
      {"name: [unclosed\n", "line 2, column 1"},
  };
  for (size_t i = 0; i < own.size(); ++i) {
    std::string p = dir.path() + "/own" + std::to_string(i) + ".yaml";
    testutil::WriteText(p, own[i].first);
    bad.emplace_back(p, own[i].second);
  }
  for (const auto& [file, key] : bad) {
    auto b = Ctl({"validate", file});
    EXPECT_EQ(b.exit_code, 2) << file << "\n" << b.out << b.err;
    EXPECT_NE(b.err.find("\n  " + key + ": "), std::string::npos) << file << ": " << key << " not named:\n" << b.err;
    EXPECT_TRUE(b.out.empty()) << b.out;
  }
  // The did-you-mean and the line/column reach the user; --set overrides are checked like the file.
  r = Ctl({"validate", dir.path() + "/own1.yaml"});
  EXPECT_NE(r.err.find("did you mean 'train'? (line 2, column 1)"), std::string::npos) << r.err;
  r = Ctl({"validate", src + "/configs/tiny_cpu.yaml", "--set", "train.lr=0.1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("train.lr: unknown key; did you mean 'learning_rate'? (from --set train.lr=0.1)"),
            std::string::npos)
      << r.err;
  r = Ctl({"validate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give a job file"), std::string::npos) << r.err;
}

TEST(CliDryRunTest, DryRunAnswersStartOrQueueAndStoresNothing) {
  TempDir dir("cli-dryrun");
  Coordinator c(dir.path() + "/state",
                {"--slots", "2", "--worker-binary", testutil::FakeWorker(), "--eval-binary", "off", "--poll-interval",
                 "0.1", "--stop-grace", "2"});
  c.Start();
  const std::string db = c.state_dir() + "/coordinator.db";
  std::string two = dir.path() + "/two.yaml", hang = dir.path() + "/hang.yaml", bad = dir.path() + "/bad.yaml";
  testutil::WriteText(two, "name: two\nresources: {ranks: 2}\n");
  testutil::WriteText(hang, "name: hang\nresources: {ranks: 2}\ntrain: {max_steps: 20}\nmax_restarts: 0\n");
  testutil::WriteText(bad, "name: two\nresources: {ranks: 0}\n");

  // Free slots: it would start now; nothing is stored, listed or launched.
  auto r = c.Ctl({"submit", "--dry-run", two});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("would start now on cpu:0,1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nothing was submitted"), std::string::npos) << r.out;
  r = c.Ctl({"-o", "json", "submit", "--dry-run", two, "--set", "train.batch_size=16"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["would_start"], true);
  EXPECT_EQ(j["job_id"], "");
  EXPECT_NE(j["spec_yaml"].get<std::string>().find("batch_size: 16"), std::string::npos) << r.out;
  r = c.Ctl({"submit", "--dry-run", bad});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("\n  resources.ranks: must be in [1, "), std::string::npos) << r.err;
  auto list = c.Ctl({"-o", "json", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(nlohmann::json::parse(list.out).value("jobs", nlohmann::json::array()).size(), 0u) << list.out;
  EXPECT_EQ(CountRows(db, "jobs"), 0);
  EXPECT_FALSE(fs::exists(c.state_dir() + "/runs/job-000001"));

  // Both slots held by a running job: a dry run would queue, and says behind what.
  r = c.Ctl({"submit", hang});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string held = r.out.substr(0, r.out.find('\n'));
  ASSERT_TRUE(testutil::WaitFor([&] { return c.Get(held).state() == v1::RUNNING; }, 60)) << c.log();
  ASSERT_TRUE(testutil::WaitFor(
      [&] {
        r = c.Ctl({"submit", "--dry-run", two});
        return r.out.find("would queue") != std::string::npos;
      },
      10))
      << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("would queue: waiting for 2 slots, 0 free (" + held + " holds 2)"), std::string::npos) << r.out;
  list = c.Ctl({"-o", "json", "list"});
  EXPECT_EQ(nlohmann::json::parse(list.out)["jobs"].size(), 1u) << list.out;
  EXPECT_EQ(CountRows(db, "jobs"), 1);
  r = c.Ctl({"submit", "--dry-run", "--wait", two});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--dry-run and --wait"), std::string::npos) << r.err;
  r = c.Ctl({"cancel", held}, 60);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace vicreg
