// GPU checks (label `gpu`): every test skips with a message when this build or this machine has
// no CUDA device, so the suite is green on the CPU-only CI and meaningful on a GPU machine.
//   - augmentation on CUDA tensors draws the same parameters and gives the same views as on CPU;
//   - the model's forward/backward on CUDA (fp32, TF32 off) equals the CPU result;
//   - under bf16 autocast the loss is still computed and returned in fp32;
//   - the NCCL communicator (world 1) runs its collectives on CUDA tensors;
//   - vicreg_worker trains a tiny job on CUDA in fp32, bf16 and fp16 (loss scaler), and its
//     checkpoint resumes; 200 bf16 steps keep a finite, falling loss and healthy diagnostics;
//   - a checkpoint written on CUDA resumes on CPU and one written on CPU resumes on CUDA;
//   - vicreg_eval extracts the same features with --device cuda as with --device cpu.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/safetensors.h"
#include "tests/train/test_util.h"
#include "worker/comm/communicator.h"
#include "worker/data/augment.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/amp.h"
#include "worker/train/loss.h"
#define VICREG_COMPAT_DEVICES
#include "worker/torch_compat.h"

namespace vicreg {
namespace {

bool HaveCuda() { return at::hasCUDA() && vicreg::compat::CudaDeviceCount() > 0; }

#define REQUIRE_CUDA() \
  if (!HaveCuda()) GTEST_SKIP() << "no CUDA device in this build/machine (CPU-only CI): GPU check skipped"

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

TEST(GpuAugment, CudaViewsEqualCpuViews) {
  REQUIRE_CUDA();
  at::manual_seed(3);
  auto images = at::randint(0, 256, {24, 3, 32, 32}, at::TensorOptions().dtype(at::kByte));
  config::AugmentConfig aug;                                              // facebookresearch's views: every op on
  for (const std::string order : {"photometric_first", "torchvision"}) {  // augment.order, both values
    aug.order = order;
    data::ViewAugmenterOptions vo;
    vo.order = data::AugmentOrderFromConfig(aug);
    for (int v = 0; v < 2; ++v) {
      const auto& vc = v == 0 ? aug.view1 : aug.view2;
      data::ViewAugmenter a(vc, 96, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}, vo);
      auto cpu = a(images, /*seed=*/1234 + v, /*first_sample=*/0);
      auto gpu = a(images.to(at::kCUDA), 1234 + v, 0);
      ASSERT_TRUE(gpu.is_cuda());
      ASSERT_EQ(cpu.sizes(), gpu.sizes());
      // Same draws, same ops; float differences only (normalized units, std 0.25 -> 1 level = 0.016).
      EXPECT_LT(MaxAbsDiff(cpu, gpu), 2e-3) << "order " << order << ", view " << v + 1;
    }
  }
}

model::VicregModelOptions TinyModel() {
  config::ModelConfig m;
  m.backbone_name = "vit_custom";
  m.image_size = 32;
  m.patch_size = 8;
  m.embed_dim = 64;
  m.depth = 2;
  m.num_heads = 2;
  config::VicregConfig v;
  v.proj_dim = 128;
  v.proj_hidden_dim = 128;
  return model::VicregModelOptions::FromConfig(m, v);
}

TEST(GpuModel, ForwardBackwardOnCudaEqualsCpu) {
  REQUIRE_CUDA();
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  at::manual_seed(5);
  model::VicregModel cpu_model(TinyModel());
  model::VicregModel gpu_model(TinyModel());
  {
    torch::NoGradGuard ng;
    auto src = cpu_model->named_parameters();
    for (auto& p : gpu_model->named_parameters()) p.value().copy_(src[p.key()]);
  }
  gpu_model->to(at::kCUDA);
  auto xa = at::randn({16, 3, 32, 32});
  auto xb = at::randn({16, 3, 32, 32});
  train::VicregLossOptions lo;
  auto run = [&](model::VicregModel& m, const at::Device& d) {
    auto out = m->forward_pair(xa.to(d), xb.to(d));
    auto l = train::VicregLoss(out.za, out.zb, out.za, out.zb, lo);
    m->zero_grad();
    l.total.backward();
    return std::make_pair(l.total.item<double>(), m->named_parameters());
  };
  auto [lc, pc] = run(cpu_model, at::kCPU);
  auto [lg, pg] = run(gpu_model, at::kCUDA);
  EXPECT_NEAR(lc, lg, 1e-4 * std::max(1.0, std::abs(lc)));
  for (auto& p : pc) {
    auto g = pg[p.key()].grad();
    ASSERT_TRUE(g.defined()) << p.key();
    double scale = std::max(1e-3, p.value().grad().abs().max().item<double>());
    EXPECT_LT(MaxAbsDiff(p.value().grad(), g) / scale, 1e-3) << p.key();
  }
}

TEST(GpuLoss, Bf16AutocastForwardKeepsTheLossInFp32) {
  REQUIRE_CUDA();
  at::manual_seed(6);
  model::VicregModel m(TinyModel());
  m->to(at::kCUDA);
  auto xa = at::randn({16, 3, 32, 32}, at::kCUDA), xb = at::randn({16, 3, 32, 32}, at::kCUDA);
  model::VicregPairOutput out;
  {
    train::AutocastScope ac(train::Precision::kBf16, /*cuda=*/true);
    out = m->forward_pair(xa, xb);
  }
  EXPECT_EQ(out.za.scalar_type(), at::kBFloat16) << "autocast should run the Linears in bf16";
  auto l = train::VicregLoss(out.za, out.zb, out.za, out.zb, train::VicregLossOptions{});
  EXPECT_EQ(l.total.scalar_type(), at::kFloat);
  EXPECT_EQ(l.covariance.scalar_type(), at::kFloat);
  EXPECT_TRUE(std::isfinite(l.total.item<double>()));
  l.total.backward();
  for (auto& p : m->parameters()) {
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().scalar_type(), at::kFloat);
    }
  }
}

