// vicreg_bench allreduce: communication benchmarks, run under the launcher
//   mpirun -np 2 vicreg_bench allreduce --bytes 16M [--iters 20] [--backend mpi|gloo]
//     gradient all-reduce bandwidth: {"bench":"allreduce",...,"ms_per_op","bytes_per_s","bus_bytes_per_s"}
//   mpirun -np 2 vicreg_bench allreduce --gather-loss [--model vit_tiny --image-size 32 --global-batch 64 ...]
//     a full data-parallel VICReg step (SyncBN projector, gathered loss, bucketed gradient sync, AdamW)
//     at a fixed GLOBAL batch, plus the cost of the gathered loss (all-gather of [B,P] + loss forward
//     and backward) as a fraction of the step: run with -np 1 and -np 2 for the scaling at equal
//     global batch. Rank 0 prints one JSON line; times are the max over ranks per step.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/optim/optimizer.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "common/errors.h"
#include "worker/bench/bench.h"
#include "worker/comm/communicator.h"
#include "worker/comm/gather.h"
#include "worker/comm/grad_sync.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/grad_clip.h"
#include "worker/train/loss.h"
#include "worker/train/optimizer.h"

namespace vicreg::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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

int RunGatherLoss(comm::Communicator& c, const Args& a) {
  const int w = c.world_size();
  if (a.global_batch % w != 0 || a.global_batch / w < 2) {
    throw UserError("--global-batch " + std::to_string(a.global_batch) + " must be a multiple of the " +
                    std::to_string(w) + " ranks with at least 2 images per rank");
  }
  const int64_t B = a.global_batch / w, S = a.image_size;
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
  const train::VicregLossOptions lo;
  at::manual_seed(1 + c.rank());
  at::Tensor xa = at::randn({B, 3, S, S}), xb = at::randn({B, 3, S, S});

  // Isolated cost of the gathered loss on this step's shapes: gather [B,P] x2 + loss fwd + bwd,
  // with two gathers (as the trainer does today) and with one fused gather of both views.
  at::Tensor za0 = at::randn({B, a.proj_dim}), zb0 = at::randn({B, a.proj_dim});
  auto gathered_loss_once = [&](bool fused) {
    at::Tensor za = za0.clone().requires_grad_(true), zb = zb0.clone().requires_grad_(true);
    const auto t0 = Clock::now();
    at::Tensor za_all, zb_all;
    if (fused) {
      std::tie(za_all, zb_all) = comm::GatherPairWithGrad(za, zb, c);
    } else {
      za_all = comm::GatherWithGrad(za, c);
      zb_all = comm::GatherWithGrad(zb, c);
    }
    auto l = train::VicregLoss(za, zb, za_all, zb_all, lo);
    l.total.backward();
    return Since(t0);
  };

  std::vector<double> step_s, sync_s, loss_s, fused_s;
  double loss_last = 0;
  for (int s = 0; s < a.warmup + a.steps; ++s) {
    c.Barrier();
    const auto t0 = Clock::now();
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    auto out = net->forward_pair(xa, xb);
    at::Tensor za_all = comm::GatherWithGrad(out.za, c), zb_all = comm::GatherWithGrad(out.zb, c);
    auto loss = train::VicregLoss(out.za, out.zb, za_all, zb_all, lo);
    loss.total.backward();
    const auto t_sync = Clock::now();
    sync.Finish();
    const double sync_part = Since(t_sync);
    train::ClipGradNorm(params, 1.0);
    opt->step();
    loss_last = loss.total.item<double>();
    const double step = MaxOverRanks(c, Since(t0));
    const double sync_max = MaxOverRanks(c, sync_part);
    c.Barrier();
    const double gl = MaxOverRanks(c, gathered_loss_once(false));
    c.Barrier();
    const double gf = MaxOverRanks(c, gathered_loss_once(true));
    if (s >= a.warmup) {
      step_s.push_back(step);
      sync_s.push_back(sync_max);
      loss_s.push_back(gl);
      fused_s.push_back(gf);
    }
  }
  const double step = Mean(step_s), gl = Mean(loss_s);
  int64_t nparams = 0;
  for (const auto& p : params) nparams += p.numel();
  if (c.rank() == 0) {
    nlohmann::json j = {{"bench", "allreduce"},
                        {"mode", "gather-loss"},
                        {"backend", c.backend()},
                        {"world_size", w},
                        {"threads", at::get_num_threads()},
                        {"model", a.model},
                        {"embed_dim", mo.encoder.embed_dim},
                        {"depth", mo.encoder.depth},
                        {"image_size", a.image_size},
                        {"global_batch", a.global_batch},
                        {"batch_per_rank", B},
                        {"proj_dim", a.proj_dim},
                        {"params", nparams},
                        {"steps", a.steps},
                        {"step_ms", step * 1e3},
                        {"images_per_s", a.global_batch / step},
                        {"grad_sync_finish_ms", Mean(sync_s) * 1e3},
                        {"buckets", sync.num_buckets()},
                        {"buckets_launched_in_backward", sync.stats().buckets_launched_in_backward},
                        {"gathered_loss_ms", gl * 1e3},
                        {"gathered_loss_fraction", gl / step},
                        {"gathered_loss_fused_ms", Mean(fused_s) * 1e3},
                        {"gathered_loss_fused_fraction", Mean(fused_s) / step},
                        {"loss_last", loss_last}};
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
