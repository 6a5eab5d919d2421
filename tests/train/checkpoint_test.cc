// CheckpointManager: format, durability checks, resume resolution, retention, Python compatibility.
#include "worker/train/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "tests/train/test_util.h"

namespace vicreg::train {
namespace {

using vicreg::testing::MakeTempDir;
using vicreg::testing::PathExists;
using vicreg::testing::RemoveTree;
using vicreg::testing::Slurp;
using vicreg::testing::WriteText;

CheckpointPayload MakePayload(int64_t epoch, int64_t step, float fill = 0.5f) {
  CheckpointPayload p;
  at::manual_seed(7 + step);
  p.model.emplace_back("encoder.cls_token", at::randn({1, 1, 8}));
  p.model.emplace_back("encoder.blocks.0.attn.qkv.weight", at::randn({24, 8}));
  p.model.emplace_back("projector.1.running_mean", at::full({16}, fill));
  p.model.emplace_back("projector.1.num_batches_tracked", at::tensor(int64_t{step}));
  c10::impl::GenericDict opt(c10::StringType::get(), c10::AnyType::get());
  opt.insert("step", step);
  opt.insert("exp_avg", at::ones({3}));
  p.optimizer = opt;
  p.scheduler_step = step;
  p.scaler.enabled = false;
  p.scaler.scale = 1024.0;
  p.scaler.growth_tracker = 3;
  p.epoch = epoch;
  p.global_step = step;
  p.batch_in_epoch = 4;
  p.epoch_complete = true;
  p.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  p.config_yaml = "name: test\n";
  p.world_size = 2;
  p.global_batch = 64;
  p.nonfinite_total = 1;
  return p;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("ckpt"); }
  void TearDown() override { RemoveTree(dir_); }
  CheckpointManager Manager(int keep_last = 3, std::vector<int> keep_epochs = {}) {
    return CheckpointManager({dir_ + "/checkpoints", keep_last, keep_epochs});
  }
  std::string dir_;
};

TEST_F(CheckpointTest, SaveLoadRoundTripsEveryField) {
  auto mgr = Manager();
  auto p = MakePayload(3, 120);
  std::string path = mgr.Save(CheckpointManager::EpochFileName(3), "epoch", p);
  EXPECT_EQ(path, dir_ + "/checkpoints/epoch_0003.pt");
  EXPECT_EQ(mgr.Latest(), "epoch_0003.pt");
  auto q = CheckpointManager::Load(path);
  ASSERT_EQ(q.model.size(), p.model.size());
  for (size_t i = 0; i < p.model.size(); ++i) {
    EXPECT_EQ(q.model[i].first, p.model[i].first);
    EXPECT_TRUE(at::equal(q.model[i].second, p.model[i].second)) << p.model[i].first;
  }
  EXPECT_EQ(q.epoch, 3);
  EXPECT_EQ(q.global_step, 120);
  EXPECT_EQ(q.batch_in_epoch, 4);
  EXPECT_TRUE(q.epoch_complete);
  EXPECT_EQ(q.scheduler_step, 120);
  EXPECT_EQ(q.scaler.scale, 1024.0);
  EXPECT_EQ(q.scaler.growth_tracker, 3);
  EXPECT_TRUE(at::equal(q.rng_cpu, p.rng_cpu));
  EXPECT_EQ(q.config_yaml, "name: test\n");
  EXPECT_EQ(q.world_size, 2);
  EXPECT_EQ(q.global_batch, 64);
  EXPECT_EQ(q.nonfinite_total, 1);
  ASSERT_TRUE(q.optimizer.isGenericDict());
  EXPECT_EQ(q.optimizer.toGenericDict().at("step").toInt(), 120);

  auto m = nlohmann::json::parse(Slurp(dir_ + "/checkpoints/epoch_0003.json"));
  EXPECT_EQ(m["file"], "epoch_0003.pt");
  EXPECT_EQ(m["bytes"].get<int64_t>(), static_cast<int64_t>(Slurp(path).size()));
  EXPECT_EQ(m["epoch"], 3);
  EXPECT_EQ(m["global_step"], 120);
  EXPECT_EQ(m["kind"], "epoch");
}

TEST_F(CheckpointTest, TimeBudgetStateIsOptionalAndChecked) {
  auto p = MakePayload(2, 50);
  EXPECT_FALSE(DecodeCheckpoint(EncodeCheckpoint(p), "plain").time_budget.has_value());  // older / no budget
  p.time_budget = CheckpointPayload::TimeBudgetState{777, 123.5};
  auto q = DecodeCheckpoint(EncodeCheckpoint(p), "budgeted");
  ASSERT_TRUE(q.time_budget.has_value());
  EXPECT_EQ(q.time_budget->total_steps, 777);
  EXPECT_DOUBLE_EQ(q.time_budget->seconds_used, 123.5);
  p.time_budget = CheckpointPayload::TimeBudgetState{0, 1.0};
  try {
    DecodeCheckpoint(EncodeCheckpoint(p), "bad.pt");
    FAIL() << "total_steps 0 was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pt: inconsistent time_budget (total_steps 0"), std::string::npos)
        << e.what();
  }
}