TEST(GpuNccl, SingleRankCollectivesOnCudaTensors) {
  REQUIRE_CUDA();
  auto have = comm::AvailableBackends();
  if (std::find(have.begin(), have.end(), "nccl") == have.end()) GTEST_SKIP() << "built without VICREG_WITH_NCCL";
  comm::RankInfo info;  // world 1
  comm::CommunicatorOptions o;
  o.backend = "nccl";
  o.device = "cuda";
  auto comm = comm::CreateCommunicator(info, o);
  ASSERT_EQ(comm->backend(), "nccl");
  auto t = at::arange(8, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
  comm->AllReduceSum(t);
  EXPECT_EQ(MaxAbsDiff(t, at::arange(8, at::kFloat)), 0.0);
  auto w = comm->AllReduceSumAsync(t);
  w->Wait();
  auto g = comm->AllGather(at::ones({2, 3}, at::kCUDA));
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{2, 3}));
  comm->Broadcast(t, 0);
  comm->Barrier();
}

// ---- vicreg_worker on CUDA ---------------------------------------------------------------------

std::string WorkerBinary() { return std::string(VICREG_BINARY_DIR) + "/worker/vicreg_worker"; }

// A CIFAR-10 binary training file (official record layout: 1 label byte + 3072 pixel bytes) with
// 256 random images, so the job needs no dataset package on the GPU machine.
void WriteCifar(const std::string& dir) {
  std::ofstream f(dir + "/data_batch_1.bin", std::ios::binary);
  uint32_t s = 12345;
  for (int i = 0; i < 256; ++i) {
    f.put(static_cast<char>(i % 10));
    for (int k = 0; k < 3072; ++k) {
      s = s * 1664525u + 1013904223u;
      f.put(static_cast<char>((s >> 24) ^ (i * 7 + k / 1024 * 40)));
    }
  }
  for (int b = 2; b <= 5; ++b) {  // the reader expects the five training batches
    std::ofstream g(dir + "/data_batch_" + std::to_string(b) + ".bin", std::ios::binary);
    for (int i = 0; i < 16; ++i) {
      g.put(static_cast<char>(i % 10));
      for (int k = 0; k < 3072; ++k) g.put(static_cast<char>(k & 0xff));
    }
  }
}

std::string JobYaml(const std::string& data_dir, const std::string& precision, int num_epochs = 3) {
  std::ostringstream y;
  y << "name: gpu_tiny\nresources: {ranks: 1, device: cuda}\n"
    << "data: {dataset: cifar10, data_dir: " << data_dir << ", limit: 256, num_workers: 2}\n"
    << "model: {backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 64, depth: 2, num_heads: 2}\n"
    << "train: {batch_size: 32, num_epochs: " << num_epochs
    << ", warmup_epochs: 0, learning_rate: 0.001, log_every: 1, seed: 3,\n"
    << "        precision: " << precision << ", vicreg: {proj_dim: 128, proj_hidden_dim: 128}}\n"
    << "checkpoint: {every_epochs: 1, keep_last: 3}\n"
    << "metrics: {enabled: false}\n";
  return y.str();
}

