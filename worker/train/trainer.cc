#include "worker/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/autograd.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/metrics.h"
#include "worker/comm/gather.h"
#include "worker/comm/grad_sync.h"
#include "worker/comm/state_sync.h"
#include "worker/data/augment.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/model/encoder_io.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/amp.h"
#include "worker/train/checkpoint.h"
#include "worker/train/checkpoint_policy.h"
#include "worker/train/checkpoint_state.h"
#include "worker/train/collapse_watch.h"
#include "worker/train/device_memory.h"
#include "worker/train/diagnostics.h"
#include "worker/train/grad_clip.h"
#include "worker/train/loss.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/online_monitor.h"
#include "worker/train/optimizer.h"
#include "worker/train/stop_signal.h"
#include "worker/train/time_budget.h"

namespace vicreg::train {

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
double UnixNow() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string Hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

// What the ranks agree on after the loss, in one small all-reduce, so that every rank takes the same branch.
struct StepAgreement {
  bool nonfinite_loss = false;                                    // some rank's loss is NaN/Inf: all skip
  bool stop = false;                                              // some rank received SIGTERM/SIGINT
  int64_t plan = 0;                                               // rank 0's new total steps (0 = unchanged)
  double loss = 0, invariance = 0, variance = 0, covariance = 0;  // means over the ranks
};

// plan: the total steps rank 0 plans (train.time_budget_s), 0 for none and on every other rank. It travels
// as two floats below 2^24 each (exact in float32): plan = hi * 2^23 + lo.
StepAgreement Agree(const VicregLossOutput& loss, bool stop_here, int64_t plan, comm::Communicator& comm) {
  constexpr int64_t kSplit = int64_t{1} << 23;
  // One float tensor [nonfinite, stop, plan_hi, plan_lo, total, invariance, variance, covariance], summed over
  // the ranks.
  at::Tensor values = at::stack({loss.total, loss.invariance, loss.variance, loss.covariance}).detach().to(at::kFloat);
  const float plan_hi = static_cast<float>(plan / kSplit), plan_lo = static_cast<float>(plan % kSplit);
  at::Tensor flags = at::cat({at::logical_not(at::isfinite(values).all()).to(at::kFloat).reshape({1}),
                              at::full({1}, stop_here ? 1.f : 0.f, values.options()),
                              at::full({1}, plan_hi, values.options()), at::full({1}, plan_lo, values.options()),
                              values});
  const int world = comm.world_size();
  if (world > 1) comm.AllReduceSum(flags);
  at::Tensor host = flags.cpu();
  const float* h = host.data_ptr<float>();
  StepAgreement a;
  a.nonfinite_loss = h[0] > 0;
  a.stop = h[1] > 0;
  a.plan = static_cast<int64_t>(h[2]) * kSplit + static_cast<int64_t>(h[3]);
  a.loss = h[4] / world;
  a.invariance = h[5] / world;
  a.variance = h[6] / world;
  a.covariance = h[7] / world;
  return a;
}

}  // namespace

struct Trainer::Impl {
  config::JobConfig cfg;
  comm::RankInfo rank;
  std::shared_ptr<comm::Communicator> comm;
  RunDir* run_dir = nullptr;
  metrics::WorkerMetrics* metrics = nullptr;
  TrainerOptions opts;
  c10::Device device{c10::kCPU};
  bool cuda = false;
  int world = 1;

  model::VicregModel model{nullptr};
  std::vector<at::Tensor> params;  // trainable parameters, model order
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<LrSchedule> schedule;
  VicregLossOptions loss_opts;
  Precision precision = Precision::kFp32;  // train.precision (CUDA forward only)
  std::unique_ptr<comm::GradientSynchronizer> grad_sync;
  LossScaler scaler{false};
  std::shared_ptr<const data::Dataset> dataset;
  std::unique_ptr<data::Loader> loader;
  std::unique_ptr<CheckpointPolicy> ckpt_policy;
  std::unique_ptr<CheckpointManager> ckpt;  // rank 0
  std::unique_ptr<OnlineMonitor> monitor;   // eval.online_* (null when off)
  CollapseWatch watch;

