// vicreg_eval as a real process: the evaluation table/JSON/CSV, missing epochs, the coordinator's
// command line, extract/export/convert, and usage errors (exit 2 with a reason).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "common/config_loader.h"
#include "common/fs.h"
#include "common/run_contract.h"
#include "tests/eval/eval_test_util.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/model/tensor_file.h"
#include "worker/train/checkpoint.h"

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
    if (row["model"] == "raw_pixels") {
      EXPECT_GE(row["top1"].get<double>(), 0.95);  // bands are linearly separable
    }
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

// The seed's command names no --data-dir: the run's own config gives it (a checkpoint's embedded
// config, else <run_dir>/job.yaml), and the command says which; every requested epoch without a
// checkpoint says why (never written, deleted by retention, not reached, beyond the run).
TEST_F(EvalCli, WithoutDataDirTheRunsConfigGivesItAndEachMissingEpochSaysWhy) {
  TempDir d;
  const std::string ck = d / "run/checkpoints";
  config::JobConfig job;
  job.data.dataset = "cifar10";
  job.data.data_dir = Data();
  job.train.num_epochs = 8;
  job.train.warmup_epochs = 0;
  job.checkpoint.every_epochs = 2;
  job.checkpoint.keep_last = 1;
  job.checkpoint.keep_epochs = {2};
  // Epochs 2 (kept) and 6 (the newest) are on disk; 4 was deleted by retention; 8 is not reached.
  testing::WriteCheckpoint(ck, 2, testing::TinyModel(), 11, 0.0, &job);
  testing::WriteCheckpoint(ck, 6, testing::TinyModel(), 13, 0.0, &job);
  auto r = Eval({"--checkpoint_dir", ck, "--dataset", "cifar10", "--mode", "vicreg", "--epochs", "1", "2", "3", "4",
                 "6", "8", "9", "--probe", "knn", "--no-reference", "--quiet", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.err, "--data-dir not given: using data.data_dir \"" + Data() + "\" from the config embedded in " +
                             ck + "/epoch_0002.pt");
  auto j = nlohmann::json::parse(fs::ReadFile(d / "run/eval/eval_cifar10.json"));
  EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({1, 3, 4, 8, 9}));
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][1]["epoch"], 6);
  EXPECT_CONTAINS(r.out,
                  "epoch 1: never written: checkpoint.every_epochs 2 writes epoch checkpoints at multiples of 2 and at "
                  "the last epoch (8) only");
  EXPECT_CONTAINS(r.out, "epoch 3: never written");
  EXPECT_CONTAINS(r.out,
                  "epoch 4: not kept: retention deleted it; checkpoint.keep_last 1 keeps only the newest 1 "
                  "checkpoints, and epoch 4 is not in checkpoint.keep_epochs [2] or eval.epochs []");
  EXPECT_CONTAINS(r.out, "list the epochs to evaluate in checkpoint.keep_epochs before training");
  EXPECT_CONTAINS(r.out, "epoch 8: not written yet: the newest epoch checkpoint is epoch 6");
  EXPECT_CONTAINS(r.out, "epoch 9: does not exist: the run trains train.num_epochs 8 epochs");
  EXPECT_CONTAINS(r.err, "epoch 4: no checkpoint " + ck + "/epoch_0004.pt: not kept");

  // No checkpoint at all: <run_dir>/job.yaml gives the data location; result.json says the run ended.
  TempDir d2;
  std::filesystem::create_directories(d2 / "run/checkpoints");
  fs::AtomicWriteFile(d2 / "run/job.yaml", config::ToYaml(job));
  contract::RunResult res;
  res.status = contract::RunStatus::kFailed;
  res.reason = "non-finite loss for 5 steps";
  res.epoch = 7;
  res.step = 70;
  contract::WriteResult(contract::RunPaths(d2 / "run"), res);
  r = Eval({"--checkpoint_dir", d2 / "run/checkpoints", "--dataset", "cifar10", "--epochs", "8", "--quiet"});
  EXPECT_EQ(r.code, 1) << r.err;  // nothing evaluated
  EXPECT_CONTAINS(r.err, "using data.data_dir \"" + Data() + "\" from " + d2 / "run/job.yaml");
  EXPECT_CONTAINS(r.out,
                  "epoch 8: not written: the run ended (failed at epoch 7, step 70: non-finite loss for 5 steps) "
                  "before epoch 8 finished");
}

