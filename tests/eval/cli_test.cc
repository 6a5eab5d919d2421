// vicreg_eval as a real process: the evaluation table/JSON/CSV, missing epochs, the coordinator's
// command line, extract/export/convert, and usage errors (exit 2 with a reason).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "common/config_loader.h"
#include "common/fs.h"
#include "tests/eval/eval_test_util.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/eval/tensor_file.h"

namespace vicreg::eval {
namespace {

using testing::ProcResult;
using testing::RunProcess;
using testing::TempDir;

int PatternOf(int64_t i, bool test) { return static_cast<int>((i * 3 + (test ? 1 : 0)) % 4); }
void Pixels(int64_t i, int label, bool test, uint8_t* px) {
  std::mt19937 rng(static_cast<uint32_t>(i * 2 + (test ? 1 : 0)));
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        px[c * 1024 + y * 32 + x] = static_cast<uint8_t>(rng() % 80 + (y / 8 == label ? 170 : 0));
}

// One run dir with checkpoints of epochs 1 and 3 and a small 4-class CIFAR-format dataset.
class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    testing::WriteCifar10(Data(), 24, 60, PatternOf, Pixels);  // 120 train, 60 test
    testing::WriteCheckpoint(Ckpts(), 1, testing::TinyModel(), 11);
    testing::WriteCheckpoint(Ckpts(), 3, testing::TinyModel(), 13);
    config::JobConfig job;
    job.model = testing::TinyModel();
    job.data.dataset = "cifar10";
    job.data.data_dir = Data();
    fs::AtomicWriteFile(Run() + "/job.yaml", config::ToYaml(job));
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Run() { return *dir_ / "run"; }
  static std::string Ckpts() { return Run() + "/checkpoints"; }
  static std::string Data() { return *dir_ / "data"; }
  static ProcResult Eval(std::vector<std::string> args) {
    args.insert(args.begin(), testing::EvalBinary());
    return RunProcess(args, dir_->path());
  }
  static TempDir* dir_;
};
TempDir* EvalCli::dir_ = nullptr;

#define EXPECT_CONTAINS(hay, needle) EXPECT_NE((hay).find(needle), std::string::npos) << (hay)

TEST_F(EvalCli, EvaluatesEpochsReportsMissingOnesAndWritesJsonAndCsv) {
  const std::string out = *dir_ / "results/all.json";
  auto r = Eval({"--checkpoint_dir", Ckpts(), "--epochs", "1", "2", "3", "--dataset", "cifar10", "--data-dir", Data(),
                 "--mode", "vicreg", "--probe", "all", "--out", out, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(fs::ReadFile(out));
  EXPECT_EQ(j["dataset"], "cifar10");
  EXPECT_EQ(j["checkpoint_dir"], Ckpts());
  EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({2}));
  std::vector<std::string> seen;
  for (const auto& row : j["rows"]) {
    seen.push_back(row["model"].get<std::string>() + "/" + std::to_string(row["epoch"].get<int>()) + "/" +
                   row["probe"].get<std::string>());
    EXPECT_GE(row["top1"].get<double>(), 0.0);
    EXPECT_LE(row["top5"].get<double>(), 1.0);
    EXPECT_GE(row["top5"].get<double>(), row["top1"].get<double>());
    EXPECT_GE(row["fit_seconds"].get<double>(), 0.0);
    if (row["model"] == "raw_pixels") EXPECT_GE(row["top1"].get<double>(), 0.95);  // bands are linearly separable
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"vicreg/1/linear", "vicreg/1/knn", "vicreg/3/linear", "vicreg/3/knn",
                                            "raw_pixels/0/linear", "raw_pixels/0/knn", "random_init/0/linear",
                                            "random_init/0/knn"}));
  const auto csv = fs::ReadFile(*dir_ / "results/all.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);
  EXPECT_EQ(csv.rfind("model,epoch,probe,top1,top5,fit_seconds\nvicreg,1,linear,", 0), 0u) << csv;
  EXPECT_CONTAINS(r.out, "model       | epoch | probe  |    top1 |    top5 |  fit time");
  EXPECT_CONTAINS(r.out, "missing epochs (no checkpoint): 2");
  EXPECT_CONTAINS(r.err, "epoch_0002.pt");
}

TEST_F(EvalCli, TheCoordinatorsCommandLineAndTheDefaultOutputPath) {
  const std::string out = Run() + "/eval/epoch_3_cifar10.json";
  auto r = Eval({"--job", Run() + "/job.yaml", "--checkpoint_dir", Ckpts(), "--epochs", "3", "--dataset", "cifar10",
                 "--data-dir", Data(), "--probe", "all", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(fs::ReadFile(out));
  EXPECT_EQ(j["rows"].size(), 6u);
  EXPECT_TRUE(j["missing_epochs"].empty());
  EXPECT_TRUE(std::filesystem::exists(Run() + "/eval/epoch_3_cifar10.csv"));
  EXPECT_CONTAINS(r.err, "img/s");  // progress lines on stderr

  // Underscore spellings, dataset + data dir from the job, knn only, no references, default --out.
  r = Eval({"--job", Run() + "/job.yaml", "--checkpoint-dir", Ckpts() + "/", "--epochs", "1", "--probe", "knn",
            "--knn_k", "5", "--no_reference", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  j = nlohmann::json::parse(fs::ReadFile(Run() + "/eval/eval_cifar10.json"));
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["probe"], "knn");
  EXPECT_EQ(r.err.find("img/s"), std::string::npos);
}

TEST_F(EvalCli, NoEvaluatedCheckpointExitsOneButStillWritesTheMissingEpochs) {
  const std::string out = *dir_ / "none.json";
  auto r = Eval({"--checkpoint_dir", Ckpts(), "--epochs", "7", "8", "--dataset", "cifar10", "--data-dir", Data(),
                 "--out", out, "--quiet"});
  EXPECT_EQ(r.code, 1) << r.err;
  auto j = nlohmann::json::parse(fs::ReadFile(out));
  EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({7, 8}));
  EXPECT_TRUE(j["rows"].empty());
  EXPECT_CONTAINS(r.err, "no checkpoint was evaluated");
}

TEST_F(EvalCli, ACorruptCheckpointIsReportedAndTheOthersAreEvaluated) {
  TempDir d;
  const std::string ck = d / "checkpoints";
  testing::WriteCheckpoint(ck, 1, testing::TinyModel(), 5);
  fs::AtomicWriteFile(ck + "/epoch_0002.pt", "not a checkpoint");
  auto r = Eval({"--checkpoint_dir", ck, "--dataset", "cifar10", "--data-dir", Data(), "--probe", "knn",
                 "--no-reference", "--quiet"});  // no --epochs: every epoch_XXXX.pt found
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(fs::ReadFile(d / "eval/eval_cifar10.json"));
  EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({2}));
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["epoch"], 1);
  EXPECT_CONTAINS(r.err, ck + "/epoch_0002.pt");
}

TEST_F(EvalCli, BadUsageExitsTwoWithAReason) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<std::string> base = {"--checkpoint_dir", Ckpts(), "--dataset", "cifar10",
                                         "--data-dir",       Data(),  "--quiet"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const std::string other_model = *dir_ / "model_config_other.yaml";
  fs::AtomicWriteFile(other_model,
                      "backbone_name: vit_custom\nimage_size: 32\npatch_size: 8\nembed_dim: 48\n"
                      "depth: 2\nnum_heads: 2\n");
  const std::vector<Case> cases = {
      {with({"--bogus"}), "--bogus"},
      {with({"--probe", "svm"}), "--probe"},
      {with({"--mode", "simclr"}), "--mode"},
      {with({"--knn-k", "0"}), "--knn-k"},
      {with({"--epochs", "x"}), "--epochs"},
      {{"--checkpoint_dir", Ckpts(), "--data-dir", Data()}, "--dataset is required"},
      {{"--dataset", "cifar10", "--data-dir", Data()}, "--checkpoint_dir"},
      {{"--checkpoint_dir", *dir_ / "nope", "--dataset", "cifar10", "--data-dir", Data()}, "not a directory"},
      {{"--checkpoint_dir", Ckpts(), "--dataset", "imagenet", "--data-dir", Data()}, "imagenet"},
      {{"--checkpoint_dir", Ckpts(), "--dataset", "cifar10", "--data-dir", *dir_ / "nodata"}, "nodata"},
      {with({"--model_config", other_model, "--epochs", "1"}), "model.embed_dim is 48"},
      {with({"--model_config", *dir_ / "missing.yaml"}), "missing.yaml"},
      {{"export", "--checkpoint", Ckpts() + "/epoch_0001.pt"}, "--out"},
      {{"extract", "--checkpoint", Ckpts() + "/epoch_0001.pt", "--dataset", "cifar10", "--data-dir", Data(), "--split",
        "val", "--out", *dir_ / "f.safetensors"},
       "--split"},
      {{"frobnicate"}, "unknown subcommand 'frobnicate'"},
      {with({"--device", "gpu7"}), "--device gpu7: expected cpu, cuda or cuda:N"},
      {with({"--device", "cuda:99"}), "--device cuda:99"},  // no CUDA here, or fewer devices
      {{"extract", "--checkpoint", Ckpts() + "/epoch_0001.pt", "--dataset", "cifar10", "--data-dir", Data(), "--device",
        "tpu", "--out", *dir_ / "f.safetensors"},
       "--device tpu"},
  };
  for (const auto& c : cases) {
    auto r = Eval(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r.err;
    EXPECT_CONTAINS(r.err, c.needle);
  }
  auto help = Eval({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_CONTAINS(help.out, "--checkpoint_dir");
}

TEST_F(EvalCli, ExtractWritesTheEncodersFeaturesAndLabels) {
  // The encoder of epoch 3, rebuilt in-process, on the same EvalTransform'ed images.
  TempDir d;
  auto vit = testing::WriteCheckpoint(d / "ck", 3, testing::TinyModel(), 13);
  const std::string out = d / "feats.safetensors";
  auto r = Eval({"extract", "--checkpoint", d / "ck/epoch_0003.pt", "--dataset", "cifar10", "--data_dir", Data(),
                 "--split", "test", "--out", out, "--batch-size", "7", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto f = ReadTensorFile(out);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "features");
  EXPECT_EQ(f.tensors[1].first, "labels");
  const auto& feats = f.tensors[0].second;
  EXPECT_EQ(feats.sizes(), (std::vector<int64_t>{60, 32}));
  EXPECT_EQ(feats.scalar_type(), at::kFloat);
  EXPECT_EQ(f.tensors[1].second.scalar_type(), at::kLong);
  EXPECT_EQ(f.metadata["epoch"], "3");
  auto test = data::OpenDataset({"cifar10", Data(), "test", 0});
  auto train = data::OpenDataset({"cifar10", Data(), "train", 0});
  std::vector<int64_t> idx(60);
  for (int64_t i = 0; i < 60; ++i) idx[i] = i;
  at::Tensor images, labels;
  test->Fetch(idx, &images, &labels);
  vit->eval();
  at::NoGradGuard ng;
  auto expect = vit->forward(data::EvalTransform(images, 32, train->mean(), train->std()));
  EXPECT_TRUE(at::allclose(feats, expect, 1e-5, 1e-5)) << (feats - expect).abs().max().item<double>();
  EXPECT_TRUE(at::equal(f.tensors[1].second, labels));
}

TEST_F(EvalCli, ConvertWritesATensorCacheThatEvaluatesLikeTheOriginal) {
  TempDir d;
  for (const char* split : {"train", "test"}) {
    auto r = Eval({"convert", "--dataset", "cifar10", "--data-dir", Data(), "--split", split, "--out",
                   d / (std::string("cache/") + split + ".safetensors")});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  auto a = data::OpenDataset({"tensor_cache", d / "cache", "test", 0});
  auto b = data::OpenDataset({"cifar10", Data(), "test", 0});
  ASSERT_EQ(a->size(), b->size());
  std::vector<int64_t> idx = {0, 17, 59};
  at::Tensor ia, la, ib, lb;
  a->Fetch(idx, &ia, &la);
  b->Fetch(idx, &ib, &lb);
  EXPECT_TRUE(at::equal(ia, ib));
  EXPECT_TRUE(at::equal(la, lb));
  auto r = Eval({"--checkpoint", Ckpts() + "/epoch_0001.pt", "--dataset", "tensor_cache", "--data-dir", d / "cache",
                 "--probe", "linear", "--no-reference", "--quiet", "--out", d / "tc.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(fs::ReadFile(d / "tc.json"));
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["epoch"], 1);  // from the checkpoint itself
}

}  // namespace
}  // namespace vicreg::eval