  // Position. step = iterations done; epoch 1-based; batch_in_epoch = batches of `epoch` consumed.
  int64_t step = 0;
  int64_t epoch = 1;
  int64_t batch_in_epoch = 0;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;  // the planned run: its lr schedule ends here (train.max_steps may stop it sooner)
  int64_t nonfinite_total = 0;
  int64_t consecutive_nonfinite = 0;
  int64_t last_nonfinite_step = 0;
  std::string last_checkpoint;

  // train.time_budget_s: rank 0 plans (time_budget.h), every rank follows the plan agreed in each step.
  std::optional<TimeBudget> budget;  // rank 0, when the budget is on
  std::optional<Clock::time_point> attempt_start;  // this attempt's first step began (rank 0)
  double resumed_seconds_used = 0;   // training seconds of earlier attempts (from the checkpoint)
  int64_t logged_plan = 0;           // the plan last written to the log ...
  double logged_at = 0;              // ... and when (training seconds)
  bool warned_warmup = false;

  // Log window (since the previous report).
  Clock::time_point window_start = Clock::now();
  int64_t window_steps = 0;
  int64_t window_samples = 0;
  double window_wait = 0;

  int64_t diagnostics_every() const {
    return cfg.train.diagnostics_every > 0 ? cfg.train.diagnostics_every : cfg.train.log_every;
  }
  int64_t global_batch() const { return static_cast<int64_t>(world) * cfg.train.batch_size; }
  bool budgeted() const { return cfg.train.time_budget_s > 0; }
  // The step the run stops at: the plan, or train.max_steps when that comes first.
  int64_t stop_step() const {
    return cfg.train.max_steps > 0 ? std::min<int64_t>(total_steps, cfg.train.max_steps) : total_steps;
  }
  // Epochs of the planned run (the last may be partial with a time budget).
  int64_t planned_epochs() const {
    return budgeted() ? (stop_step() + steps_per_epoch - 1) / steps_per_epoch : cfg.train.num_epochs;
  }
  double AttemptSeconds() const { return attempt_start ? Seconds(*attempt_start, Clock::now()) : 0.0; }
  int64_t ProposePlan();
  void ApplyPlan(int64_t plan);

  void Build();
  void LoadCheckpoint(const CheckpointPayload& p, const std::string& source);
  CheckpointPayload MakePayload() const;
  std::string Save(const std::string& kind);
  void CheckpointAfterStep(bool stopping);
  void Resume();
  StepOutcome Step(const data::Batch& b);
  void Report(StepReport& r, double data_wait, double step_seconds);
};

