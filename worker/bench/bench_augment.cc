// vicreg_bench augment: two-view VICReg augmentation throughput (docs/ARCHITECTURE.md "Benchmarks").
//
//   vicreg_bench augment --batch-size 256 --source-size 32 --image-size 96 [--threads T (2)] [--iters N]
//                        [--device cpu|cuda] [--order photometric_first|torchvision|both] [--blas-threads 1]
//
// Sources are random uint8 CIFAR-like images; every op is on with the default view parameters
// (config::AugmentConfig: view1 blur 1.0 / solarize 0, view2 blur 0.1 / solarize 0.2). T threads
// each augment whole batches (like the loader's workers; ATen intra-op threads: --intra-op-threads;
// OpenBLAS threads: --blas-threads, default 1 per process, since the views' GEMMs are small).
// images_per_s counts source images turned into two views. The torchvision reference is
// worker/bench/reference_augment.py (same recipe, DataLoader with 2 worker processes).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/errors.h"
#include "common/host_memory.h"
#include "worker/bench/bench.h"
#include "worker/data/augment.h"
#include "worker/data/runtime_tuning.h"

namespace vicreg::bench {
namespace {

// CPU seconds of the whole process (all threads): a throughput measure that holds when other
// jobs share the machine (wall-clock images/s does not).
double ProcessCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

int BenchAugment(int argc, char** argv) {
  CLI::App app{"Two-view augmentation throughput (images/s; one image = two augmented views)", "vicreg_bench augment"};
  int batch = 256, source = 32, image = 96, threads = 2, intra = 1, blas = 1, iters = 10;
  uint64_t seed = 0;
  std::string device = "cpu", order = "both";
  app.add_option("--batch-size", batch, "images per batch")->check(CLI::Range(1, 1 << 20));
  app.add_option("--source-size", source, "source image side (px)")->check(CLI::Range(1, 4096));
  app.add_option("--image-size", image, "view side (px)")->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "concurrent batches (loader-like worker threads)")->check(CLI::Range(1, 256));
  app.add_option("--intra-op-threads", intra, "ATen intra-op threads")->check(CLI::Range(1, 256));
  app.add_option("--blas-threads", blas, "OpenBLAS threads (process-wide; 0 = leave as is)")->check(CLI::Range(0, 256));
  app.add_option("--iters", iters, "timed batches per thread (after one warm-up batch)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--device", device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--order", order, "execution order: photometric_first | torchvision | both")
      ->check(CLI::IsMember({"photometric_first", "torchvision", "both"}));
  app.add_option("--seed", seed, "seed of the source images and the augmentations");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (device == "cuda" && !at::hasCUDA())
    throw UserError("--device cuda: this LibTorch build has no CUDA (or no GPU is visible); use --device cpu");
  at::set_num_threads(intra);
  TuneHostAllocator();  // what the worker and the Loader do: no page faults on every fresh view tensor
  const bool blas_set = blas > 0 && data::SetBlasThreads(blas);
  const at::Device dev = device == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);

  config::AugmentConfig cfg;  // the defaults: every op on, facebookresearch asymmetric views
  const std::array<double, 3> mean = {0.4914, 0.4822, 0.4465}, sd = {0.2470, 0.2435, 0.2616};
  std::vector<std::pair<std::string, data::AugmentOrder>> orders;
  if (order != "torchvision") orders.emplace_back("photometric_first", data::AugmentOrder::kPhotometricFirst);
  if (order != "photometric_first") orders.emplace_back("torchvision", data::AugmentOrder::kTorchvision);

  at::manual_seed(seed);
  std::vector<at::Tensor> sources;
  for (int t = 0; t < threads; ++t)
    sources.push_back(at::randint(0, 256, {batch, 3, source, source}, at::kByte).to(dev));

  for (const auto& [name, ord] : orders) {
    data::ViewAugmenterOptions opts;
    opts.order = ord;
    const data::ViewAugmenter v1(cfg.view1, image, mean, sd, opts), v2(cfg.view2, image, mean, sd, opts);
    auto run_batch = [&](const at::Tensor& src, uint64_t s) {
      at::Tensor a = v1(src, s * 2 + 1), b = v2(src, s * 2 + 2);
      if (dev.is_cuda()) (a.sum() + b.sum()).item<float>();  // wait for the device
      return a.size(0);
    };
    for (int t = 0; t < threads; ++t) run_batch(sources[static_cast<size_t>(t)], seed + 1000 + t);  // warm-up
    std::atomic<int64_t> images{0};
    const double cpu0 = ProcessCpuSeconds();
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        at::set_num_threads(intra);
        for (int i = 0; i < iters; ++i)
          images += run_batch(sources[static_cast<size_t>(t)], seed + (t + 1) * 1000003ull + i);
      });
    for (auto& th : pool) th.join();
    const double secs = Since(t0);
    const double cpu = ProcessCpuSeconds() - cpu0;
    nlohmann::json j = {{"benchmark", "augment"},
                        {"order", name},
                        {"device", device},
                        {"batch_size", batch},
                        {"source_size", source},
                        {"image_size", image},
                        {"threads", threads},
                        {"intra_op_threads", intra},
                        {"blas_threads", blas_set ? nlohmann::json(blas) : nlohmann::json("library default")},
                        {"iters", iters},
                        {"seconds", secs},
                        {"cpu_seconds", cpu},
                        {"images_per_s", static_cast<double>(images.load()) / secs},
                        {"images_per_cpu_s", static_cast<double>(images.load()) / cpu},
                        {"views_per_s", 2.0 * static_cast<double>(images.load()) / secs}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace

VICREG_BENCH("augment", "two-view augmentation images/s (vs worker/bench/reference_augment.py)", BenchAugment);

}  // namespace vicreg::bench
