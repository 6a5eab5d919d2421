// Multi-rank scenarios for tests/comm, run under `mpirun -np N comm_helper <scenario> [options]`.
// Each rank checks its own results against an independent single-process computation and exits
// 0 (prints "PASS rank r"), 1 on a mismatch (prints what differed), or 1 via the communicator's
// failure path (timeouts). The gtest driver (comm_multirank_test.cc) checks exit codes and output.
#include <ATen/ATen.h>
#include <signal.h>
#include <torch/autograd.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.h"
#include "worker/comm/communicator.h"
#include "worker/comm/gather.h"
#include "worker/comm/grad_sync.h"
#include "worker/model/sync_batchnorm.h"
#include "worker/train/diagnostics.h"
#include "worker/train/loss.h"

namespace comm = vicreg::comm;

namespace {

std::map<std::string, std::string> g_args;

std::string Arg(const std::string& k, const std::string& def) {
  auto it = g_args.find(k);
  return it == g_args.end() ? def : it->second;
}
int64_t ArgInt(const std::string& k, int64_t def) { return std::stoll(Arg(k, std::to_string(def))); }

int g_failures = 0;
int g_rank = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "[rank %d] FAIL: %s\n", g_rank, what.c_str());
  }
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

void ExpectClose(const at::Tensor& got, const at::Tensor& want, double tol, const std::string& what) {
  Expect(got.sizes() == want.sizes(), what + ": shape " + c10::str(got.sizes()) + " != " + c10::str(want.sizes()));
  if (got.sizes() != want.sizes()) return;
  const double d = MaxAbsDiff(got, want);
  Expect(d <= tol, what + ": max |diff| " + std::to_string(d) + " > " + std::to_string(tol));
}

std::shared_ptr<comm::Communicator> MakeComm() {
  auto info = comm::DiscoverRank();
  comm::CommunicatorOptions o;
  o.backend = Arg("backend", "mpi");
  o.timeout = std::chrono::milliseconds(ArgInt("timeout-ms", 60000));
  o.rendezvous_dir = Arg("rendezvous", "");
  auto comm = comm::CreateCommunicator(info, o);
  g_rank = comm->rank();
  return comm;
}

// ---- scenario: collectives ------------------------------------------------------------------
void Collectives(comm::Communicator& c) {
  const int r = c.rank(), w = c.world_size();
  // allreduce sum, several dtypes and an odd size; expected value computed in closed form.
  for (auto type : {at::kFloat, at::kDouble, at::kLong, at::kInt}) {
    at::Tensor t = at::arange(0, 1001, at::TensorOptions().dtype(type)) * (r + 1);
    c.AllReduceSum(t);
    at::Tensor want = at::arange(0, 1001, at::TensorOptions().dtype(type)) * (w * (w + 1) / 2);
    Expect(at::equal(t, want), std::string("allreduce ") + c10::toString(type));
  }
  // async allreduce (two in flight)
  at::Tensor a = at::full({3, 5}, static_cast<float>(r), at::kFloat);
  at::Tensor b = at::full({7}, 1.f, at::kFloat);
  auto wa = c.AllReduceSumAsync(a);
  auto wb = c.AllReduceSumAsync(b);
  wb->Wait();
  wa->Wait();
  Expect(at::allclose(a, at::full({3, 5}, static_cast<float>(w * (w - 1) / 2))), "async allreduce a");
  Expect(at::allclose(b, at::full({7}, static_cast<float>(w))), "async allreduce b");
  // allgather [B, D] -> [W*B, D], rank order
  at::Tensor x = at::arange(0, 6, at::kFloat).view({2, 3}) + 100 * r;
  at::Tensor g = c.AllGather(x);
  std::vector<at::Tensor> parts;
  for (int k = 0; k < w; ++k) parts.push_back(at::arange(0, 6, at::kFloat).view({2, 3}) + 100 * k);
  Expect(at::equal(g, at::cat(parts)), "allgather float");
  at::Tensor xi = at::full({1}, static_cast<int64_t>(r * 7), at::kLong);
  Expect(at::equal(c.AllGather(xi), at::arange(0, w, at::kLong) * 7), "allgather int64");
  // broadcast from every root
  for (int root = 0; root < w; ++root) {
    at::Tensor t = at::full({4, 2}, static_cast<double>(r * 10 + 1), at::kDouble);
    c.Broadcast(t, root);
    Expect(at::equal(t, at::full({4, 2}, static_cast<double>(root * 10 + 1), at::kDouble)),
           "broadcast root " + std::to_string(root));
  }
  c.Barrier();
  // zero-size tensors are legal
  at::Tensor empty = at::empty({0}, at::kFloat);
  c.AllReduceSum(empty);
}