void Trainer::Impl::Build() {
  world = comm ? comm->world_size() : 1;
  device = c10::Device(opts.device);
  cuda = device.is_cuda();
  if (cfg.resources.threads_per_rank > 0) {
    // threads_per_rank bounds every compute pool of the rank: ATen's and OpenBLAS's (which ignores
    // at::set_num_threads), so that R ranks x T threads do not oversubscribe the machine's cores.
    at::set_num_threads(cfg.resources.threads_per_rank);
    data::SetBlasThreads(cfg.resources.threads_per_rank);
  }

  // Deterministic init: every rank builds the same weights from the seed (and rank 0's are broadcast).
  at::manual_seed(cfg.train.seed);
  model = model::VicregModel(model::VicregModelOptions::FromConfig(cfg.model, cfg.train.vicreg), comm.get());
  if (!cfg.model.init_from.empty()) {
    // A timm-keyed encoder (vicreg_eval export, or timm's own weights); pos_embed is resampled to image_size.
    model::LoadEncoderSafetensors(model->encoder, cfg.model.init_from, /*resample_pos_embed=*/true);
    spdlog::info("encoder initialized from {}", cfg.model.init_from);
  }
  model->to(device);
  model->train();
  std::vector<std::string> names;
  for (const auto& kv : model->named_parameters(/*recurse=*/true)) {
    if (!kv.value().requires_grad()) continue;
    params.push_back(kv.value());
    names.push_back(kv.key());
  }
  if (world > 1) comm::BroadcastModuleState(*model, *comm, /*root=*/0);

  loss_opts = VicregLossOptions::FromConfig(cfg.train.vicreg);
  precision = ParsePrecision(cfg.train.precision);
  scaler = LossScaler(cuda && precision == Precision::kFp16);

  // Data.
  data::DatasetSpec spec{cfg.data.dataset, cfg.data.data_dir, cfg.data.split, cfg.data.limit};
  dataset = data::OpenDataset(spec);
  data::LoaderOptions lo;
  lo.batch_size = cfg.train.batch_size;
  lo.rank = rank.rank;
  lo.world_size = world;
  lo.shuffle = cfg.data.shuffle;
  lo.seed = cfg.train.seed;
  lo.num_workers = cfg.data.num_workers;
  lo.prefetch_batches = cfg.data.prefetch_batches;
  lo.image_size = cfg.model.image_size;
  lo.two_views = true;
  lo.augment_in_loader = !(cuda && cfg.data.augment_on_device);
  lo.pin_memory = cuda;
  loader = std::make_unique<data::Loader>(dataset, cfg.augment, lo);
  steps_per_epoch = loader->batches_per_epoch();  // >= 1: the Loader refuses less than one global batch
  if (cfg.eval.online_linear || cfg.eval.online_knn_every_epochs > 0) {
    if (!opts.online_monitors)
      throw UserError(
          "eval.online_linear / eval.online_knn_every_epochs: this program runs no online monitors (vicreg_worker "
          "does); set them to false / 0");
    monitor = opts.online_monitors(cfg, dataset, model->options().encoder.embed_dim, device);
  }
  total_steps = cfg.train.num_epochs * steps_per_epoch;  // with a time budget: the first plan

  // Optimization.
  optimizer = BuildOptimizer(model->param_groups(), OptimizerOptions::FromConfig(cfg.train));
  schedule = std::make_unique<LrSchedule>(LrScheduleOptions::FromConfig(cfg.train, steps_per_epoch));
  grad_sync = std::make_unique<comm::GradientSynchronizer>(params, comm, comm::GradSyncOptions(), names);

  ckpt_policy = std::make_unique<CheckpointPolicy>(cfg);
  if (rank.rank == 0 && run_dir)
    ckpt = std::make_unique<CheckpointManager>(ckpt_policy->Retention(run_dir->checkpoints_dir()));
  spdlog::info(
      "model: {} params ({} trainable tensors), {} x {} px, global batch {} ({} rank(s) x {}), {} "
      "step(s)/epoch, {} epoch(s), {} step(s) in total; optimizer {}, precision {}, {} thread(s)",
      [&] {
        int64_t n = 0;
        for (const auto& p : params) n += p.numel();
        return n;
      }(),
      params.size(), cfg.model.image_size, cfg.model.image_size, global_batch(), world, cfg.train.batch_size,
      steps_per_epoch, cfg.train.num_epochs, stop_step(), cfg.train.optimizer,
      cuda ? cfg.train.precision : std::string("fp32"), at::get_num_threads());
  if (budgeted())
    spdlog::info("time budget: {:.0f} s of training; {} step(s) is the first plan, re-planned from the rate measured "
                 "after {} step(s)",
                 cfg.train.time_budget_s, total_steps, TimeBudget::kWarmupSteps);
}

int64_t Trainer::Impl::ProposePlan() {
  if (!budget) return 0;
  const auto now = Clock::now();
  if (!attempt_start) attempt_start = now;
  const std::optional<int64_t> plan = budget->Plan(step, Seconds(*attempt_start, now), total_steps);
  return plan && *plan != total_steps ? *plan : 0;
}

