// vicreg_bench train: full VICReg training steps on synthetic tensors (no data loading):
// two views -> encoder + projector -> loss -> backward -> global-norm clip -> AdamW step
// (-> collapse diagnostics unless --no-diagnostics) (-> Prometheus metrics with --metrics, as
// vicreg_worker exports them). Prints one JSON line.
// worker/bench/reference_train.py is the PyTorch (Python) implementation with the same flags.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/optim/optimizer.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/host_memory.h"
#include "common/metrics.h"
#include "common/step_report.h"
#include "worker/bench/bench.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/amp.h"
#include "worker/train/diagnostics.h"
#include "worker/train/grad_clip.h"
#include "worker/train/loss.h"
#include "worker/train/optimizer.h"

namespace vicreg::bench {
namespace {

struct TrainBenchArgs {
  std::string model = "vit_small";
  int patch_size = 16, embed_dim = 384, depth = 12, heads = 6;
  int image_size = 96, batch_size = 32, steps = 5, warmup_steps = 1, threads = 1;
  int proj_dim = 2048, proj_hidden_dim = 2048;
  bool no_diagnostics = false;
  bool metrics = false;  // WorkerMetrics on a loopback /metrics endpoint, updated every step
  uint64_t seed = 0;
  std::string profile;             // chrome trace of the measured steps (LibTorch legacy profiler)
  std::string device = "cpu";      // cpu | cuda
  std::string precision = "fp32";  // fp32 | bf16 | fp16 (autocast forward on CUDA; loss in fp32)
};

void Check(bool ok, const std::string& flag, const std::string& msg) {
  if (!ok) throw UserError(flag + ": " + msg);
}

int RunTrain(int argc, char** argv) {
  TrainBenchArgs a;
  CLI::App app{
      "vicreg_bench train: VICReg training steps (forward both views, loss, backward, clip, AdamW) "
      "on synthetic images; prints {\"bench\":\"train\",\"impl\":\"cpp\",...,\"images_per_s\":...}"};
  app.add_option("--model", a.model, "vit_tiny | vit_small | vit_base | custom (long timm names accepted)")
      ->capture_default_str();
  app.add_option("--patch-size", a.patch_size, "custom: patch size")->capture_default_str();
  app.add_option("--embed-dim", a.embed_dim, "custom: embedding dim")->capture_default_str();
  app.add_option("--depth", a.depth, "custom: number of blocks")->capture_default_str();
  app.add_option("--heads", a.heads, "custom: attention heads")->capture_default_str();
  app.add_option("--image-size", a.image_size, "image side S (divisible by the patch)")->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "images per step (each gives two views)")->capture_default_str();
  app.add_option("--steps", a.steps, "measured steps")->capture_default_str();
  app.add_option("--warmup-steps", a.warmup_steps, "unmeasured steps first")->capture_default_str();
  app.add_option("--threads", a.threads, "ATen intra-op threads (0 = library default)")->capture_default_str();
  app.add_option("--proj-dim", a.proj_dim, "projector output dim")->capture_default_str();
  app.add_option("--proj-hidden-dim", a.proj_hidden_dim, "projector hidden dim")->capture_default_str();
  app.add_flag("--no-diagnostics", a.no_diagnostics, "skip the per-step collapse diagnostics");
  app.add_flag("--metrics", a.metrics,
               "export every step through WorkerMetrics on 127.0.0.1:<free port>/metrics (OnStep + OnReport)");
  app.add_option("--device", a.device, "cpu | cuda (cuda:N accepted)")->capture_default_str();
  app.add_option("--precision", a.precision, "fp32 | bf16 | fp16 (bf16/fp16: CUDA autocast forward, fp32 loss)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  app.add_option("--seed", a.seed, "RNG seed for weights and inputs")->capture_default_str();
  app.add_option("--profile", a.profile, "write a chrome://tracing trace of the measured steps to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  Check(a.batch_size >= 2, "--batch-size",
        "must be >= 2 (BatchNorm and the variance term), got " + std::to_string(a.batch_size));
  Check(a.steps >= 1, "--steps", "must be >= 1, got " + std::to_string(a.steps));
  Check(a.warmup_steps >= 0, "--warmup-steps", "must be >= 0, got " + std::to_string(a.warmup_steps));
  Check(a.threads >= 0, "--threads", "must be >= 0, got " + std::to_string(a.threads));
  Check(a.proj_dim >= 1, "--proj-dim", "must be >= 1, got " + std::to_string(a.proj_dim));
  Check(a.proj_hidden_dim >= 1, "--proj-hidden-dim", "must be >= 1, got " + std::to_string(a.proj_hidden_dim));
  Check(a.device == "cpu" || a.device.rfind("cuda", 0) == 0, "--device", "must be cpu or cuda[:N], got " + a.device);
  const c10::Device device(a.device);
  const bool cuda = device.is_cuda();
  Check(!cuda || at::hasCUDA(), "--device", "cuda requested but this build/machine has no CUDA");
  Check(cuda || a.precision == "fp32", "--precision", a.precision + " needs --device cuda (CPU runs fp32)");
  if (a.threads > 0) at::set_num_threads(a.threads);
  const bool retained = TuneHostAllocator();  // as vicreg_worker does

  model::VitOptions custom;
  custom.patch_size = a.patch_size, custom.embed_dim = a.embed_dim, custom.depth = a.depth, custom.num_heads = a.heads;
  model::VicregModelOptions mo;
  try {
    mo.encoder = model::VitOptions::FromName(a.model, a.image_size, custom);
  } catch (const UserError& e) {
    // The model-config field names map to this tool's flags.
    throw UserError(std::string(e.what()) +
                    " (flags: --model, --image-size, --patch-size, --embed-dim, --depth, --heads)");
  }
  mo.projector = model::ProjectorOptions(mo.encoder.embed_dim, a.proj_hidden_dim, a.proj_dim, 3);

  at::manual_seed(a.seed);
  model::VicregModel net(mo);
  net->to(device);
  net->train();
  auto params = net->parameters();
  train::OptimizerOptions oo;  // the seed's defaults: AdamW lr 1e-3, wd 1e-4
  auto opt = train::BuildOptimizer(net->param_groups(), oo);
  const train::VicregLossOptions lo;
  const int64_t B = a.batch_size, S = a.image_size;
  auto xa = at::randn({B, 3, S, S}).to(device);
  auto xb = at::randn({B, 3, S, S}).to(device);
  const train::Precision precision = train::ParsePrecision(a.precision);  // --precision is checked by CLI11
  train::LossScaler scaler(cuda && precision == train::Precision::kFp16);

  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::unique_ptr<metrics::WorkerMetrics> worker_metrics;
  if (a.metrics) {
    metrics_server = std::make_unique<metrics::MetricsServer>("127.0.0.1", 0);
    worker_metrics = std::make_unique<metrics::WorkerMetrics>(metrics_server->registry(), "bench", 0);
  }

  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);  // all threads of the process (incl. BLAS threads)
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  };
  std::vector<double> times, cpu_times;
  double loss_first = 0, loss_last = 0;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profiler;
  for (int s = 0; s < a.warmup_steps + a.steps; ++s) {
    if (s == a.warmup_steps && !a.profile.empty())
      profiler = std::make_unique<torch::autograd::profiler::RecordProfile>(a.profile);
    const auto t0 = Clock::now();
    const double c0 = cpu_now();
    for (auto& p : params) p.mutable_grad() = at::Tensor();  // zero_grad(set_to_none=True)
    model::VicregPairOutput out;
    {
      train::AutocastScope autocast(precision, cuda);  // as the trainer: forward only
      out = net->forward_pair(xa, xb);
    }
    auto loss = train::VicregLoss(out.za, out.zb, out.za, out.zb, lo);  // fp32
    scaler.Scale(loss.total).backward();
    scaler.Unscale(params);
    train::ClipGradNorm(params, 1.0);
    opt->step();
    train::Diagnostics diag;
    if (!a.no_diagnostics) diag = train::ComputeDiagnostics(out.za, out.features_a);
    const double lv = loss.total.item<double>();
    if (worker_metrics) {  // what the trainer reports at a logged step
      StepReport r;
      r.step = s + 1;
      r.epoch = 1;
      r.loss = lv;
      r.invariance = loss.invariance.item<double>();
      r.variance = loss.variance.item<double>();
      r.covariance = loss.covariance.item<double>();
      if (!a.no_diagnostics) train::FillReport(diag, &r);
      r.lr = oo.lr;
      r.samples = B;
      r.images_per_s = s > a.warmup_steps ? B / times.back() : 0;
      worker_metrics->OnStep(Since(t0), B, 0.0);
      worker_metrics->OnReport(r);
    }
    const double step_s = Since(t0);
    const double c1 = cpu_now();
    if (s == 0) loss_first = lv;
    loss_last = lv;
    if (s >= a.warmup_steps) {
      times.push_back(step_s);
      cpu_times.push_back(c1 - c0);
    }
  }
  profiler.reset();  // flushes the trace
  const double mean_s = std::accumulate(times.begin(), times.end(), 0.0) / times.size();
  const double min_s = *std::min_element(times.begin(), times.end());
  const double cpu_s = std::accumulate(cpu_times.begin(), cpu_times.end(), 0.0) / cpu_times.size();
  int64_t nparams = 0;
  for (const auto& p : params) nparams += p.numel();
  nlohmann::json j = {{"bench", "train"},
                      {"impl", "cpp"},
                      {"model", a.model},
                      {"patch_size", mo.encoder.patch_size},
                      {"embed_dim", mo.encoder.embed_dim},
                      {"depth", mo.encoder.depth},
                      {"heads", mo.encoder.num_heads},
                      {"image_size", a.image_size},
                      {"batch_size", a.batch_size},
                      {"proj_dim", a.proj_dim},
                      {"proj_hidden_dim", a.proj_hidden_dim},
                      {"diagnostics", !a.no_diagnostics},
                      {"metrics", a.metrics},
                      {"host_memory_retained", retained},
                      {"steps", a.steps},
                      {"threads", at::get_num_threads()},
                      {"device", a.device},
                      {"precision", a.precision},
                      {"params", nparams},
                      {"images_per_s", a.batch_size / mean_s},
                      {"step_ms", mean_s * 1e3},
                      {"step_ms_min", min_s * 1e3},
                      {"cpu_ms", cpu_s * 1e3},  // process CPU time per step (robust to a busy machine)
                      {"loss_first", loss_first},
                      {"loss_last", loss_last}};
  std::printf("%s\n", j.dump().c_str());
  return kExitOk;
}

}  // namespace

VICREG_BENCH("train", "VICReg training steps on synthetic images (C++; reference_train.py is the Python twin)",
             RunTrain);

}  // namespace vicreg::bench