// ---- scenario: gather gradient vs single-process autograd on the concatenated batch ---------
// Loss on the gathered batch (variance + covariance-like terms) + a local term, as VICReg.
at::Tensor LossOn(const at::Tensor& z_all, const at::Tensor& z_local, int64_t world) {
  at::Tensor zc = z_all - z_all.mean(0);
  at::Tensor cov = zc.t().mm(zc) / (z_all.size(0) - 1);
  at::Tensor std = (z_all.var(0) + 1e-4).sqrt();
  at::Tensor off = cov - at::diag(at::diag(cov));
  return at::relu(1.0 - std).mean() + off.pow(2).sum() / z_all.size(1) + z_local.pow(2).mean() / world;
}

void GatherGrad(comm::Communicator& c) {
  const int r = c.rank(), w = c.world_size();
  const int64_t B = ArgInt("batch", 4), D = 6, IN = 5;
  at::manual_seed(1234);  // same global data and weights on every rank
  at::Tensor x_all = at::randn({w * B, IN}, at::kDouble);
  at::Tensor w0 = at::randn({D, IN}, at::kDouble);

  // Distributed: rank r sees rows [r*B, (r+1)*B).
  at::Tensor W = w0.clone().requires_grad_(true);
  at::Tensor x = x_all.narrow(0, r * B, B).clone().requires_grad_(true);
  at::Tensor z = x.mm(W.t());
  at::Tensor z_all = comm::GatherWithGrad(z, c);
  at::Tensor loss = LossOn(z_all, z, w);
  loss.backward();
  at::Tensor gW = W.grad().clone();
  c.AllReduceSum(gW);  // data-parallel gradient: sum of the per-rank losses' gradients
  gW /= w;             // as GradientSynchronizer: mean over ranks

  // Reference: one process, whole batch. The mean over ranks of the per-rank losses' gradients
  // equals the gradient of (global terms + mean of the local terms); each rank's input gradient
  // is w times the reference's rows, since the gather's backward sums the w identical global terms.
  at::Tensor Wr = w0.clone().requires_grad_(true);
  at::Tensor xr = x_all.clone().requires_grad_(true);
  at::Tensor zr = xr.mm(Wr.t());
  at::Tensor ref = LossOn(zr, zr, w);  // its local term (mean over W*B rows / w) is the ranks' mean
  ref.backward();
  ExpectClose(x.grad(), xr.grad().narrow(0, r * B, B) * w, 1e-6, "input gradient (scaled by world)");
  ExpectClose(gW, Wr.grad(), 1e-6, "weight gradient");
  // forward: gathered batch equals the concatenated batch
  ExpectClose(z_all.detach(), zr.detach(), 1e-12, "gathered forward");
  // Fused pair gather: same forward and gradients as two separate gathers.
  at::Tensor xa = x_all.narrow(0, r * B, B).clone().requires_grad_(true);
  at::Tensor xb = (x_all.narrow(0, r * B, B) * 0.5).clone().requires_grad_(true);
  auto [pa, pb] = comm::GatherPairWithGrad(xa, xb, c);
  (pa.pow(3).sum() + (pb * pa).sum()).backward();
  at::Tensor ya = x_all.narrow(0, r * B, B).clone().requires_grad_(true);
  at::Tensor yb = (x_all.narrow(0, r * B, B) * 0.5).clone().requires_grad_(true);
  at::Tensor qa = comm::GatherWithGrad(ya, c), qb = comm::GatherWithGrad(yb, c);
  (qa.pow(3).sum() + (qb * qa).sum()).backward();
  ExpectClose(pa.detach(), qa.detach(), 0, "fused gather forward a");
  ExpectClose(pb.detach(), qb.detach(), 0, "fused gather forward b");
  ExpectClose(xa.grad(), ya.grad(), 1e-12, "fused gather gradient a");
  ExpectClose(xb.grad(), yb.grad(), 1e-12, "fused gather gradient b");
  std::printf("[rank %d] gather: loss=%.9f max|dW|=%.3g max|dx|=%.3g\n", r, loss.item<double>(),
              MaxAbsDiff(gW, Wr.grad()), MaxAbsDiff(x.grad(), xr.grad().narrow(0, r * B, B) * w));
}

