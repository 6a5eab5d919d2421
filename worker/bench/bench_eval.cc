// vicreg_bench eval: the costs of vicreg_eval (issue 7 performance targets).
//   extract  frozen-feature extraction (EvalTransform + ViT forward, no autograd) images/s, per thread count
//   probe    linear-probe fit (L2 selection on a held-out 10% + refit) on N x D synthetic features
//   knn      weighted kNN of Q queries against a bank of N features
// One JSON line per result, each with an images_per_s field (features or queries per second for
// probe/knn) and seconds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/bench/bench.h"
#include "worker/data/augment.h"
#include "worker/eval/knn.h"
#include "worker/eval/linear_probe.h"
#include "worker/eval/topk.h"
#include "worker/model/vit.h"

namespace vicreg::bench {
namespace {

std::vector<int> ParseThreads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int t = std::stoi(item, &used);
      if (used != item.size() || t < 1) throw std::invalid_argument("");
      out.push_back(t);
    } catch (const std::exception&) {
      throw UserError("--threads: expected a comma-separated list of positive integers (e.g. 1,2), got '" + s + "'");
    }
  }
  if (out.empty()) throw UserError("--threads: empty list");
  return out;
}

struct EvalBenchArgs {
  std::string what = "all";  // extract | probe | knn | all
  std::string threads = "1,2";
  // extract
  std::string model = "vit_small";
  int image_size = 96, source_size = 32, batch_size = 64, batches = 4;
  // probe
  int64_t n = 50000;
  int dim = 384, classes = 10;
  // knn
  int64_t queries = 10000, bank = 50000;
  int k = 20;
  uint64_t seed = 0;
};