void Trainer::Impl::ApplyPlan(int64_t plan) {
  if (plan <= 0 || plan == total_steps) return;
  total_steps = plan;
  const int64_t warmup = schedule->options().warmup_steps;
  if (plan <= warmup && !warned_warmup) {
    warned_warmup = true;
    spdlog::warn("time budget: only {} step(s) fit, within the {} warmup step(s) (train.warmup_epochs): the lr "
                 "will not decay to min_lr; raise train.time_budget_s or lower train.warmup_epochs",
                 plan, warmup);
  }
  schedule->SetTotalSteps(std::max(plan, warmup + 1));
  // The log shows the first plan, then a change of 1% or more at most every 30 s, or of 10% at once (the
  // plan moves a little at every step).
  if (!budget) return;
  const double used = budget->used_s(AttemptSeconds());
  const int64_t change = std::llabs(plan - logged_plan);
  if (logged_plan == 0 || change * 10 >= logged_plan || (change * 100 >= logged_plan && used - logged_at >= 30)) {
    spdlog::info("time budget: {:.0f} of {:.0f} s used at step {}: {} step(s) in total (~{} epoch(s) of {})", used,
                 budget->budget_s(), step, plan, (plan + steps_per_epoch - 1) / steps_per_epoch, steps_per_epoch);
    logged_plan = plan;
    logged_at = used;
  }
}

void Trainer::Impl::LoadCheckpoint(const CheckpointPayload& p, const std::string& source) {
  RestoreModelState(*model, p.model, source);
  train::LoadState(*optimizer, p.optimizer, source);
  scaler.Load(p.scaler);
  RestoreRng(p, cuda);
}

CheckpointPayload Trainer::Impl::MakePayload() const {
  CheckpointPayload p;
  p.model = train::ModelState(*model);
  p.optimizer = train::SaveState(*optimizer);
  p.scheduler_step = step;
  p.scaler = scaler.state();
  p.epoch = epoch;
  p.global_step = step;
  p.batch_in_epoch = batch_in_epoch;
  p.epoch_complete = batch_in_epoch >= steps_per_epoch;
  CaptureRng(cuda, &p);
  p.config_yaml = config::ToYaml(cfg);
  p.world_size = world;
  p.global_batch = global_batch();
  p.nonfinite_total = nonfinite_total;
  if (budgeted())
    p.time_budget = CheckpointPayload::TimeBudgetState{total_steps, resumed_seconds_used + AttemptSeconds()};
  return p;
}

std::string Trainer::Impl::Save(const std::string& kind) {
  std::string path;
  if (ckpt) {
    auto t0 = Clock::now();
    const std::string file =
        kind == "epoch" ? CheckpointManager::EpochFileName(epoch) : CheckpointManager::StepFileName(step);
    path = ckpt->Save(file, kind, MakePayload());
    spdlog::info("checkpoint {} (epoch {}, step {}) written in {:.2f} s", path, epoch, step, Seconds(t0, Clock::now()));
  }
  last_checkpoint = path.empty() ? last_checkpoint : path;
  if (metrics) metrics->OnCheckpoint(UnixNow());
  return path;
}

void Trainer::Impl::CheckpointAfterStep(bool stopping) {
  StepPosition at;
  at.epoch = epoch;
  at.step = step;
  at.epoch_end = batch_in_epoch >= steps_per_epoch;
  at.stopping = stopping;
  at.run_end = step >= total_steps;
  at.in_streak = consecutive_nonfinite > 0;
  switch (ckpt_policy->AfterStep(at)) {
    case CheckpointAction::kEpoch: Save("epoch"); break;
    case CheckpointAction::kStep: Save("step"); break;
    case CheckpointAction::kDeferred:
      spdlog::warn("step {}: checkpoint deferred (the step was non-finite)", step);
      break;
    case CheckpointAction::kNone: break;
  }
}