// Continuing in Python (docs/CHECKPOINTS.md): a real AdamW checkpoint of vicreg_worker (a tiny ViT, two
// steps) exported as torch.optim.AdamW state, loaded and stepped by /usr/bin/python3's torch; its
// moments must be the checkpoint's, parameter by parameter. A LARS run is refused with the reason.
TEST_F(EvalCli, ExportFormatTorchContinuesInPython) {
  TempDir d;
  auto r = RunProcess({testing::WorkerBinary(), "--job", std::string(VICREG_SOURCE_DIR) + "/configs/tiny_cpu.yaml",
                       "--run-dir", d / "run", "--max-steps", "2", "--set", "data.dataset=cifar10", "--set",
                       "data.data_dir=" + Data(), "--set", "data.limit=0", "--set", "metrics.enabled=false"},
                      d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string ckpt = d / "run/checkpoints/step_00000002.pt";
  r = Eval({"export", "--format", "torch", "--checkpoint", ckpt, "--out", d / "cont.pt"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "AdamW state for");
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch is needed for the Python side (deploy/install-deps.sh)";
  r = RunProcess({"/usr/bin/python3", std::string(VICREG_SOURCE_DIR) + "/tests/eval/torch_export_check.py",
                  d / "cont.pt"},
                 d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto py = nlohmann::json::parse(r.out);
  const auto saved = train::CheckpointManager::Load(ckpt);
  std::map<std::string, c10::IValue> opt;
  for (const auto& kv : saved.optimizer.toGenericDict()) opt[kv.key().toStringRef()] = kv.value();
  ASSERT_EQ(py["groups"].size(), 2u);
  for (int g = 0; g < 2; ++g) {
    const std::string gp = "group" + std::to_string(g) + ".";
    EXPECT_DOUBLE_EQ(py["groups"][g]["lr"].get<double>(), opt.at(gp + "lr").toDouble());
    EXPECT_GT(py["groups"][g]["lr"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(py["groups"][g]["weight_decay"].get<double>(), g == 0 ? 1e-4 : 0.0);
    EXPECT_EQ(py["groups"][g]["betas"], nlohmann::json::array({0.9, 0.999}));
    EXPECT_EQ(py["groups"][g]["params"].get<int64_t>(), opt.at(gp + "num_params").toInt());
  }
  EXPECT_EQ(py["steps"], nlohmann::json::array({2}));
  EXPECT_EQ(py["with_state"].get<int64_t>(), opt.at("group0.num_params").toInt() + opt.at("group1.num_params").toInt());
  // group0.param0 is the first weight-decay parameter (patch_embed.proj.weight), group1.param0 cls_token.
  EXPECT_NEAR(py["exp_avg_sum"]["encoder.patch_embed.proj.weight"].get<double>(),
              opt.at("group0.param0.exp_avg").toTensor().to(at::kDouble).sum().item<double>(), 1e-9);
  EXPECT_NEAR(py["exp_avg_sum"]["encoder.cls_token"].get<double>(),
              opt.at("group1.param0.exp_avg").toTensor().to(at::kDouble).sum().item<double>(), 1e-9);
  EXPECT_LT(py["step_rel_err"].get<double>(), 1e-5);

  config::JobConfig lars;
  lars.train.optimizer = "lars";
  testing::WriteCheckpoint(d / "lars", 1, testing::TinyModel(), 3, 0.0, &lars);
  r = Eval({"export", "--format", "torch", "--checkpoint", d / "lars/epoch_0001.pt", "--out", d / "l.pt"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "train.optimizer lars: --format torch writes torch.optim.AdamW state");
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
  std::filesystem::create_directories(*dir_ / "bare_run/checkpoints");
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
      {{"frobnicate"}, "valid: evaluate (the default: vicreg_eval [flags]), export, extract, convert"},
      {{"evaluate", "--probe", "svm"}, "--probe"},
      {{"convert", "--dataset", "cifar10", "--data-dir", Data()}, "--out"},
      // No --data-dir and no run config to take it from; a run that names no folder for the dataset.
      {{"--checkpoint_dir", *dir_ / "bare_run/checkpoints", "--dataset", "cifar10"},
       "--data-dir is required: no run config was found"},
      {{"--checkpoint_dir", Ckpts(), "--dataset", "cifar100"}, "names no folder for cifar100"},
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
  for (const char* sub : {"evaluate", "export", "extract", "convert"}) EXPECT_CONTAINS(help.out, sub);
  // Each subcommand's --help is its own (CLI11 subcommands), with its flags.
  auto export_help = Eval({"export", "--help"});
  EXPECT_EQ(export_help.code, 0);
  EXPECT_CONTAINS(export_help.out, "--format");
  EXPECT_EQ(export_help.out.find("--knn-k"), std::string::npos) << export_help.out;
  auto extract_help = Eval({"extract", "--help"});
  EXPECT_EQ(extract_help.code, 0);
  EXPECT_CONTAINS(extract_help.out, "--split");
}

TEST_F(EvalCli, ExtractWritesTheEncodersFeaturesAndLabels) {
  // The encoder of epoch 3, rebuilt in-process, on the same EvalTransform'ed images.
  TempDir d;
  auto vit = testing::WriteCheckpoint(d / "ck", 3, testing::TinyModel(), 13);
  const std::string out = d / "feats.safetensors";
  auto r = Eval({"extract", "--checkpoint", d / "ck/epoch_0003.pt", "--dataset", "cifar10", "--data_dir", Data(),
                 "--split", "test", "--out", out, "--batch-size", "7", "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto f = model::ReadTensorFile(out);
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

namespace vicreg::eval {
namespace {

using testing::RunProcess;
using testing::TempDir;

// The seed document's three files, exactly as printed there (../shared/seed/vicreg-pipeline.md).
constexpr const char* kSeedTrainConfig = R"(training_mode: "vicreg"

batch_size: 128
num_epochs: 200
learning_rate: 0.001
weight_decay: 0.0001
warmup_epochs: 10

vicreg:
  proj_dim: 2048
  proj_hidden_dim: 2048
  lambda_invariance: 25.0
  mu_variance: 25.0
  nu_covariance: 1.0
  gamma: 1.0
)";
constexpr const char* kSeedModelConfig = R"(backbone_name: "vit_small_patch16_224"
image_size: 96
)";
// "Same as MoCo/KD": a data config as such a user has it, torchvision's root holding cifar-10-batches-py/.
constexpr const char* kMocoKdDataConfig = R"(dataset_name: cifar10
data_root: ./data
num_workers: 2
image_size: 96
)";

// The seed user's workflow end to end: the three files above, CIFAR-10 in torchvision's Python
// version written by /usr/bin/python3's pickle, the seed's training command (binary name substituted;
// --device cpu here), then the seed's evaluation command exactly as printed (binary name and
// checkpoint dir substituted). On CPU a ViT-S step at batch 128 takes 10-40 s, so the run is cut
// after its first step (--set train.max_steps=1, the one --set): the eval gets epoch 1's rows and
// says for 50..200 that the run ended before them. With CUDA (or VICREG_SEED_FULL_RUN=1) the whole
// 200-epoch run trains and every requested epoch gets its rows.
TEST(SeedCommands, TheSeedsFilesAndCommandsWorkUnchanged) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with numpy is needed to write the CIFAR pickles (deploy/install-deps.sh)";
  const bool cuda = at::hasCUDA();
  const bool full = cuda || std::getenv("VICREG_SEED_FULL_RUN") != nullptr;
  TempDir d;
  fs::AtomicWriteFile(d / "train_config_vicreg.yaml", kSeedTrainConfig);
  fs::AtomicWriteFile(d / "model_config_vicreg.yaml", kSeedModelConfig);
  fs::AtomicWriteFile(d / "data_config.yaml", kMocoKdDataConfig);
  // 26 x 5 = 130 training images (one batch of 128 per epoch), 20 test images.
  const std::string writer = std::string(VICREG_SOURCE_DIR) + "/tests/eval/write_cifar_python.py";
  ASSERT_EQ(std::system(("/usr/bin/python3 '" + writer + "' '" + d / "data" + "' 26 20").c_str()), 0);

  std::vector<std::string> train = {testing::WorkerBinary(), "--data_config", "data_config.yaml",
                                    "--train_config", "train_config_vicreg.yaml", "--model_config",
                                    "model_config_vicreg.yaml", "--device", cuda ? "cuda" : "cpu"};
  if (!full) train.insert(train.end(), {"--set", "train.max_steps=1"});
  auto r = RunProcess(train, d.path(), d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> runs;
  for (const auto& e : std::filesystem::directory_iterator(d / "runs")) runs.push_back(e.path().filename().string());
  ASSERT_EQ(runs.size(), 1u);
  const std::string run = "runs/" + runs[0];
  // The seed form keeps what the seed evaluates.
  const auto job = config::LoadJobFile(d / (run + "/job.yaml"));
  EXPECT_EQ(job.checkpoint.keep_epochs, (std::vector<int>{1, 50, 100, 150, 200}));
  EXPECT_EQ(job.data.data_dir, "./data");

  r = RunProcess({testing::EvalBinary(), "--model_config", "model_config_vicreg.yaml", "--checkpoint_dir",
                  run + "/checkpoints", "--dataset", "cifar10", "--mode", "vicreg", "--epochs", "1", "50", "100", "150",
                  "200"},
                 d.path(), d.path());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_CONTAINS(r.err, "--data-dir not given: using data.data_dir \"./data\" from the config embedded in " + run +
                             "/checkpoints/epoch_0001.pt");
  auto j = nlohmann::json::parse(fs::ReadFile(d / (run + "/eval/eval_cifar10.json")));
  std::vector<int> vicreg_epochs;
  for (const auto& row : j["rows"])
    if (row["model"] == "vicreg") vicreg_epochs.push_back(row["epoch"].get<int>());
  const std::vector<int> want = full ? std::vector<int>{1, 1, 50, 50, 100, 100, 150, 150, 200, 200}
                                     : std::vector<int>{1, 1};  // linear + knn per epoch
  EXPECT_EQ(vicreg_epochs, want) << r.out;
  EXPECT_EQ(j["rows"].size(), want.size() + 4) << r.out;  // + raw_pixels and random_init, linear and knn
  if (!full) {
    EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({50, 100, 150, 200}));
    for (int e : {50, 100, 150, 200})
      EXPECT_CONTAINS(r.out, "epoch " + std::to_string(e) +
                                 ": not written: the run ended (succeeded at epoch 1, step 1: max_steps 1 reached) "
                                 "before epoch " +
                                 std::to_string(e) + " finished");
  } else {
    EXPECT_TRUE(j["missing_epochs"].empty()) << r.out;
  }
}

}  // namespace
}  // namespace vicreg::eval
