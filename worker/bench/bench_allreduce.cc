// vicreg_bench allreduce: communication benchmarks, run under the launcher
//   mpirun -np 2 vicreg_bench allreduce --bytes 16M [--iters 20] [--backend mpi|gloo]
//     gradient all-reduce bandwidth: {"bench":"allreduce",...,"ms_per_op","bytes_per_s","bus_bytes_per_s"}
//   mpirun -np 2 vicreg_bench allreduce --gather-loss [--global-stats both|allreduce|gather]
//                [--model vit_tiny --image-size 32 --global-batch 64 | --batch-per-rank 32 ...]
//     a full data-parallel VICReg step (SyncBN projector, loss, bucketed gradient sync, AdamW) per
//     train.vicreg.global_stats mode, at a fixed global batch (strong scaling) or a fixed batch per
//     rank (--batch-per-rank, weak scaling), with the loss's collectives counted per step (calls,
//     payload and bus bytes, time inside them) and the loss alone (forward + backward) timed.
//     Rank 0 prints one JSON line per mode; times are the max over ranks per step.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/optim/optimizer.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "common/errors.h"
#include "worker/bench/bench.h"
#include "worker/comm/communicator.h"
#include "worker/comm/grad_sync.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/grad_clip.h"
#include "worker/train/loss.h"
#include "worker/train/optimizer.h"

namespace vicreg::bench {
namespace {

// "16M" -> 16777216; plain integers; K/M/G are powers of 1024.
int64_t ParseBytes(const std::string& s) {
  if (s.empty()) throw UserError("--bytes: empty value; give a byte count such as 4096, 64K, 16M or 1G");
  size_t pos = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &pos);
  } catch (const std::exception&) {
    throw UserError("--bytes '" + s + "' is not a byte count (e.g. 4096, 64K, 16M, 1G)");
  }
  int64_t mult = 1;
  if (pos < s.size()) {
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(s[pos])));
    mult = u == 'K' ? 1024LL : u == 'M' ? 1024LL * 1024 : u == 'G' ? 1024LL * 1024 * 1024 : 0;
    if (mult == 0 || pos + 1 != s.size()) throw UserError("--bytes '" + s + "': unknown suffix (valid: K, M, G)");
  }
  if (v * mult < 4) throw UserError("--bytes " + s + " is too small: at least 4 (one float32)");
  if (v * mult > (1LL << 33)) throw UserError("--bytes " + s + " is too large: at most 8G");
  return v * mult;
}

// Max over ranks (the slowest rank defines the step), as a double.
double MaxOverRanks(comm::Communicator& c, double v) {
  at::Tensor t = at::full({1}, v, at::kDouble);
  at::Tensor all = c.AllGather(t);
  return all.max().item<double>();
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / std::max<size_t>(1, v.size());
}

struct Args {
  std::string bytes = "16M";
  int iters = 20, warmup = 3, threads = 1;
  std::string backend = "auto";
  double timeout_s = 120;
  bool gather_loss = false;
  // --gather-loss: the model and step
  std::string model = "vit_tiny";
  int patch_size = 16, embed_dim = 192, depth = 12, heads = 3;
  int image_size = 32, global_batch = 64, proj_dim = 512, proj_hidden_dim = 512;
  int steps = 5;
  int batch_per_rank = 0;             // > 0: global batch = W x this (weak scaling)
  std::string global_stats = "both";  // allreduce | gather | both
};