// The values of `key` in every metrics.jsonl line that has a number there.
std::vector<double> Series(const std::string& metrics_jsonl, const std::string& key) {
  std::vector<double> out;
  std::istringstream in(testing::Slurp(metrics_jsonl));
  std::string line;
  const std::string needle = "\"" + key + "\":";
  while (std::getline(in, line)) {
    auto k = line.find(needle);
    if (k == std::string::npos) continue;
    const std::string rest = line.substr(k + needle.size());
    if (rest.rfind("null", 0) == 0) continue;
    out.push_back(std::stod(rest));
  }
  return out;
}

std::vector<double> Losses(const std::string& metrics_jsonl) { return Series(metrics_jsonl, "loss"); }

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

class GpuWorker : public ::testing::TestWithParam<std::string> {};

TEST_P(GpuWorker, TrainsTinyJobAndResumes) {
  REQUIRE_CUDA();
  const std::string precision = GetParam();
  auto dir = testing::MakeTempDir("gpu-" + precision);
  WriteCifar(dir);
  testing::WriteText(dir + "/job.yaml", JobYaml(dir, precision));
  auto r =
      testing::RunProcess({WorkerBinary(), "--job", dir + "/job.yaml", "--run-dir", dir + "/run", "--max-steps", "16"},
                          dir + "/out1.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto losses = Losses(dir + "/run/metrics.jsonl");
  ASSERT_EQ(losses.size(), 16u) << r.output;
  for (double l : losses) ASSERT_TRUE(std::isfinite(l)) << r.output;
  // The GPU memory of the rank's device (the vicreg_gpu_memory_* gauges) on every logged step.
  const auto allocated = Series(dir + "/run/metrics.jsonl", "gpu_mem_allocated");
  const auto peak = Series(dir + "/run/metrics.jsonl", "gpu_mem_max_allocated");
  const auto reserved = Series(dir + "/run/metrics.jsonl", "gpu_mem_reserved");
  ASSERT_EQ(allocated.size(), losses.size()) << "a CUDA rank reports its GPU memory at every logged step";
  ASSERT_EQ(peak.size(), losses.size());
  ASSERT_EQ(reserved.size(), losses.size());
  for (size_t i = 0; i < allocated.size(); ++i) {
    EXPECT_GT(allocated[i], 1 << 20) << "the model's parameters alone are on the GPU";
    EXPECT_GE(peak[i], allocated[i]);
    EXPECT_GE(reserved[i], allocated[i]);
  }
  // Resume to the end of the 3 epochs (24 steps): continues from the step-16 checkpoint.
  r = testing::RunProcess({WorkerBinary(), "--job", dir + "/job.yaml", "--run-dir", dir + "/run", "--resume", "auto"},
                          dir + "/out2.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resum"), std::string::npos) << r.output;
  losses = Losses(dir + "/run/metrics.jsonl");
  EXPECT_EQ(losses.size(), 24u) << "metrics.jsonl must hold each step once after a resume";
  EXPECT_TRUE(testing::PathExists(dir + "/run/checkpoints/epoch_0003.pt"));
  std::printf("[gpu %s] first loss %.4f last loss %.4f\n", precision.c_str(), losses.front(), losses.back());
  testing::RemoveTree(dir);
}

INSTANTIATE_TEST_SUITE_P(Precisions, GpuWorker, ::testing::Values("fp32", "bf16", "fp16"));