// ---- scenario: VICReg loss from all-reduced statistics vs the gather path vs one process --------
// Float64, uneven values (every rank's rows have their own offset and scale): for both covariance
// reductions, train.vicreg.global_stats allreduce and gather give each rank the same loss terms and
// gradients (autograd through the differentiable all-gather vs the closed form), both equal to one
// process on the concatenated batch (input gradients scaled by the world size, as for GatherWithGrad);
// then float32 (allreduce vs gather), and the collapse diagnostics from all-reduced statistics vs the
// direct computation on the concatenated batch.
double RelDiff(const at::Tensor& got, const at::Tensor& want) {
  return MaxAbsDiff(got, want) / std::max(1e-300, want.to(at::kDouble).abs().max().item<double>());
}

void ExpectRel(const at::Tensor& got, const at::Tensor& want, double tol, const std::string& what) {
  const double d = RelDiff(got.detach(), want.detach());
  Expect(d <= tol, what + ": relative difference " + std::to_string(d) + " > " + std::to_string(tol));
}

void VicregLossScenario(comm::Communicator& c) {
  using vicreg::train::GlobalStats;
  using vicreg::train::VicregLoss;
  using vicreg::train::VicregLossOptions;
  const int r = c.rank(), w = c.world_size();
  const int64_t B = ArgInt("batch", 5), D = ArgInt("dim", 6), E = 9;
  at::manual_seed(4321);  // the same global batch on every rank
  std::vector<at::Tensor> parts_a, parts_b, parts_f;
  for (int k = 0; k < w; ++k) {
    const double offset = 10.0 * k - 7.0, scale = 0.4 + 0.5 * k;
    at::Tensor a = at::randn({B, D}, at::kDouble) * scale + offset;
    parts_a.push_back(a);
    parts_b.push_back(a + 0.3 * at::randn({B, D}, at::kDouble));
    parts_f.push_back(at::randn({B, E}, at::kDouble) * (1.0 + k));
  }
  const at::Tensor za_all = at::cat(parts_a), zb_all = at::cat(parts_b), f_all = at::cat(parts_f);
  double max_rel = 0;
  for (const char* red : {"paper", "seed"}) {
    VicregLossOptions ar, ga;
    ar.covariance_reduction = ga.covariance_reduction =
        std::string(red) == "seed" ? vicreg::train::CovarianceReduction::kSeed : vicreg::train::CovarianceReduction::kPaper;
    ar.global_stats = GlobalStats::kAllReduce;
    ga.global_stats = GlobalStats::kGather;
    const std::string tag = std::string(" (") + red + ")";
    // Reference: one process on the whole batch; its invariance is the mean of the ranks' invariances.
    at::Tensor ra = za_all.clone().requires_grad_(true), rb = zb_all.clone().requires_grad_(true);
    auto ref = VicregLoss(ra, rb, ra, rb, ga);
    ref.total.backward();
    at::Tensor want_ga = ra.grad().narrow(0, r * B, B) * w, want_gb = rb.grad().narrow(0, r * B, B) * w;
    at::Tensor local_inv = (parts_a[r] - parts_b[r]).pow(2).mean();
    for (const auto* opts : {&ar, &ga}) {
      const std::string mode = (opts == &ar ? "allreduce" : "gather") + tag;
      at::Tensor a = parts_a[r].clone().requires_grad_(true), b = parts_b[r].clone().requires_grad_(true);
      auto out = VicregLoss(a, b, &c, *opts);
      out.total.backward();
      ExpectRel(out.variance, ref.variance, 1e-9, mode + " variance");
      ExpectRel(out.covariance, ref.covariance, 1e-9, mode + " covariance");
      ExpectRel(out.invariance, local_inv, 1e-12, mode + " invariance (local)");
      ExpectRel(a.grad(), want_ga, 1e-9, mode + " gradient za");
      ExpectRel(b.grad(), want_gb, 1e-9, mode + " gradient zb");
      max_rel = std::max({max_rel, RelDiff(a.grad(), want_ga), RelDiff(b.grad(), want_gb),
                          RelDiff(out.covariance.detach(), ref.covariance.detach())});
    }
    // The two modes against each other in float32 (the training precision).
    at::Tensor a1 = parts_a[r].to(at::kFloat).requires_grad_(true), b1 = parts_b[r].to(at::kFloat).requires_grad_(true);
    at::Tensor a2 = parts_a[r].to(at::kFloat).requires_grad_(true), b2 = parts_b[r].to(at::kFloat).requires_grad_(true);
    auto o1 = VicregLoss(a1, b1, &c, ar), o2 = VicregLoss(a2, b2, &c, ga);
    o1.total.backward();
    o2.total.backward();
    Expect(o1.total.scalar_type() == at::kFloat, "float32 loss");
    ExpectRel(o1.total, o2.total, 1e-5, "float32 total, allreduce vs gather" + tag);
    ExpectRel(a1.grad(), a2.grad(), 1e-4, "float32 gradient za, allreduce vs gather" + tag);
    ExpectRel(b1.grad(), b2.grad(), 1e-4, "float32 gradient zb, allreduce vs gather" + tag);
  }
  // Collapse diagnostics of the global batch without gathering it.
  auto want = vicreg::train::ComputeDiagnostics(za_all, f_all);
  auto got = vicreg::train::ComputeDiagnosticsAllReduced(parts_a[r], parts_f[r], c);
  auto close = [&](double x, double y, const char* what) {
    Expect(std::abs(x - y) <= 1e-9 * std::max(1.0, std::abs(y)),
           std::string("diagnostics ") + what + ": " + std::to_string(x) + " vs " + std::to_string(y));
  };
  close(got.std_min, want.std_min, "std_min");
  close(got.std_mean, want.std_mean, "std_mean");
  close(got.std_max, want.std_max, "std_max");
  close(got.pairwise_sim, want.pairwise_sim, "pairwise_sim");
  close(got.cov_offdiag_sq, want.cov_offdiag_sq, "cov_offdiag_sq");
  close(got.collapsed_dims, want.collapsed_dims, "collapsed_dims");
  close(got.rankme, want.rankme, "rankme");
  std::printf("[rank %d] vicreg_loss: max relative difference to one process %.3g, rankme %.6f\n", r, max_rel,
              got.rankme);
}