int RunAllReduce(comm::Communicator& c, const Args& a) {
  const int64_t bytes = ParseBytes(a.bytes);
  const int64_t n = bytes / 4;
  at::Tensor t = at::ones({n}, at::kFloat);
  for (int i = 0; i < a.warmup; ++i) c.AllReduceSum(t);
  c.Barrier();
  std::vector<double> per_op;
  for (int i = 0; i < a.iters; ++i) {
    t.fill_(1.f);
    const auto t0 = Clock::now();
    c.AllReduceSum(t);
    per_op.push_back(MaxOverRanks(c, Since(t0)));
  }
  const float expect = static_cast<float>(c.world_size());
  if (t[0].item<float>() != expect || t[n - 1].item<float>() != expect) {
    throw RuntimeFailure("allreduce produced " + std::to_string(t[0].item<float>()) + ", expected " +
                         std::to_string(expect));
  }
  std::sort(per_op.begin(), per_op.end());
  const double mean = Mean(per_op), median = per_op[per_op.size() / 2];
  const int w = c.world_size();
  if (c.rank() == 0) {
    nlohmann::json j = {
        {"bench", "allreduce"},
        {"backend", c.backend()},
        {"world_size", w},
        {"bytes", n * 4},
        {"iters", a.iters},
        {"threads", at::get_num_threads()},
        {"ms_per_op", mean * 1e3},
        {"ms_per_op_median", median * 1e3},
        {"ms_per_op_min", per_op.front() * 1e3},
        {"bytes_per_s", n * 4 / median},                                         // algorithm bandwidth
        {"bus_bytes_per_s", w > 1 ? n * 4 / median * 2.0 * (w - 1) / w : 0.0}};  // NCCL-tests convention
    std::printf("%s\n", j.dump().c_str());
  }
  return kExitOk;
}

// Forwards every collective to `inner` and counts what the loss hands to it (one step's worth
// between Reset() calls): calls, payload bytes (all-reduce: the tensor; all-gather: the gathered
// output), bus bytes (what each rank sends = receives under ring algorithms, the NCCL-tests
// convention: all-reduce 2(W-1)/W x size, all-gather (W-1)/W x output) and seconds spent inside.
class CountingCommunicator : public comm::Communicator {
 public:
  explicit CountingCommunicator(comm::Communicator& inner) : inner_(inner) {}
  struct Counts {
    int64_t calls = 0;
    double payload_bytes = 0, bus_bytes = 0, seconds = 0;
  };
  const Counts& counts() const { return counts_; }
  void Reset() { counts_ = Counts(); }

  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::string backend() const override { return inner_.backend(); }
  c10::Device device() const override { return inner_.device(); }
  bool SupportsAsync() const override { return inner_.SupportsAsync(); }
  void AllReduceSum(at::Tensor& t) override {
    const auto t0 = Clock::now();
    inner_.AllReduceSum(t);
    Note(t.nbytes(), 2.0, Since(t0));
  }
  std::unique_ptr<comm::Work> AllReduceSumAsync(at::Tensor& t) override {
    Note(t.nbytes(), 2.0, 0.0);  // the loss issues none; time would be the Wait's
    return inner_.AllReduceSumAsync(t);
  }
  at::Tensor AllGather(const at::Tensor& t) override {
    const auto t0 = Clock::now();
    at::Tensor out = inner_.AllGather(t);
    Note(out.nbytes(), 1.0, Since(t0));
    return out;
  }
  void Broadcast(at::Tensor& t, int root) override {
    const auto t0 = Clock::now();
    inner_.Broadcast(t, root);
    Note(t.nbytes(), 1.0, Since(t0));
  }
  void Barrier() override { inner_.Barrier(); }
  [[noreturn]] void Abort(int exit_code, const std::string& reason) override {
    inner_.Abort(exit_code, reason);
    std::abort();  // not reached: inner_.Abort never returns (the compiler cannot see it through the reference)
  }

 private:
  void Note(size_t bytes, double passes, double seconds) {
    const int w = inner_.world_size();
    ++counts_.calls;
    counts_.payload_bytes += static_cast<double>(bytes);
    counts_.bus_bytes += passes * static_cast<double>(bytes) * (w - 1) / w;
    counts_.seconds += seconds;
  }
  comm::Communicator& inner_;
  Counts counts_;
};