void Trainer::Impl::Resume() {
  if (opts.resume.empty() || opts.resume == "none") return;
  // Every rank reads the same file (the run dir is shared); rank 0's choice is checked below.
  CheckpointManager mgr({run_dir ? run_dir->checkpoints_dir() : std::string("checkpoints"), 1, {}});
  auto found = mgr.Resume(opts.resume);
  int64_t resumed_step = found ? found->second.global_step : 0;
  if (world > 1) {
    at::Tensor mine = at::full({1, 1}, static_cast<double>(resumed_step), at::kDouble).to(comm->device());
    at::Tensor all = comm->AllGather(mine).cpu();
    for (int64_t r = 1; r < all.size(0); ++r)
      if (all[r][0].item<double>() != all[0][0].item<double>())
        throw RuntimeFailure(
            fmt::format("ranks disagree on the checkpoint to resume from (rank 0: step {}, rank "
                        "{}: step {}); every rank must see the same run dir",
                        all[0][0].item<double>(), r, all[r][0].item<double>()));
  }
  if (!found) {
    if (opts.resume == "auto") spdlog::info("--resume auto: no checkpoint yet, starting from scratch");
    return;
  }
  const auto& [path, p] = *found;
  if (p.global_batch != global_batch())
    throw UserError(
        fmt::format("checkpoint {}: written with a global batch of {} but this run has {} ({} rank(s) "
                    "x train.batch_size {}); resume with the same ranks x batch_size",
                    path, p.global_batch, global_batch(), world, cfg.train.batch_size));
  try {
    // Keys that change what is learned (not the operational ones, config_schema.h) deserve a warning.
    std::string keys;
    for (const auto& k : config::DiffConfigs(config::ParseJobYaml(p.config_yaml, path + ":config"), cfg))
      if (!config::IsOperational(k)) keys += (keys.empty() ? "" : ", ") + k;
    if (!keys.empty()) spdlog::warn("resuming {} with a config that differs in: {}", path, keys);
  } catch (const UserError& e) {
    spdlog::warn("checkpoint {}: its stored config does not parse with this version ({})", path, e.what());
  }
  LoadCheckpoint(p, path);
  step = p.global_step;
  epoch = p.epoch;
  batch_in_epoch = p.batch_in_epoch;
  nonfinite_total = p.nonfinite_total;
  if (budgeted() && p.time_budget) {  // go on with the plan and the time already used
    resumed_seconds_used = p.time_budget->seconds_used;
    total_steps = p.time_budget->total_steps;
    schedule->SetTotalSteps(std::max(total_steps, schedule->options().warmup_steps + 1));
    spdlog::info("time budget: {:.0f} of {:.0f} s used before this attempt; the plan was {} step(s)",
                 resumed_seconds_used, cfg.train.time_budget_s, total_steps);
  }
  if (batch_in_epoch > steps_per_epoch)
    throw UserError(fmt::format("checkpoint {}: {} batches done in epoch {}, but an epoch has {}", path, batch_in_epoch,
                                epoch, steps_per_epoch));
  if (batch_in_epoch == steps_per_epoch) {  // the epoch was complete
    ++epoch;
    batch_in_epoch = 0;
  }
  last_checkpoint = path;
  spdlog::info("resumed from {}: step {}, epoch {}, batch {} of {}", path, step, epoch, batch_in_epoch,
               steps_per_epoch);
}

