// fs: atomic writes, reads, IsInside, CRC-32, JSONL appends.
#include "common/fs.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/errors.h"
#include "tests/common/test_util.h"

namespace vicreg::fs {
namespace {

using testing_util::ReadText;
using testing_util::TempDir;
using testing_util::WriteText;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = d ? readdir(d) : nullptr) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  if (d) closedir(d);
  return out;
}

TEST(FsAtomicWrite, ReplacesContentAndLeavesNoTmp) {
  TempDir tmp_dir("fs");
  const std::string dir = tmp_dir.path();
  std::string path = dir + "/latest";
  AtomicWriteFile(path, "epoch_0001.pt");
  EXPECT_EQ(ReadFile(path), "epoch_0001.pt");
  AtomicWriteFile(path, "e2");  // shorter: no stale tail
  EXPECT_EQ(ReadFile(path), "e2");
  std::string big(3 << 20, 'x');
  big[12345] = '\0';
  AtomicWriteFile(path, big);
  EXPECT_EQ(ReadFile(path), big);
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"latest"});
}

TEST(FsAtomicWrite, CrashLeftoverTmpIsNotTheFile) {
  TempDir tmp_dir("fs");
  const std::string dir = tmp_dir.path();
  std::string path = dir + "/ckpt.pt";
  // A writer killed before its rename leaves only <path>.tmp.<pid> behind.
  WriteText(path + ".tmp.99999", "half-written");
  EXPECT_FALSE(Exists(path));
  try {
    ReadFile(path);
    FAIL() << "read a file that was never completed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  // An old complete file stays intact next to a stale tmp (even one with our own tmp name).
  AtomicWriteFile(path, "complete v1");
  WriteText(path + ".tmp." + std::to_string(getpid()), "stale junk from an earlier crash");
  EXPECT_EQ(ReadFile(path), "complete v1");
  AtomicWriteFile(path, "complete v2");
  EXPECT_EQ(ReadFile(path), "complete v2");
}

TEST(FsAtomicWrite, ErrorsNameThePath) {
  try {
    AtomicWriteFile("/nonexistent-dir-vicreg/x/file", "a");
    FAIL();
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-vicreg/x/file.tmp."), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  TempDir tmp_dir("fs");
  const std::string dir = tmp_dir.path();
  EXPECT_THROW(ReadFile(dir), UserError);  // a directory is not a file
}

TEST(FsMakeDirs, NestedExistingAndConflicts) {
  TempDir tmp_dir("fs");
  const std::string dir = tmp_dir.path();
  MakeDirs(dir + "/a/b/c");
  MakeDirs(dir + "/a/b/c");  // idempotent
  struct stat st {};
  ASSERT_EQ(stat((dir + "/a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  WriteText(dir + "/file", "x");
  try {
    MakeDirs(dir + "/file/sub");
    FAIL();
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/file"), std::string::npos) << e.what();
  }
}

TEST(FsIsInside, LexicalCases) {
  EXPECT_TRUE(IsInside("/runs/job1", "/runs/job1/checkpoints/epoch_0001.pt"));
  EXPECT_TRUE(IsInside("/runs/job1", "/runs/job1"));
  EXPECT_TRUE(IsInside("/runs/job1/", "/runs/job1/./a//b/"));
  EXPECT_TRUE(IsInside("/runs/job1", "/runs/job1/a/../b"));
  EXPECT_TRUE(IsInside("/runs/job1", "checkpoints/latest"));  // relative to root
  EXPECT_FALSE(IsInside("/runs/job1", "/runs/job1/../job2/x"));
  EXPECT_FALSE(IsInside("/runs/job1", "../job2"));
  EXPECT_FALSE(IsInside("/runs/job1", "a/../../job2"));
  EXPECT_FALSE(IsInside("/runs/job1", "../../../../etc/passwd"));
  EXPECT_FALSE(IsInside("/runs/job1", "/etc/passwd"));
  EXPECT_FALSE(IsInside("/runs/job1", "/runs/job10/x"));  // prefix of the name is not inside
  EXPECT_FALSE(IsInside("/runs/job1", "/runs"));
  EXPECT_TRUE(IsInside("/", "/anything/at/all"));
  // Relative root: against the current directory.
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_TRUE(IsInside("state", std::string(cwd) + "/state/runs"));
  EXPECT_FALSE(IsInside("state", std::string(cwd) + "/other"));
}

TEST(FsCrc32, KnownVectorAndContinuation) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
  EXPECT_NE(Crc32("123456788"), 0xCBF43926u);
}

TEST(FsJsonl, AppendsWholeLines) {
  TempDir tmp_dir("fs");
  const std::string dir = tmp_dir.path();
  std::string path = dir + "/metrics.jsonl";
  {
    JsonlWriter w(path);
    w.Append(R"({"step":1,"loss":3.5})");
    w.Append(R"({"step":2,"loss":3.25})");
    // Visible to readers immediately (one write() per line, no user-space buffer).
    EXPECT_EQ(ReadText(path), "{\"step\":1,\"loss\":3.5}\n{\"step\":2,\"loss\":3.25}\n");
    EXPECT_THROW(w.Append("{\"a\":1}\n{\"b\":2}"), InternalError);
  }
  {
    JsonlWriter w(path);  // reopening appends (resume)
    w.Append(R"({"step":3})");
  }
  EXPECT_EQ(ReadText(path), "{\"step\":1,\"loss\":3.5}\n{\"step\":2,\"loss\":3.25}\n{\"step\":3}\n");
  EXPECT_THROW(JsonlWriter("/nonexistent-dir-vicreg/m.jsonl"), RuntimeFailure);
}

}  // namespace
}  // namespace vicreg::fs