// Bytes per step of the loss's collectives for both modes, in closed form (float32, per rank of W
// with B rows each, P = projector dim): see CountingCommunicator for payload vs bus bytes.
//   gather:    all-gather [B, 2P] + backward all-reduce of [W*B, 2P]
//   allreduce: all-reduce [2P + 1] + all-reduce [2, P, P], no collective in the backward
nlohmann::json ModelBytes(int w, int64_t B, int64_t P) {
  const double f = 4, n = static_cast<double>(w) * B, g = n * 2 * P, ar = 2.0 * P + 1 + 2.0 * P * P;
  const double share = static_cast<double>(w - 1) / w;
  return {{"gather_payload_bytes", w > 1 ? f * 2 * g : 0.0},
          {"gather_bus_bytes", f * (share * g + 2 * share * g)},
          {"allreduce_payload_bytes", w > 1 ? f * ar : 0.0},
          {"allreduce_bus_bytes", f * 2 * share * ar},
          // global batch above which allreduce moves fewer bytes: payload 4 N P = 2P^2 + 2P + 1,
          // bus 6 (W-1)/W N P = 4 (W-1)/W (P^2 + P + 1/2)
          {"crossover_global_batch_payload", ar / (4.0 * P)},
          {"crossover_global_batch_bus", 2.0 * ar / (6.0 * P)}};
}