StepOutcome Trainer::Impl::Step(const data::Batch& b) {
  const auto t0 = Clock::now();
  StepOutcome out;
  StepReport& r = out.report;
  const int64_t this_step = step + 1;
  r.step = this_step;
  r.epoch = epoch;
  r.samples = global_batch();

  // 1. Views to the device (augmented there when the loader hands out raw images).
  at::Tensor xa, xb;
  if (b.raw.defined()) {
    at::Tensor raw = b.raw.to(device, /*non_blocking=*/true);
    xa = loader->augmenter(1)(raw, b.view_seed1, b.sample_offset);
    xb = loader->augmenter(2)(raw, b.view_seed2, b.sample_offset);
  } else {
    xa = b.view1.to(device, /*non_blocking=*/true);
    xb = b.view2.to(device, /*non_blocking=*/true);
  }

  for (auto& p : params) p.mutable_grad() = at::Tensor();  // set to none (the synchronizer's contract)

  // BatchNorm running statistics are updated by the forward pass; a skipped (non-finite) step restores them so
  // that one bad batch cannot poison every later checkpoint.
  std::vector<at::Tensor> buffers = model->buffers(/*recurse=*/true);
  std::vector<at::Tensor> saved_buffers;
  saved_buffers.reserve(buffers.size());
  for (const auto& t : buffers) saved_buffers.push_back(t.clone());

  // 2. Forward both views (autocast on CUDA; BN statistics per view).
  model::VicregPairOutput f;
  {
    AutocastScope autocast(precision, cuda);
    f = model->forward_pair(xa, xb);
  }

  // 3-4. Loss in fp32; variance and covariance over the global batch (train.vicreg.global_stats: all-reduced
  // statistics or an all-gather of z, both differentiable).
  VicregLossOutput loss = VicregLoss(f.za, f.zb, comm.get(), loss_opts);

  // 5. Agree on non-finite losses and stop requests, and average the loss terms (one small all-reduce).
  const StepAgreement agreed = Agree(loss, StopSignal() != 0, rank.rank == 0 ? ProposePlan() : 0, *comm);
  ApplyPlan(agreed.plan);  // before the lr of this step is taken from the schedule
  const bool nonfinite_loss = agreed.nonfinite_loss;
  out.stop_requested = agreed.stop;
  r.loss = agreed.loss;
  r.invariance = agreed.invariance;
  r.variance = agreed.variance;
  r.covariance = agreed.covariance;
  r.lr = schedule->At(this_step - 1);

  bool applied = false;
  bool nonfinite = nonfinite_loss;
  if (!nonfinite_loss) {
    // 6. Backward (global terms: closed form from the statistics, or the gather's all-reduce).
    scaler.Scale(loss.total).backward();
    // 7. Average the gradients over the ranks.
    grad_sync->Finish();
    // 8. Clip by the global norm (after unscaling fp16 gradients).
    scaler.Unscale(params);
    GradClipResult clip = ClipGradNorm(params, cfg.train.grad_clip);
    r.grad_norm = clip.total_norm;
    const bool grad_finite = clip.finite;
    if (scaler.enabled()) {
      scaler.Update(!grad_finite);  // an fp16 overflow is routine: skip the step, lower the scale
    } else if (!grad_finite) {
      nonfinite = true;
    }
    if (grad_finite) {
      // 9. Learning rate from the schedule, then the optimizer step.
      SetLearningRate(*optimizer, r.lr);
      optimizer->step();
      applied = true;
    }
  } else {
    r.grad_norm = std::numeric_limits<double>::quiet_NaN();  // no backward: nothing to synchronize
  }
  out.applied = applied;
  out.nonfinite = nonfinite;
  r.loss_finite = !nonfinite;

  if (nonfinite) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_buffers[i]);
    ++nonfinite_total;
    ++consecutive_nonfinite;
    last_nonfinite_step = this_step;
    if (metrics) metrics->OnNonFiniteLoss();
    spdlog::warn("step {}: non-finite {} ({} in a row, {} in total); the step was skipped", this_step,
                 nonfinite_loss ? fmt::format("loss (total {} inv {} var {} cov {})", r.loss, r.invariance, r.variance,
                                              r.covariance)
                                : fmt::format("gradient (norm {})", r.grad_norm),
                 consecutive_nonfinite, nonfinite_total);
  } else {
    consecutive_nonfinite = 0;
  }

  // 10. Collapse diagnostics on the global batch (no grad).
  if (!nonfinite && this_step % diagnostics_every() == 0) {
    at::NoGradGuard no_grad;
    at::Tensor za = f.za.detach(), feats = f.features_a.detach();
    if (world > 1 && loss_opts.global_stats == GlobalStats::kAllReduce) {
      FillReport(ComputeDiagnosticsAllReduced(za, feats, *comm), &r);
    } else {
      FillReport(ComputeDiagnostics(world > 1 ? comm::GatherNoGrad(za, *comm) : za,
                                    world > 1 ? comm::GatherNoGrad(feats, *comm) : feats),
                 &r);
    }
  }

  // 11. Optional online monitors (detached features; never touch the encoder's gradients or the RNG).
  if (monitor && !nonfinite) {
    monitor->Update(f.features_a, b.labels);
    if (batch_in_epoch + 1 == steps_per_epoch && monitor->KnnDue(epoch)) {
      auto t = Clock::now();
      r.online_knn_top1 = monitor->KnnTop1(model->encoder);
      spdlog::info("online kNN top-1 after epoch {}: {:.4f} ({:.1f} s)", epoch, *r.online_knn_top1,
                   Seconds(t, Clock::now()));
    }
  }

  step = this_step;
  ++batch_in_epoch;
  r.step_seconds = Seconds(t0, Clock::now());
  r.data_wait_seconds = b.wait_seconds;
  Report(r, b.wait_seconds, r.step_seconds);
  return out;
}