void Print(const nlohmann::json& j) {
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

void BenchExtract(const EvalBenchArgs& a, int threads) {
  at::set_num_threads(threads);
  auto opts = model::VitOptions::FromName(a.model, a.image_size);
  at::manual_seed(a.seed);
  model::VisionTransformer vit(opts);
  vit->eval();
  auto images =
      at::randint(0, 256, {a.batch_size, 3, a.source_size, a.source_size}, at::TensorOptions().dtype(at::kByte));
  const std::array<double, 3> mean = {0.5, 0.5, 0.5}, std = {0.25, 0.25, 0.25};
  at::NoGradGuard no_grad;
  auto run = [&] { return vit->forward(data::EvalTransform(images, a.image_size, mean, std)); };
  run();  // warm-up (allocator, OpenBLAS threads)
  const auto t0 = Clock::now();
  for (int i = 0; i < a.batches; ++i) run();
  const double secs = Since(t0);
  const int64_t n = static_cast<int64_t>(a.batches) * a.batch_size;
  Print({{"bench", "eval"},
         {"what", "extract"},
         {"model", a.model},
         {"image_size", a.image_size},
         {"source_size", a.source_size},
         {"batch_size", a.batch_size},
         {"threads", threads},
         {"images", n},
         {"seconds", secs},
         {"images_per_s", n / secs}});
}

void BenchProbe(const EvalBenchArgs& a, int threads) {
  at::set_num_threads(threads);
  // Overlapping, correlated clusters (like SSL features): class means + noise mixed by a random matrix.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(a.seed);
  auto y = at::randint(a.classes, {a.n}, gen, at::TensorOptions().dtype(at::kLong));
  auto centers = at::randn({a.classes, a.dim}, gen, at::TensorOptions()) * 0.12;
  auto mix = at::randn({a.dim, a.dim}, gen, at::TensorOptions()) / std::sqrt(static_cast<double>(a.dim));
  auto x = at::mm(centers.index_select(0, y) + at::randn({a.n, a.dim}, gen, at::TensorOptions()), mix);
  const int64_t n_test = std::max<int64_t>(1, a.n / 5);
  auto yt = at::randint(a.classes, {n_test}, gen, at::TensorOptions().dtype(at::kLong));
  auto xt = at::mm(centers.index_select(0, yt) + at::randn({n_test, a.dim}, gen, at::TensorOptions()), mix);
  const auto t0 = Clock::now();
  auto clf = eval::FitLinearProbe(x, y, a.classes);
  const double secs = Since(t0);
  int64_t evals = 0;
  for (const auto& f : clf.fits) evals += f.function_evals;
  Print({{"bench", "eval"},
         {"what", "linear_probe"},
         {"n", a.n},
         {"dim", a.dim},
         {"classes", a.classes},
         {"threads", threads},
         {"l2", clf.l2},
         {"fits", clf.fits.size()},
         {"function_evals", evals},
         {"test_top1", eval::TopKAccuracy(clf.Scores(xt), yt, 1)},
         {"seconds", secs},
         {"images_per_s", static_cast<double>(a.n) / secs}});
}

void BenchKnn(const EvalBenchArgs& a, int threads) {
  at::set_num_threads(threads);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(a.seed + 1);
  auto bank = at::randn({a.bank, a.dim}, gen, at::TensorOptions());
  auto labels = at::randint(a.classes, {a.bank}, gen, at::TensorOptions().dtype(at::kLong));
  auto q = at::randn({a.queries, a.dim}, gen, at::TensorOptions());
  auto ql = at::randint(a.classes, {a.queries}, gen, at::TensorOptions().dtype(at::kLong));
  eval::KnnOptions ko;
  ko.k = a.k;
  const auto t0 = Clock::now();
  auto r = eval::KnnClassify(bank, labels, q, ql, a.classes, ko);
  const double secs = Since(t0);
  Print({{"bench", "eval"},
         {"what", "knn"},
         {"queries", a.queries},
         {"bank", a.bank},
         {"dim", a.dim},
         {"k", a.k},
         {"threads", threads},
         {"top1", r.top1},
         {"seconds", secs},
         {"images_per_s", static_cast<double>(a.queries) / secs}});
}

int RunEval(int argc, char** argv) {
  EvalBenchArgs a;
  CLI::App app{
      "vicreg_bench eval: feature extraction images/s, linear-probe fit time, kNN time "
      "(targets: probe 50000x384x10 < 60 s, kNN 10k x 50k < 10 s on 2 cores)"};
  app.add_option("--what", a.what, "extract | probe | knn | all")
      ->check(CLI::IsMember({"extract", "probe", "knn", "all"}))
      ->capture_default_str();
  app.add_option("--threads", a.threads, "comma-separated ATen intra-op thread counts, one result each")
      ->capture_default_str();
  app.add_option("--model", a.model, "extract: vit_tiny | vit_small | vit_base")->capture_default_str();
  app.add_option("--image-size,--image_size", a.image_size, "extract: encoder input size")->capture_default_str();
  app.add_option("--source-size,--source_size", a.source_size, "extract: stored image size (resized by EvalTransform)")
      ->capture_default_str();
  app.add_option("--batch-size,--batch_size", a.batch_size, "extract: batch size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batches", a.batches, "extract: measured batches")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--n", a.n, "probe: training features; knn: see --bank")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dim", a.dim, "probe/knn: feature dim")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--classes", a.classes, "probe/knn: classes")->check(CLI::Range(2, 100000))->capture_default_str();
  app.add_option("--queries", a.queries, "knn: queries")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--bank", a.bank, "knn: bank size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--k", a.k, "knn: neighbours")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", a.seed, "synthetic data seed")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    throw UserError(e.what());
  }
  const auto threads = ParseThreads(a.threads);
  for (int t : threads) {
    if (a.what == "extract" || a.what == "all") BenchExtract(a, t);
    if (a.what == "probe" || a.what == "all") BenchProbe(a, t);
    if (a.what == "knn" || a.what == "all") BenchKnn(a, t);
  }
  return kExitOk;
}

}  // namespace

VICREG_BENCH("eval", "vicreg_eval costs: feature extraction images/s, linear-probe fit, kNN", RunEval);

}  // namespace vicreg::bench