int RunGatherLoss(comm::Communicator& c, const Args& a) {
  const int w = c.world_size();
  const int64_t global_batch = a.batch_per_rank > 0 ? static_cast<int64_t>(a.batch_per_rank) * w : a.global_batch;
  if (global_batch % w != 0 || global_batch / w < 2) {
    throw UserError("--global-batch " + std::to_string(global_batch) + " must be a multiple of the " +
                    std::to_string(w) + " ranks with at least 2 images per rank");
  }
  std::vector<std::pair<std::string, train::GlobalStats>> modes;
  if (a.global_stats != "gather") modes.emplace_back("allreduce", train::GlobalStats::kAllReduce);
  if (a.global_stats != "allreduce") modes.emplace_back("gather", train::GlobalStats::kGather);
  const int64_t B = global_batch / w, S = a.image_size;
  model::VitOptions custom;
  custom.patch_size = a.patch_size, custom.embed_dim = a.embed_dim, custom.depth = a.depth, custom.num_heads = a.heads;
  model::VicregModelOptions mo;
  mo.encoder = model::VitOptions::FromName(a.model, a.image_size, custom);
  mo.projector = model::ProjectorOptions(mo.encoder.embed_dim, a.proj_hidden_dim, a.proj_dim, 3);
  at::manual_seed(0);
  model::VicregModel net(mo, &c);
  net->train();
  comm::BroadcastModuleState(*net, c, 0);
  auto params = net->parameters();
  std::vector<std::string> names;
  for (const auto& p : net->named_parameters()) names.push_back(p.key());
  auto comm = std::shared_ptr<comm::Communicator>(&c, [](comm::Communicator*) {});
  comm::GradientSynchronizer sync(params, comm, comm::GradSyncOptions(), names);
  train::OptimizerOptions oo;
  auto opt = train::BuildOptimizer(net->param_groups(), oo);
  CountingCommunicator counted(c);  // the loss's collectives only (SyncBN and gradient sync use c)
  at::manual_seed(1 + c.rank());
  at::Tensor xa = at::randn({B, 3, S, S}), xb = at::randn({B, 3, S, S});
  at::Tensor za0 = at::randn({B, a.proj_dim}), zb0 = at::randn({B, a.proj_dim});

  struct PerMode {
    std::vector<double> step_s, sync_s, loss_s, coll_s;
    CountingCommunicator::Counts step_counts, loss_counts;
    double loss_last = 0;
  };
  std::vector<PerMode> res(modes.size());
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    for (size_t m = 0; m < modes.size(); ++m) {
      train::VicregLossOptions lo;
      lo.global_stats = modes[m].second;
      PerMode& pm = res[m];
      // A full data-parallel step with this mode's loss.
      c.Barrier();
      counted.Reset();
      const auto t0 = Clock::now();
      for (auto& p : params) p.mutable_grad() = at::Tensor();
      auto out = net->forward_pair(xa, xb);
      auto loss = train::VicregLoss(out.za, out.zb, &counted, lo);
      loss.total.backward();
      const auto t_sync = Clock::now();
      sync.Finish();
      const double sync_part = Since(t_sync);
      train::ClipGradNorm(params, 1.0);
      opt->step();
      pm.loss_last = loss.total.item<double>();
      const double step = MaxOverRanks(c, Since(t0));
      const double sync_max = MaxOverRanks(c, sync_part);
      const auto step_counts = counted.counts();
      const double coll = MaxOverRanks(c, step_counts.seconds);
      // The loss alone (forward + backward on fixed z of this step's shape), collectives included.
      c.Barrier();
      counted.Reset();
      at::Tensor za = za0.clone().requires_grad_(true), zb = zb0.clone().requires_grad_(true);
      const auto t1 = Clock::now();
      train::VicregLoss(za, zb, &counted, lo).total.backward();
      const double loss_s = MaxOverRanks(c, Since(t1));
      if (s >= a.warmup) {
        pm.step_s.push_back(step);
        pm.sync_s.push_back(sync_max);
        pm.coll_s.push_back(coll);
        pm.loss_s.push_back(loss_s);
        pm.step_counts = step_counts;
        pm.loss_counts = counted.counts();
      }
    }
  }
  int64_t nparams = 0;
  for (const auto& p : params) nparams += p.numel();
  const int64_t P = a.proj_dim;
  for (size_t m = 0; m < modes.size() && c.rank() == 0; ++m) {
    const PerMode& pm = res[m];
    const double step = Mean(pm.step_s);
    // Covariance work per rank and step (both views, forward + backward): 6 x rows x P^2 multiply-adds
    // on the gathered N rows, on the local B rows from the statistics.
    const double cov_rows = modes[m].second == train::GlobalStats::kGather ? static_cast<double>(global_batch) : B;
    nlohmann::json j = {{"bench", "allreduce"},
                        {"mode", "gather-loss"},
                        {"global_stats", modes[m].first},
                        {"backend", c.backend()},
                        {"world_size", w},
                        {"threads", at::get_num_threads()},
                        {"model", a.model},
                        {"embed_dim", mo.encoder.embed_dim},
                        {"depth", mo.encoder.depth},
                        {"image_size", a.image_size},
                        {"global_batch", global_batch},
                        {"batch_per_rank", B},
                        {"proj_dim", P},
                        {"params", nparams},
                        {"steps", a.steps},
                        {"step_ms", step * 1e3},
                        {"images_per_s", global_batch / step},
                        {"grad_sync_finish_ms", Mean(pm.sync_s) * 1e3},
                        {"buckets", sync.num_buckets()},
                        {"loss_collective_calls", pm.step_counts.calls},
                        {"loss_payload_bytes", pm.step_counts.payload_bytes},
                        {"loss_bus_bytes", pm.step_counts.bus_bytes},
                        {"loss_collective_ms", Mean(pm.coll_s) * 1e3},
                        {"loss_collective_fraction", Mean(pm.coll_s) / step},
                        {"loss_ms", Mean(pm.loss_s) * 1e3},
                        {"loss_fraction", Mean(pm.loss_s) / step},
                        {"loss_alone_payload_bytes", pm.loss_counts.payload_bytes},
                        {"cov_gflop_per_rank", 2.0 * 6 * cov_rows * P * P / 1e9},
                        {"model_bytes", ModelBytes(w, B, P)},
                        {"loss_last", pm.loss_last}};
    std::printf("%s\n", j.dump().c_str());
  }
  return kExitOk;
}