void Trainer::Impl::Report(StepReport& r, double data_wait, double step_seconds) {
  if (metrics) metrics->OnStep(step_seconds, r.samples, data_wait);
  ++window_steps;
  window_samples += r.samples;
  window_wait += data_wait;
  const bool log_step = r.step % cfg.train.log_every == 0 || r.step == stop_step();
  const bool has_diag = r.std_min.has_value();
  if (!log_step && !has_diag && !r.online_knn_top1) return;
  if (monitor) r.online_linear_top1 = monitor->LinearTop1(comm.get());  // same steps on every rank

  const auto now = Clock::now();
  const double elapsed = Seconds(window_start, now);
  r.images_per_s = elapsed > 0 ? window_samples / elapsed : 0;
  const double wait_frac = elapsed > 0 ? window_wait / elapsed : 0;
  const double eta = window_steps > 0 ? (stop_step() - r.step) * (elapsed / window_steps) : 0;

  if (cuda) {
    if (const std::optional<DeviceMemory> mem = ReadCudaMemory(device.index())) {
      r.gpu_memory_allocated = static_cast<double>(mem->allocated);
      r.gpu_memory_max_allocated = static_cast<double>(mem->max_allocated);
      r.gpu_memory_reserved = static_cast<double>(mem->reserved);
    }
  }
  if (metrics) metrics->OnReport(r);
  watch.Observe(r);
  if (run_dir && rank.rank == 0) {
    run_dir->AppendMetrics(r);
    Progress p;
    p.step = r.step;
    p.total_steps = stop_step();
    p.epoch = r.epoch;
    p.num_epochs = planned_epochs();
    p.loss = r.loss;
    p.images_per_s = r.images_per_s;
    run_dir->WriteProgress(p);
  }
  std::string diag;
  if (has_diag)
    diag = fmt::format(" | std min {:.3f} mean {:.3f} sim {:.3f} rankme {:.1f}", *r.std_min, *r.std_mean,
                       *r.pairwise_sim, *r.rankme);
  spdlog::info(
      "epoch {}/{} step {}/{} loss {:.4f} (inv {:.4f} var {:.4f} cov {:.4f}) lr {:.3e} grad {:.3f}{} | "
      "{:.1f} img/s, data wait {:.1f}% | ETA {}",
      r.epoch, planned_epochs(), r.step, stop_step(), r.loss, r.invariance, r.variance, r.covariance, r.lr,
      r.grad_norm, diag, r.images_per_s, 100.0 * wait_frac, Hms(eta));
  window_start = now;
  window_steps = 0;
  window_samples = 0;
  window_wait = 0;
}

Trainer::Trainer(const config::JobConfig& cfg, const comm::RankInfo& rank, std::shared_ptr<comm::Communicator> comm,
                 RunDir* run_dir, metrics::WorkerMetrics* metrics, TrainerOptions opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = cfg;
  impl_->rank = rank;
  impl_->comm = std::move(comm);
  impl_->run_dir = run_dir;
  impl_->metrics = metrics;
  impl_->opts = std::move(opts);
  VICREG_CHECK(impl_->comm != nullptr, "Trainer needs a communicator (comm::CreateCommunicator)");
  impl_->Build();
}

Trainer::~Trainer() = default;