// ---- scenario: gradient synchronizer -------------------------------------------------------
void GradSync(const std::shared_ptr<comm::Communicator>& cp) {
  comm::Communicator& c = *cp;
  const int r = c.rank(), w = c.world_size();
  // Odd sizes; p3 unused on every rank; p4 used only on rank 1; p5 does not require grad.
  std::vector<at::Tensor> params = {
      at::zeros({7}, at::kFloat).requires_grad_(true),    at::zeros({3, 5}, at::kFloat).requires_grad_(true),
      at::zeros({1}, at::kFloat).requires_grad_(true),    at::zeros({4}, at::kFloat).requires_grad_(true),
      at::zeros({2, 2}, at::kFloat).requires_grad_(true), at::zeros({3}, at::kFloat),
      at::zeros({11}, at::kFloat).requires_grad_(true)};
  comm::GradSyncOptions o;
  o.bucket_bytes = ArgInt("bucket-bytes", 40);
  o.overlap = Arg("overlap", "1") == "1";
  comm::GradientSynchronizer sync(params, cp, o);
  const int steps = 3;
  for (int step = 0; step < steps; ++step) {
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    // grad of p_i = coeff_i(r, step) * (1 + arange): a closed-form mean over ranks
    auto coeff = [&](int i, int rank) { return static_cast<float>((i + 1) * (rank + 1) + step); };
    at::Tensor loss = at::zeros({}, at::kFloat);
    for (int i : {6, 0, 1, 2}) {
      loss =
          loss +
          (params[i] * (1 + at::arange(0, params[i].numel(), at::kFloat).view(params[i].sizes())) * coeff(i, r)).sum();
    }
    if (r == 1) {
      loss = loss + (params[4] * (1 + at::arange(0, 4, at::kFloat).view({2, 2})) * coeff(4, r)).sum();
    }
    loss.backward();
    sync.Finish();
    for (int i : {0, 1, 2, 6}) {
      float mean = 0;
      for (int k = 0; k < w; ++k) mean += coeff(i, k);
      mean /= w;
      at::Tensor want = (1 + at::arange(0, params[i].numel(), at::kFloat).view(params[i].sizes())) * mean;
      Expect(params[i].grad().defined(), "param " + std::to_string(i) + " has a grad");
      if (params[i].grad().defined()) ExpectClose(params[i].grad(), want, 1e-5, "param " + std::to_string(i) + " grad");
    }
    Expect(!params[3].grad().defined(), "param 3 (unused everywhere) keeps an undefined grad");
    if (w > 1) {
      Expect(params[4].grad().defined(), "param 4 (used on rank 1 only) gets a grad on every rank");
      if (params[4].grad().defined()) {
        ExpectClose(params[4].grad(), (1 + at::arange(0, 4, at::kFloat).view({2, 2})) * coeff(4, 1) / w, 1e-5,
                    "param 4 grad (zeros from ranks without it)");
      }
    }
    Expect(!params[5].grad().defined(), "param 5 (no requires_grad) untouched");
  }
  const auto& st = sync.stats();
  std::printf("[rank %d] grad_sync: buckets=%d in_backward=%lld in_finish=%lld\n", r, sync.num_buckets(),
              static_cast<long long>(st.buckets_launched_in_backward),
              static_cast<long long>(st.buckets_launched_in_finish));
  if (Arg("expect-overlap", "0") == "1") {
    Expect(st.buckets_launched_in_backward > 0, "some buckets were launched during backward");
  }
}