int RunBench(int argc, char** argv) {
  Args a;
  CLI::App app{
      "vicreg_bench allreduce: all-reduce bandwidth (default) or a data-parallel VICReg step with the "
      "gathered-loss overhead (--gather-loss). Run under mpirun/srun; rank 0 prints one JSON line."};
  app.add_option("--bytes", a.bytes, "all-reduce size in bytes (float32), suffixes K/M/G")->capture_default_str();
  app.add_option("--iters", a.iters, "measured iterations (all-reduce mode)")->capture_default_str();
  app.add_option("--warmup", a.warmup, "unmeasured iterations/steps first")->capture_default_str();
  app.add_option("--backend", a.backend, "auto | mpi | gloo | single")->capture_default_str();
  app.add_option("--threads", a.threads, "ATen intra-op threads per rank (0 = library default)")->capture_default_str();
  app.add_option("--timeout", a.timeout_s, "collective timeout in seconds")->capture_default_str();
  app.add_flag("--gather-loss", a.gather_loss, "measure a full distributed step and the gathered-loss share");
  app.add_option("--model", a.model, "--gather-loss: vit_tiny | vit_small | vit_base | custom")->capture_default_str();
  app.add_option("--patch-size", a.patch_size, "custom: patch size")->capture_default_str();
  app.add_option("--embed-dim", a.embed_dim, "custom: embedding dim")->capture_default_str();
  app.add_option("--depth", a.depth, "custom: blocks")->capture_default_str();
  app.add_option("--heads", a.heads, "custom: heads")->capture_default_str();
  app.add_option("--image-size", a.image_size, "--gather-loss: image side")->capture_default_str();
  app.add_option("--global-batch", a.global_batch, "--gather-loss: images per step over all ranks")
      ->capture_default_str();
  app.add_option("--proj-dim", a.proj_dim, "--gather-loss: projector output dim P")->capture_default_str();
  app.add_option("--proj-hidden-dim", a.proj_hidden_dim, "--gather-loss: projector hidden dim")->capture_default_str();
  app.add_option("--steps", a.steps, "--gather-loss: measured steps")->capture_default_str();
  app.add_option("--batch-per-rank", a.batch_per_rank,
                 "--gather-loss: images per rank (global batch = ranks x this; overrides --global-batch)")
      ->capture_default_str();
  app.add_option("--global-stats", a.global_stats,
                 "--gather-loss: the loss's train.vicreg.global_stats mode(s) to measure: allreduce | gather | both")
      ->check(CLI::IsMember({"allreduce", "gather", "both"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (a.iters < 1) throw UserError("--iters must be >= 1, got " + std::to_string(a.iters));
  if (a.steps < 1) throw UserError("--steps must be >= 1, got " + std::to_string(a.steps));
  if (a.warmup < 0) throw UserError("--warmup must be >= 0, got " + std::to_string(a.warmup));
  if (a.threads < 0) throw UserError("--threads must be >= 0, got " + std::to_string(a.threads));
  if (a.batch_per_rank < 0 || a.batch_per_rank == 1)
    throw UserError("--batch-per-rank must be >= 2 (or 0 = use --global-batch), got " +
                    std::to_string(a.batch_per_rank));
  if (!(a.timeout_s > 0)) throw UserError("--timeout must be > 0 seconds");
  if (!a.gather_loss) ParseBytes(a.bytes);  // validate before starting the communicator
  if (a.threads > 0) at::set_num_threads(a.threads);

  const auto info = comm::DiscoverRank();
  comm::CommunicatorOptions co;
  co.backend = a.backend;
  co.timeout = std::chrono::milliseconds(static_cast<int64_t>(a.timeout_s * 1000));
  auto comm = comm::CreateCommunicator(info, co);
  const int rc = a.gather_loss ? RunGatherLoss(*comm, a) : RunAllReduce(*comm, a);
  comm->Barrier();
  return rc;
}

}  // namespace

VICREG_BENCH("allreduce",
             "all-reduce bandwidth, or a data-parallel step's gathered-loss share (--gather-loss); "
             "run under mpirun",
             RunBench);

}  // namespace vicreg::bench