RunResult Trainer::Run() {
  Impl& m = *impl_;
  m.Resume();
  if (m.run_dir && m.rank.rank == 0) m.run_dir->OpenMetrics(m.step);
  RunResult result;
  result.status = RunStatus::kSucceeded;
  auto finish = [&](RunStatus status, std::string reason) {
    result.status = status;
    result.reason = std::move(reason);
    result.step = m.step;
    result.epoch = m.epoch;
    result.checkpoint = m.last_checkpoint;
    spdlog::info("collapse warnings: {}", m.watch.Summary());
    return result;
  };
  if (m.cfg.train.max_steps > 0 && m.step >= m.cfg.train.max_steps)
    return finish(RunStatus::kSucceeded, fmt::format("max_steps {} reached", m.cfg.train.max_steps));
  if (m.budgeted() && m.rank.rank == 0) m.budget.emplace(m.cfg.train.time_budget_s, m.resumed_seconds_used);
  m.window_start = Clock::now();
  // Until the planned run's last step: num_epochs x batches_per_epoch, or what fits in train.time_budget_s
  // (re-planned as it trains; the last epoch may then end early).
  bool run_end = m.step >= m.total_steps;
  if (run_end && m.batch_in_epoch == 0 && m.epoch > 1) --m.epoch;  // resumed at the end: the last epoch's number
  for (; !run_end; ++m.epoch, m.batch_in_epoch = 0) {
    if (m.metrics) m.metrics->SetEpoch(m.epoch);
    if (m.monitor) m.monitor->ResetEpoch();
    m.loader->StartEpoch(m.epoch, m.batch_in_epoch);
    while (auto batch = m.loader->Next()) {
      StepOutcome o = m.Step(*batch);
      if (m.consecutive_nonfinite >= m.cfg.train.max_consecutive_nonfinite)
        return finish(RunStatus::kFailed,
                      fmt::format("non-finite loss or gradient in {} consecutive steps (the last at step "
                                  "{}); stopping. Lower train.learning_rate or enable train.grad_clip; the "
                                  "last good checkpoint is {}",
                                  m.consecutive_nonfinite, m.last_nonfinite_step,
                                  m.last_checkpoint.empty() ? "none" : m.last_checkpoint));
      run_end = m.step >= m.total_steps;
      const bool max_reached = m.cfg.train.max_steps > 0 && m.step >= m.cfg.train.max_steps;
      m.CheckpointAfterStep(/*stopping=*/o.stop_requested || max_reached);
      if (o.stop_requested) {
        const int sig = StopSignal();
        return finish(RunStatus::kFailed, sig == 15  ? "terminated by SIGTERM"
                                          : sig == 2 ? "terminated by SIGINT"
                                                     : "terminated (another rank received a stop signal)");
      }
      if (max_reached)
        return finish(RunStatus::kSucceeded, fmt::format("max_steps {} reached", m.cfg.train.max_steps));
      if (run_end) break;
    }
    if (run_end) break;
    if (m.batch_in_epoch < m.steps_per_epoch)
      throw RuntimeFailure(fmt::format("the loader ended epoch {} after {} of {} batches", m.epoch, m.batch_in_epoch,
                                       m.steps_per_epoch));
  }
  if (m.budgeted() && m.budget)
    spdlog::info("time budget: {} step(s) in {:.1f} s of training ({:.0f} s budget)", m.step,
                 m.budget->used_s(m.AttemptSeconds()), m.cfg.train.time_budget_s);
  return finish(RunStatus::kSucceeded, "");
}

StepOutcome Trainer::Step(const data::Batch& batch) { return impl_->Step(batch); }
std::string Trainer::SaveCheckpoint(const std::string& kind) { return impl_->Save(kind); }
std::vector<std::pair<std::string, at::Tensor>> Trainer::ModelState() const { return train::ModelState(*impl_->model); }
int64_t Trainer::global_step() const { return impl_->step; }
int64_t Trainer::epoch() const { return impl_->epoch; }
int64_t Trainer::steps_per_epoch() const { return impl_->steps_per_epoch; }

}  // namespace vicreg::train