TEST_F(CheckpointTest, FileNames) {
  EXPECT_EQ(CheckpointManager::EpochFileName(1), "epoch_0001.pt");
  EXPECT_EQ(CheckpointManager::EpochFileName(12345), "epoch_12345.pt");
  EXPECT_EQ(CheckpointManager::StepFileName(1234), "step_00001234.pt");
}

TEST_F(CheckpointTest, FlippedByteIsRefusedNamingFileAndCrc) {
  auto mgr = Manager();
  std::string path = mgr.Save("epoch_0001.pt", "epoch", MakePayload(1, 10));
  std::string bytes = Slurp(path);
  bytes[bytes.size() / 2] ^= 0x10;
  WriteText(path, bytes);
  try {
    CheckpointManager::Load(path);
    FAIL() << "a corrupted checkpoint loaded";
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("CRC32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("corrupted"), std::string::npos) << msg;
  }
}

TEST_F(CheckpointTest, TruncatedFileIsRefusedNamingSizes) {
  auto mgr = Manager();
  std::string path = mgr.Save("epoch_0001.pt", "epoch", MakePayload(1, 10));
  std::string bytes = Slurp(path);
  WriteText(path, bytes.substr(0, bytes.size() * 2 / 3));
  try {
    CheckpointManager::Load(path);
    FAIL() << "a truncated checkpoint loaded";
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("size is " + std::to_string(bytes.size() * 2 / 3)), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
  // Without a manifest the archive itself must still be refused as unreadable.
  std::remove((dir_ + "/checkpoints/epoch_0001.json").c_str());
  try {
    CheckpointManager::Load(path, /*require_manifest=*/false);
    FAIL() << "a truncated checkpoint without manifest loaded";
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated or corrupted"), std::string::npos) << msg;
  }
}

TEST_F(CheckpointTest, MissingManifestMeansIncomplete) {
  auto mgr = Manager();
  std::string path = mgr.Save("step_00000005.pt", "step", MakePayload(1, 5));
  std::remove((dir_ + "/checkpoints/step_00000005.json").c_str());
  try {
    CheckpointManager::Load(path);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("manifest"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(mgr.List().empty());
  EXPECT_NO_THROW(CheckpointManager::Load(path, /*require_manifest=*/false));
}

TEST_F(CheckpointTest, MissingKeyIsNamed) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kCheckpointFormat));
  c10::Dict<std::string, at::Tensor> model;
  model.insert("w", at::ones({2}));
  d.insert("model", model);
  auto bytes = torch::pickle_save(c10::IValue(d));
  try {
    DecodeCheckpoint(bytes, "x.pt");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("missing key 'optimizer'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.pt"), std::string::npos) << e.what();
  }
  // Wrong type.
  auto p = MakePayload(1, 1);
  auto good = EncodeCheckpoint(p);
  auto root = torch::pickle_load(good).toGenericDict();
  root.insert_or_assign("epoch", std::string("one"));
  try {
    DecodeCheckpoint(torch::pickle_save(c10::IValue(root)), "y.pt");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("'epoch' must be an int"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, ResumeAutoFallsBackToPreviousCompleteCheckpoint) {
  auto mgr = Manager();
  EXPECT_FALSE(mgr.Resume("auto").has_value()) << "empty dir = fresh start";
  EXPECT_FALSE(mgr.Resume("none").has_value());
  mgr.Save("epoch_0001.pt", "epoch", MakePayload(1, 10));
  mgr.Save("step_00000015.pt", "step", MakePayload(2, 15));
  mgr.Save("epoch_0002.pt", "epoch", MakePayload(2, 20));
  auto r = mgr.Resume("auto");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->second.global_step, 20);

  // Corrupt the newest: auto falls back to step 15.
  std::string bytes = Slurp(dir_ + "/checkpoints/epoch_0002.pt");
  bytes[100] ^= 0x01;
  WriteText(dir_ + "/checkpoints/epoch_0002.pt", bytes);
  r = mgr.Resume("auto");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, dir_ + "/checkpoints/step_00000015.pt");
  EXPECT_EQ(r->second.global_step, 15);

  // An explicit path is used exactly, and refused when bad.
  EXPECT_THROW(mgr.Resume(dir_ + "/checkpoints/epoch_0002.pt"), UserError);
  r = mgr.Resume(dir_ + "/checkpoints/epoch_0001.pt");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->second.global_step, 10);
  EXPECT_THROW(mgr.Resume(dir_ + "/nope.pt"), UserError);

  // Everything bad: refuse instead of silently starting over.
  for (const char* f : {"epoch_0001.pt", "step_00000015.pt"}) {
    std::string p = dir_ + "/checkpoints/" + f;
    WriteText(p, Slurp(p).substr(0, 50));
  }
  try {
    mgr.Resume("auto");
    FAIL();
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("no usable checkpoint"), std::string::npos) << msg;
    EXPECT_NE(msg.find("epoch_0001.pt"), std::string::npos) << msg;
  }
}