TEST(GpuWorkerLong, Bf16TwoHundredStepsFallAndStayHealthy) {
  REQUIRE_CUDA();
  auto dir = testing::MakeTempDir("gpu-long");
  WriteCifar(dir);
  testing::WriteText(dir + "/job.yaml", JobYaml(dir, "bf16", /*num_epochs=*/25));  // 25 x 8 = 200 steps
  auto r = testing::RunProcess({WorkerBinary(), "--job", dir + "/job.yaml", "--run-dir", dir + "/run"},
                               dir + "/out.txt", 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string m = dir + "/run/metrics.jsonl";
  auto losses = Losses(m);
  ASSERT_EQ(losses.size(), 200u) << r.output;
  for (double l : losses) ASSERT_TRUE(std::isfinite(l)) << r.output;
  const double first = Mean(losses, 0, 20), last = Mean(losses, 180, 200);
  EXPECT_LT(last, first - 0.3) << "the bf16 loss must fall over 200 steps";
  auto std_min = Series(m, "std_min"), sim = Series(m, "pairwise_sim");
  ASSERT_FALSE(std_min.empty());
  ASSERT_FALSE(sim.empty());
  EXPECT_GT(std_min.back(), 0.01) << "collapsed dimensions after 200 bf16 steps";
  EXPECT_LT(sim.back(), 0.9) << "feature collapse after 200 bf16 steps";
  std::printf("[gpu bf16 200 steps] loss %.4f -> %.4f, std_min %.3f, pairwise_sim %.3f\n", first, last, std_min.back(),
              sim.back());
  testing::RemoveTree(dir);
}

// A checkpoint written on CUDA resumes on CPU, and the CPU one resumes on CUDA (optimizer state,
// RNG and model move between devices).
TEST(GpuWorkerLong, CheckpointsMoveBetweenCudaAndCpu) {
  REQUIRE_CUDA();
  auto dir = testing::MakeTempDir("gpu-xdev");
  WriteCifar(dir);
  testing::WriteText(dir + "/job.yaml", JobYaml(dir, "fp32"));
  const std::string job = dir + "/job.yaml", run = dir + "/run";
  auto r =
      testing::RunProcess({WorkerBinary(), "--job", job, "--run-dir", run, "--max-steps", "8"}, dir + "/o1.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = testing::RunProcess(
      {WorkerBinary(), "--job", job, "--run-dir", run, "--resume", "auto", "--device", "cpu", "--max-steps", "16"},
      dir + "/o2.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << "CUDA checkpoint -> CPU:\n" << r.output;
  EXPECT_EQ(Losses(run + "/metrics.jsonl").size(), 16u);
  r = testing::RunProcess({WorkerBinary(), "--job", job, "--run-dir", run, "--resume", "auto", "--device", "cuda"},
                          dir + "/o3.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << "CPU checkpoint -> CUDA:\n" << r.output;
  auto losses = Losses(run + "/metrics.jsonl");
  ASSERT_EQ(losses.size(), 24u);
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
  EXPECT_TRUE(testing::PathExists(run + "/checkpoints/epoch_0003.pt"));
  testing::RemoveTree(dir);
}

// vicreg_eval extract: --device cuda gives the CPU features (fp32, within GEMM rounding).
TEST(GpuEval, ExtractOnCudaEqualsCpu) {
  REQUIRE_CUDA();
  auto dir = testing::MakeTempDir("gpu-eval");
  WriteCifar(dir);
  testing::WriteText(dir + "/job.yaml", JobYaml(dir, "fp32", 1));
  auto r =
      testing::RunProcess({WorkerBinary(), "--job", dir + "/job.yaml", "--run-dir", dir + "/run"}, dir + "/o.txt", 300);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string eval_bin = std::string(VICREG_BINARY_DIR) + "/worker/eval/vicreg_eval";
  std::vector<at::Tensor> feats;
  for (const std::string device : {"cpu", "cuda"}) {
    const std::string out = dir + "/f_" + device + ".safetensors";
    r = testing::RunProcess(
        {eval_bin, "extract", "--checkpoint", dir + "/run/checkpoints/epoch_0001.pt", "--dataset", "cifar10",
         "--data-dir", dir, "--split", "train", "--limit", "128", "--device", device, "--out", out, "--quiet"},
        dir + "/e_" + device + ".txt", 300);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string bytes = testing::Slurp(out);
    const auto header = safetensors::ParseHeader(bytes, out);
    const auto* t = header.Find("features");
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(t->dtype, safetensors::DType::kF32);
    const auto view = safetensors::TensorBytes(bytes, header, *t);
    feats.push_back(at::from_blob(const_cast<char*>(view.data()), t->shape, at::kFloat).clone());
  }
  ASSERT_TRUE(feats[0].sizes().equals(feats[1].sizes()));
  EXPECT_LT(MaxAbsDiff(feats[0], feats[1]), 1e-3);
  testing::RemoveTree(dir);
}

}  // namespace
}  // namespace vicreg