// ---- scenario: state broadcast + consistency check ------------------------------------------
struct Net : torch::nn::Module {
  Net() {
    fc1 = register_module("fc1", torch::nn::Linear(5, 4));
    fc2 = register_module("fc2", torch::nn::Linear(4, 3));
    steps = register_buffer("steps", at::zeros({1}, at::kLong));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  at::Tensor steps;
};

void State(comm::Communicator& c) {
  const int r = c.rank();
  at::manual_seed(100 + r);  // different init per rank
  Net net;
  net.steps.fill_(r + 5);
  comm::BroadcastModuleState(net, c, /*root=*/c.world_size() - 1);
  at::manual_seed(100 + c.world_size() - 1);
  Net ref;
  Expect(at::equal(net.fc1->weight, ref.fc1->weight) && at::equal(net.fc2->bias, ref.fc2->bias),
         "parameters equal the root's");
  Expect(net.steps.item<int64_t>() == c.world_size() - 1 + 5, "buffer equals the root's");
  comm::CheckConsistent(net, c, "after broadcast");  // must not throw
  // Perturb one tensor on the last rank: every rank must detect it and name the tensor.
  if (r == c.world_size() - 1) {
    at::NoGradGuard ng;
    net.fc2->bias[1] += 1e-6;
  }
  bool threw = false;
  try {
    comm::CheckConsistent(net, c, "step 7");
  } catch (const vicreg::RuntimeFailure& e) {
    threw = true;
    const std::string msg = e.what();
    Expect(msg.find("param:fc2.bias") != std::string::npos && msg.find("step 7") != std::string::npos,
           "divergence message names the tensor and context: " + msg);
    std::printf("[rank %d] detected: %s\n", r, msg.c_str());
  }
  Expect(threw, "CheckConsistent detects a divergent tensor");
}

// ---- scenario: SyncBatchNorm1d across ranks vs BatchNorm1d on the concatenated batch -------------
void SyncBn(comm::Communicator& c) {
  const int r = c.rank(), w = c.world_size();
  const int64_t B = ArgInt("batch", 3), C = 5;
  vicreg::model::SyncBatchNorm1d bn(vicreg::model::SyncBatchNormOptions(C), &c);
  torch::nn::BatchNorm1d ref{torch::nn::BatchNorm1dOptions(C)};
  at::manual_seed(7);
  {
    at::NoGradGuard ng;  // non-trivial affine parameters, identical on every rank
    at::Tensor wt = at::rand({C}) + 0.5, bs = at::randn({C});
    bn->weight.copy_(wt);
    bn->bias.copy_(bs);
    ref->weight.copy_(wt);
    ref->bias.copy_(bs);
  }
  for (int step = 0; step < 2; ++step) {
    at::Tensor x_all = at::randn({w * B, C}) * 3 + 1;  // same draw on every rank (same seed sequence)
    at::Tensor g_all = at::randn({w * B, C});          // upstream gradient weights
    at::Tensor x = x_all.narrow(0, r * B, B).clone().requires_grad_(true);
    at::Tensor y = bn->forward(x);
    (y * g_all.narrow(0, r * B, B)).sum().backward();  // the sum over ranks is the reference loss
    at::Tensor xr = x_all.clone().requires_grad_(true);
    at::Tensor yr = ref->forward(xr);
    (yr * g_all).sum().backward();
    const std::string at_step = " (step " + std::to_string(step) + ")";
    ExpectClose(y.detach(), yr.detach().narrow(0, r * B, B), 1e-5, "SyncBN output" + at_step);
    ExpectClose(x.grad(), xr.grad().narrow(0, r * B, B), 1e-5, "SyncBN input gradient" + at_step);
    at::Tensor gw = bn->weight.grad().clone(), gb = bn->bias.grad().clone();
    c.AllReduceSum(gw);  // weight/bias gradients are local; summing the ranks' gives the global loss's
    c.AllReduceSum(gb);
    ExpectClose(gw, ref->weight.grad(), 1e-4, "SyncBN weight gradient (sum over ranks)" + at_step);
    ExpectClose(gb, ref->bias.grad(), 1e-4, "SyncBN bias gradient (sum over ranks)" + at_step);
    ExpectClose(bn->running_mean, ref->running_mean, 1e-6, "running_mean" + at_step);
    ExpectClose(bn->running_var, ref->running_var, 1e-5, "running_var" + at_step);
    Expect(bn->num_batches_tracked.item<int64_t>() == step + 1, "num_batches_tracked" + at_step);
    bn->weight.mutable_grad() = at::Tensor();
    bn->bias.mutable_grad() = at::Tensor();
    ref->weight.mutable_grad() = at::Tensor();
    ref->bias.mutable_grad() = at::Tensor();
  }
  // running stats identical on all ranks
  at::Tensor rm = c.AllGather(bn->running_mean.unsqueeze(0).contiguous());
  Expect(at::equal(rm, bn->running_mean.unsqueeze(0).expand({w, C})), "running_mean identical on all ranks");
  // eval mode uses the running statistics, like BatchNorm1d
  bn->eval();
  ref->eval();
  at::Tensor xe = at::randn({4, C});
  ExpectClose(bn->forward(xe), ref->forward(xe), 1e-5, "eval output");
}

// ---- scenario: a rank dies or hangs in the middle of a run ----------------------------------
int Failure(comm::Communicator& c) {
  const int victim = static_cast<int>(ArgInt("victim", 1));
  const int after = static_cast<int>(ArgInt("after", 5));
  const std::string mode = Arg("mode", "kill");
  at::Tensor t = at::ones({1024}, at::kFloat);
  for (int i = 0;; ++i) {
    if (i == after && c.rank() == victim) {
      std::printf("[rank %d] victim: raising %s at iteration %d (pid %d)\n", c.rank(),
                  mode == "kill" ? "SIGKILL" : "SIGSTOP", i, static_cast<int>(getpid()));
      std::fflush(stdout);
      raise(mode == "kill" ? SIGKILL : SIGSTOP);
    }
    c.AllReduceSum(t);
    t.fill_(1.f);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (i > 100000) return 3;  // never reached in the test
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(
        stderr, "usage: comm_helper collectives|gather|vicreg_loss|grad_sync|syncbn|state|failure [--key value ...]\n");
    return 2;
  }
  const std::string scenario = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) == 0) k = k.substr(2);
    g_args[k] = argv[i + 1];
  }
  try {
    auto comm = MakeComm();
    if (scenario == "collectives") {
      Collectives(*comm);
    } else if (scenario == "gather") {
      GatherGrad(*comm);
    } else if (scenario == "vicreg_loss") {
      VicregLossScenario(*comm);
    } else if (scenario == "grad_sync") {
      GradSync(comm);
    } else if (scenario == "syncbn") {
      SyncBn(*comm);
    } else if (scenario == "state") {
      State(*comm);
    } else if (scenario == "failure") {
      return Failure(*comm);
    } else {
      std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
      return 2;
    }
    if (g_failures == 0)
      std::printf("PASS rank %d/%d backend %s\n", comm->rank(), comm->world_size(), comm->backend().c_str());
    std::fflush(stdout);
    return g_failures == 0 ? 0 : 1;
  } catch (const vicreg::UserError& e) {
    std::fprintf(stderr, "[rank %d] invalid input: %s\n", g_rank, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[rank %d] runtime failure: %s\n", g_rank, e.what());
    return 1;
  }
}