TEST_F(CheckpointTest, RetentionKeepsNewestKeptEpochsAndLatest) {
  auto mgr = Manager(/*keep_last=*/2, /*keep_epochs=*/{1, 3});
  for (int e = 1; e <= 5; ++e) {
    mgr.Save(CheckpointManager::StepFileName(e * 10 - 5), "step", MakePayload(e, e * 10 - 5));
    mgr.Save(CheckpointManager::EpochFileName(e), "epoch", MakePayload(e, e * 10));
  }
  std::vector<std::string> files;
  for (const auto& c : mgr.List()) files.push_back(c.file);
  EXPECT_EQ(files, (std::vector<std::string>{"epoch_0001.pt", "epoch_0003.pt", "step_00000045.pt", "epoch_0005.pt"}));
  EXPECT_FALSE(PathExists(dir_ + "/checkpoints/epoch_0002.pt"));
  EXPECT_FALSE(PathExists(dir_ + "/checkpoints/epoch_0002.json"));
  EXPECT_EQ(mgr.Latest(), "epoch_0005.pt");
}

TEST_F(CheckpointTest, NonFiniteParametersAreNeverWritten) {
  auto mgr = Manager();
  mgr.Save("epoch_0001.pt", "epoch", MakePayload(1, 10));
  auto bad = MakePayload(2, 20);
  bad.model[1].second[3][2] = std::numeric_limits<float>::quiet_NaN();
  try {
    mgr.Save("epoch_0002.pt", "epoch", bad);
    FAIL();
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("encoder.blocks.0.attn.qkv.weight"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(PathExists(dir_ + "/checkpoints/epoch_0002.pt"));
  EXPECT_EQ(mgr.Latest(), "epoch_0001.pt");
  bad.model[1].second[3][2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(mgr.Save("epoch_0002.pt", "epoch", bad), RuntimeFailure);
}

TEST_F(CheckpointTest, OpensInPythonTorchLoadWithTheDocumentedKeys) {
  if (!PathExists("/usr/bin/python3")) GTEST_SKIP() << "/usr/bin/python3 (with python3-torch) is not installed";
  auto mgr = Manager();
  std::string path = mgr.Save("epoch_0002.pt", "epoch", MakePayload(2, 33, 0.25f));
  std::string out = dir_ + "/py.txt";
  auto r = vicreg::testing::RunProcess(
      {"/usr/bin/python3", std::string(VICREG_SOURCE_DIR) + "/tests/train/check_checkpoint.py", path, "33", "2"}, out,
      120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("OK"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vicreg::train
