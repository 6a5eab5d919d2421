// Range, enum and cross-field validation of a JobConfig, and preset resolution.
// Every rule here is listed in the job reference (README); keep the two in step.
#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/config_internal.h"
#include "common/config_loader.h"

namespace vicreg::config {
namespace {

using detail::FormatDouble;

const std::vector<std::string> kDevices = {"cpu", "cuda"};
const std::vector<std::string> kBackends = {"auto", "nccl", "mpi", "gloo", "single"};
const std::vector<std::string> kDatasets = {"cifar10", "cifar100",     "stl10",       "fashion_mnist",
                                            "mnist",   "image_folder", "tensor_cache"};
const std::vector<std::string> kSplits = {"train", "test", "unlabeled", "train+unlabeled"};
constexpr size_t kMaxEvalEpochs = 1000;  // evaluated epochs of one job (eval.epochs + eval.every_epochs)
constexpr size_t kMaxEvalDatasets = 16;
const std::vector<std::string> kBackbones = {"vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
                                             "vit_custom"};
const std::vector<std::string> kModes = {"vicreg"};
const std::vector<std::string> kOptimizers = {"adamw", "lars"};
const std::vector<std::string> kPrecisions = {"fp32", "bf16", "fp16"};
const std::vector<std::string> kCovReductions = {"paper", "seed"};
const std::vector<std::string> kGlobalStats = {"allreduce", "gather"};
const std::vector<std::string> kInterpolations = {"bicubic", "bilinear", "nearest"};
const std::vector<std::string> kProbes = {"linear", "knn"};
const std::vector<std::string> kAugmentOrders = {"photometric_first", "torchvision"};

std::string Str(int64_t v) { return std::to_string(v); }
std::string Str(double v) { return FormatDouble(v); }

class Checker {
 public:
  // sink: when set, every static rule is also recorded there (JobJsonSchema: the schema's bounds and
  // enums are the very checks below, not a second copy of them).
  Checker(std::vector<FieldError>& out, std::vector<detail::Constraint>* sink) : out_(out), sink_(sink) {}

  void Fail(const std::string& field, const std::string& message) { out_.push_back({field, message}); }

  // lo <= v <= hi
  void IntRange(const std::string& f, int64_t v, int64_t lo, int64_t hi) {
    Bounds(f, double(lo), false, double(hi), false);
    if (v < lo || v > hi) Fail(f, "must be in [" + Str(lo) + ", " + Str(hi) + "], got " + Str(v));
  }
  // lo <= v <= hi where hi depends on other keys (only lo is a static rule).
  void IntRangeDependent(const std::string& f, int64_t v, int64_t lo, int64_t hi) {
    Bounds(f, double(lo), false, std::nullopt, false);
    if (v < lo || v > hi) Fail(f, "must be in [" + Str(lo) + ", " + Str(hi) + "], got " + Str(v));
  }
  void IntMin(const std::string& f, int64_t v, int64_t lo) {
    Bounds(f, double(lo), false, std::nullopt, false);
    if (v < lo) Fail(f, "must be >= " + Str(lo) + ", got " + Str(v));
  }
  void Positive(const std::string& f, double v) {
    Bounds(f, 0.0, true, std::nullopt, false);
    if (!(v > 0)) Fail(f, "must be > 0, got " + Str(v));
  }
  void NonNegative(const std::string& f, double v) {
    Bounds(f, 0.0, false, std::nullopt, false);
    if (!(v >= 0)) Fail(f, "must be >= 0, got " + Str(v));
  }
  // lo <= v <= hi (closed) or lo <= v < hi (open_hi)
  void Interval(const std::string& f, double v, double lo, double hi, bool open_hi = false) {
    Bounds(f, lo, false, hi, open_hi);
    bool ok = v >= lo && (open_hi ? v < hi : v <= hi);
    if (!ok) Fail(f, "must be in [" + Str(lo) + ", " + Str(hi) + (open_hi ? ")" : "]") + ", got " + Str(v));
  }
  void Probability(const std::string& f, double v) { Interval(f, v, 0.0, 1.0); }
  bool Enum(const std::string& f, const std::string& v, const std::vector<std::string>& valid) {
    Record(f, [&](detail::Constraint& k) { k.values = valid; });
    if (std::find(valid.begin(), valid.end(), v) != valid.end()) return true;
    std::string message = "must be one of " + detail::JoinAlternatives(valid) + ", got \"" + v + "\"";
    std::string close = ClosestMatch(v, valid);
    if (!close.empty()) message += "; did you mean '" + close + "'?";
    Fail(f, message);
    return false;
  }
  // A rule checked by hand below, recorded for the schema only.
  void Note(const std::string& f, const std::function<void(detail::Constraint&)>& set) { Record(f, set); }

 private:
  void Bounds(const std::string& f, std::optional<double> lo, bool lo_excl, std::optional<double> hi, bool hi_excl) {
    Record(f, [&](detail::Constraint& k) {
      k.minimum = lo, k.exclusive_minimum = lo_excl, k.maximum = hi, k.exclusive_maximum = hi_excl;
    });
  }
  void Record(const std::string& f, const std::function<void(detail::Constraint&)>& set) {
    if (!sink_) return;
    detail::Constraint k;
    k.field = f;
    set(k);
    sink_->push_back(std::move(k));
  }
  std::vector<FieldError>& out_;
  std::vector<detail::Constraint>* sink_;
};

bool NameOk(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void CheckView(Checker& c, const std::string& p, const ViewAugmentConfig& v) {
  auto positive_items = [](double hi) {
    return [hi](detail::Constraint& k) {
      k.minimum = 0.0, k.exclusive_minimum = true;
      if (hi > 0) k.maximum = hi;
    };
  };
  c.Note(p + ".crop_scale[]", positive_items(1.0));
  c.Note(p + ".crop_ratio[]", positive_items(0));
  c.Note(p + ".blur_sigma[]", positive_items(0));
  c.Note(p + ".blur_kernel_fraction", positive_items(1.0));
  const auto& s = v.crop_scale;
  if (!(s[0] > 0 && s[0] <= s[1] && s[1] <= 1)) {
    c.Fail(p + ".crop_scale", "must satisfy 0 < low <= high <= 1, got [" + Str(s[0]) + ", " + Str(s[1]) + "]");
  }
  const auto& r = v.crop_ratio;
  if (!(r[0] > 0 && r[0] <= r[1])) {
    c.Fail(p + ".crop_ratio", "must satisfy 0 < low <= high, got [" + Str(r[0]) + ", " + Str(r[1]) + "]");
  }
  c.Enum(p + ".interpolation", v.interpolation, kInterpolations);
  c.Probability(p + ".hflip_prob", v.hflip_prob);
  c.Probability(p + ".jitter_prob", v.jitter_prob);
  c.NonNegative(p + ".brightness", v.brightness);
  c.NonNegative(p + ".contrast", v.contrast);
  c.NonNegative(p + ".saturation", v.saturation);
  c.Interval(p + ".hue", v.hue, 0.0, 0.5);
  c.Probability(p + ".grayscale_prob", v.grayscale_prob);
  c.Probability(p + ".blur_prob", v.blur_prob);
  const auto& b = v.blur_sigma;
  if (!(b[0] > 0 && b[0] <= b[1])) {
    c.Fail(p + ".blur_sigma", "must satisfy 0 < low <= high, got [" + Str(b[0]) + ", " + Str(b[1]) + "]");
  }
  if (!(v.blur_kernel_fraction > 0 && v.blur_kernel_fraction <= 1)) {
    c.Fail(p + ".blur_kernel_fraction", "must be in (0, 1], got " + Str(v.blur_kernel_fraction));
  }
  c.Probability(p + ".solarize_prob", v.solarize_prob);
  c.Interval(p + ".solarize_threshold", v.solarize_threshold, 0.0, 256.0);
}

void CheckChannelStats(Checker& c, const std::string& f, const std::vector<double>& v, bool is_std) {
  if (v.empty()) return;
  if (v.size() != 3) {
    c.Fail(f, "must be empty (the dataset's own) or have 3 values (R, G, B), got " + Str(int64_t(v.size())));
    return;
  }
  for (size_t i = 0; i < v.size(); ++i) {
    std::string fi = f + "[" + std::to_string(i) + "]";
    if (is_std) {
      c.Positive(fi, v[i]);
    } else {
      c.Interval(fi, v[i], 0.0, 1.0);
    }
  }
}

// An epoch that gets a checkpoint: every checkpoint.every_epochs epochs, and always the last.
bool Checkpointed(const JobConfig& cfg, int epoch) {
  int every = cfg.checkpoint.every_epochs;
  return epoch == cfg.train.num_epochs || (every > 0 && epoch % every == 0);
}

void CheckEpochList(Checker& c, const std::string& f, const std::vector<int>& epochs, const JobConfig& cfg,
                    const char* what) {
  c.Note(f + "[]", [](detail::Constraint& k) { k.minimum = 1.0; });  // the upper bound is train.num_epochs
  std::set<int> seen;
  for (size_t i = 0; i < epochs.size(); ++i) {
    std::string fi = f + "[" + std::to_string(i) + "]";
    int e = epochs[i];
    if (e < 1 || e > cfg.train.num_epochs) {
      c.Fail(fi, "must be an epoch in [1, train.num_epochs=" + Str(int64_t(cfg.train.num_epochs)) + "], got " +
                     Str(int64_t(e)));
    } else if (!seen.insert(e).second) {
      c.Fail(fi, "epoch " + Str(int64_t(e)) + " is listed twice");
    } else if (cfg.checkpoint.every_epochs >= 0 && !Checkpointed(cfg, e)) {
      c.Fail(fi, std::string("epoch ") + Str(int64_t(e)) + " gets no checkpoint to " + what +
                     " (checkpoint.every_epochs=" + Str(int64_t(cfg.checkpoint.every_epochs)) +
                     " writes epochs that are multiples of it, plus the last); pick such an epoch or lower "
                     "checkpoint.every_epochs");
    }
  }
}

}  // namespace

ModelConfig ResolveModel(const ModelConfig& m) {
  ModelConfig r = m;
  auto preset = [&](int dim, int heads) {
    r.patch_size = 16;
    r.embed_dim = dim;
    r.depth = 12;
    r.num_heads = heads;
  };
  if (m.backbone_name == "vit_tiny_patch16_224") preset(192, 3);
  if (m.backbone_name == "vit_small_patch16_224") preset(384, 6);
  if (m.backbone_name == "vit_base_patch16_224") preset(768, 12);
  return r;
}

namespace {

void Check(const JobConfig& cfg, Checker& c) {
  // top level
  c.Note("name", [](detail::Constraint& k) { k.pattern = "^[A-Za-z0-9._-]{1,64}$"; });
  if (!NameOk(cfg.name)) {
    c.Fail("name", "must be 1-64 characters from A-Z a-z 0-9 . _ -, got \"" + cfg.name + "\"");
  }
  c.IntRange("max_restarts", cfg.max_restarts, 0, 100);
  c.IntRange("priority", cfg.priority, -1000000, 1000000);
  c.NonNegative("max_queue_wait_s", cfg.max_queue_wait_s);

  // resources
  const auto& res = cfg.resources;
  c.IntRange("resources.ranks", res.ranks, 1, 4096);
  bool device_ok = c.Enum("resources.device", res.device, kDevices);
  if (c.Enum("resources.backend", res.backend, kBackends) && device_ok) {
    if (res.backend == "nccl" && res.device != "cuda") {
      c.Fail("resources.backend",
             "nccl needs resources.device: cuda, got device \"" + res.device + "\"; use mpi or gloo on cpu (or auto)");
    }
    if (res.backend == "single" && res.ranks != 1) {
      c.Fail("resources.backend", "single runs one process, but resources.ranks is " + Str(int64_t(res.ranks)) +
                                      "; use auto, mpi, gloo or nccl");
    }
  }
  c.IntRange("resources.threads_per_rank", res.threads_per_rank, 0, 1024);
  c.Positive("resources.collective_timeout_s", res.collective_timeout_s);
  c.IntRange("resources.nodes", res.nodes, 0, 4096);
  c.IntRange("resources.ranks_per_node", res.ranks_per_node, 0, 4096);
  if (res.nodes > res.ranks) {
    c.Fail("resources.nodes", "more nodes (" + Str(int64_t(res.nodes)) + ") than ranks (" + Str(int64_t(res.ranks)) +
                                  "): every node needs a rank");
  } else if (res.nodes > 0 && res.ranks_per_node > 0 && int64_t(res.nodes) * res.ranks_per_node != res.ranks) {
    c.Fail("resources.ranks_per_node", Str(int64_t(res.nodes)) + " nodes x " + Str(int64_t(res.ranks_per_node)) +
                                           " ranks_per_node must equal resources.ranks " + Str(int64_t(res.ranks)));
  } else if (res.ranks_per_node > res.ranks) {
    c.Fail("resources.ranks_per_node", "more ranks per node (" + Str(int64_t(res.ranks_per_node)) +
                                           ") than resources.ranks (" + Str(int64_t(res.ranks)) + ")");
  }

  // data
  const auto& d = cfg.data;
  if (c.Enum("data.dataset", d.dataset, kDatasets) && c.Enum("data.split", d.split, kSplits)) {
    if ((d.split == "unlabeled" || d.split == "train+unlabeled") && d.dataset != "stl10") {
      c.Fail("data.split",
             "\"" + d.split + "\" exists only for stl10, got dataset \"" + d.dataset + "\"; use train or test");
    }
  }
  c.Note("data.data_dir", [](detail::Constraint& k) { k.min_length = 1; });
  if (d.data_dir.empty()) c.Fail("data.data_dir", "must not be empty (the folder holding the dataset's files)");
  c.IntRange("data.num_workers", d.num_workers, 0, 256);
  c.IntRange("data.prefetch_batches", d.prefetch_batches, 1, 1024);
  c.IntMin("data.limit", d.limit, 0);

  // model
  const auto& m = cfg.model;
  if (c.Enum("model.backbone_name", m.backbone_name, kBackbones)) {
    ModelConfig r = ResolveModel(m);
    c.IntRange("model.patch_size", r.patch_size, 1, 1024);
    c.IntRange("model.embed_dim", r.embed_dim, 1, 1 << 16);
    c.IntRange("model.depth", r.depth, 1, 1024);
    c.IntRange("model.num_heads", r.num_heads, 1, 1024);
    c.IntRange("model.image_size", r.image_size, 1, 16384);
    if (r.patch_size >= 1 && r.image_size >= 1 && r.image_size % r.patch_size != 0) {
      c.Fail("model.image_size", "must be divisible by patch_size " + Str(int64_t(r.patch_size)) + ", got " +
                                     Str(int64_t(r.image_size)) + " (try " +
                                     Str(int64_t(std::max(1, r.image_size / r.patch_size) * r.patch_size)) + ")");
    }
    if (r.num_heads >= 1 && r.embed_dim >= 1 && r.embed_dim % r.num_heads != 0) {
      c.Fail("model.embed_dim",
             "must be divisible by num_heads " + Str(int64_t(r.num_heads)) + ", got " + Str(int64_t(r.embed_dim)));
    }
  }
  c.Note("model.in_chans", [](detail::Constraint& k) { k.minimum = k.maximum = 3.0; });
  if (m.in_chans != 3) {
    c.Fail("model.in_chans",
           "must be 3 (the data pipeline replicates grayscale to 3 channels), got " + Str(int64_t(m.in_chans)));
  }
  c.Positive("model.mlp_ratio", m.mlp_ratio);
  c.Interval("model.drop_path_rate", m.drop_path_rate, 0.0, 1.0, /*open_hi=*/true);

  // train
  const auto& t = cfg.train;
  c.Enum("train.training_mode", t.training_mode, kModes);
  c.IntRange("train.batch_size", t.batch_size, 1, 1 << 20);
  if (t.batch_size >= 1 && res.ranks >= 1 && int64_t(t.batch_size) * res.ranks < 2) {
    c.Fail("train.batch_size",
           "the global batch (ranks x batch_size = 1) must be >= 2: the variance and "
           "covariance terms need at least 2 samples");
  }
  c.IntRange("train.num_epochs", t.num_epochs, 1, 1000000);
  c.Positive("train.learning_rate", t.learning_rate);
  if (!(t.min_lr >= 0 && t.min_lr <= t.learning_rate)) {
    c.Fail("train.min_lr", "must be in [0, learning_rate=" + Str(t.learning_rate) + "], got " + Str(t.min_lr));
  }
  c.NonNegative("train.weight_decay", t.weight_decay);
  if (!(t.warmup_epochs >= 0 && t.warmup_epochs < t.num_epochs)) {
    c.Fail("train.warmup_epochs",
           "must be in [0, num_epochs=" + Str(int64_t(t.num_epochs)) + "), got " + Str(t.warmup_epochs));
  }
  c.Note("train.recipe", [](detail::Constraint& k) { k.values = {"", "fb_lars"}; });
  if (!t.recipe.empty() && t.recipe != "fb_lars")
    c.Fail("train.recipe", "must be \"\" (none) or fb_lars (facebookresearch's LARS setup), got \"" + t.recipe + "\"");
  c.Positive("train.base_lr", t.base_lr);
  c.Enum("train.optimizer", t.optimizer, kOptimizers);
  for (int i = 0; i < 2; ++i) {
    c.Interval("train.betas[" + std::to_string(i) + "]", t.betas[i], 0.0, 1.0, /*open_hi=*/true);
  }
  c.Interval("train.momentum", t.momentum, 0.0, 1.0, /*open_hi=*/true);
  c.Positive("train.lars_eta", t.lars_eta);
  c.NonNegative("train.grad_clip", t.grad_clip);
  if (c.Enum("train.precision", t.precision, kPrecisions) && t.precision != "fp32" && device_ok &&
      res.device != "cuda") {
    c.Fail("train.precision",
           "\"" + t.precision + "\" needs resources.device: cuda, got device \"" + res.device + "\"; use fp32 on cpu");
  }
  c.IntMin("train.log_every", t.log_every, 1);
  c.IntMin("train.diagnostics_every", t.diagnostics_every, 0);
  c.IntRange("train.max_consecutive_nonfinite", t.max_consecutive_nonfinite, 1, 1000000);
  c.IntMin("train.max_steps", t.max_steps, 0);
  c.Interval("train.time_budget_s", t.time_budget_s, 0.0, 1e8);  // 0 = off; at most ~3 years

  // train.vicreg
  const auto& v = t.vicreg;
  c.IntRange("train.vicreg.proj_dim", v.proj_dim, 1, 1 << 20);
  c.IntRange("train.vicreg.proj_hidden_dim", v.proj_hidden_dim, 1, 1 << 20);
  c.IntRange("train.vicreg.proj_layers", v.proj_layers, 1, 64);
  c.NonNegative("train.vicreg.lambda_invariance", v.lambda_invariance);
  c.NonNegative("train.vicreg.mu_variance", v.mu_variance);
  c.NonNegative("train.vicreg.nu_covariance", v.nu_covariance);
  if (v.lambda_invariance == 0 && v.mu_variance == 0 && v.nu_covariance == 0) {
    c.Fail("train.vicreg.lambda_invariance",
           "lambda_invariance, mu_variance and nu_covariance are all 0: the loss would be constant");
  }
  c.Positive("train.vicreg.gamma", v.gamma);
  c.Positive("train.vicreg.epsilon", v.epsilon);
  c.Enum("train.vicreg.covariance_reduction", v.covariance_reduction, kCovReductions);
  c.Enum("train.vicreg.global_stats", v.global_stats, kGlobalStats);

  // augment
  CheckView(c, "augment.view1", cfg.augment.view1);
  CheckView(c, "augment.view2", cfg.augment.view2);
  c.Enum("augment.order", cfg.augment.order, kAugmentOrders);
  CheckChannelStats(c, "augment.mean", cfg.augment.mean, false);
  CheckChannelStats(c, "augment.std", cfg.augment.std, true);
  if (cfg.augment.mean.empty() != cfg.augment.std.empty()) {
    c.Fail(cfg.augment.mean.empty() ? "augment.mean" : "augment.std",
           "augment.mean and augment.std must be given together (or both left empty for the dataset's own)");
  }

  // checkpoint
  const auto& ck = cfg.checkpoint;
  c.IntRangeDependent("checkpoint.every_epochs", ck.every_epochs, 0, std::max(1, t.num_epochs));
  c.IntMin("checkpoint.every_steps", ck.every_steps, 0);
  c.IntRange("checkpoint.keep_last", ck.keep_last, 1, 1000000);
  CheckEpochList(c, "checkpoint.keep_epochs", ck.keep_epochs, cfg, "keep");

  // eval. Each evaluated epoch x dataset is a task the coordinator stores and runs: bounded, so
  // that a job file cannot make it insert and schedule millions (kMaxEvalEpochs, kMaxEvalDatasets).
  const auto& e = cfg.eval;
  if (e.epochs.size() > kMaxEvalEpochs) {
    c.Fail("eval.epochs", "lists " + Str(int64_t(e.epochs.size())) + " epochs; at most " +
                              Str(int64_t(kMaxEvalEpochs)) + " can be evaluated (use eval.every_epochs)");
  } else {
    CheckEpochList(c, "eval.epochs", e.epochs, cfg, "evaluate");
  }
  c.IntRangeDependent("eval.every_epochs", e.every_epochs, 0, std::max(1, t.num_epochs));
  if (e.every_epochs > 0 && e.epochs.size() <= kMaxEvalEpochs &&
      int64_t(t.num_epochs / e.every_epochs) + int64_t(e.epochs.size()) > int64_t(kMaxEvalEpochs)) {
    c.Fail("eval.every_epochs", "evaluates every " + Str(int64_t(e.every_epochs)) + " of " +
                                    Str(int64_t(t.num_epochs)) + " epochs (" +
                                    Str(int64_t(t.num_epochs / e.every_epochs)) + " evaluations" +
                                    (e.epochs.empty() ? "" : " plus eval.epochs") + "); at most " +
                                    Str(int64_t(kMaxEvalEpochs)) + " epochs can be evaluated: raise it");
  }
  if (e.every_epochs > 0 && ck.every_epochs > 0 && e.every_epochs % ck.every_epochs != 0) {
    c.Fail("eval.every_epochs", "must be a multiple of checkpoint.every_epochs=" + Str(int64_t(ck.every_epochs)) +
                                    " (only checkpointed epochs can be evaluated), got " +
                                    Str(int64_t(e.every_epochs)));
  }
  if (e.datasets.size() > kMaxEvalDatasets) {
    c.Fail("eval.datasets", "lists " + Str(int64_t(e.datasets.size())) + " datasets; at most " +
                                Str(int64_t(kMaxEvalDatasets)) + " can be evaluated");
  } else {
    std::set<std::string> names;
    for (size_t i = 0; i < e.datasets.size(); ++i) {
      const std::string f = "eval.datasets[" + std::to_string(i) + "].name";
      // One evaluation per (epoch, dataset name): a name listed twice (even with another data_dir)
      // would be the same task.
      if (c.Enum(f, e.datasets[i].name, kDatasets) && !names.insert(e.datasets[i].name).second) {
        c.Fail(f, "dataset \"" + e.datasets[i].name + "\" is listed twice");
      }
    }
  }
  std::set<std::string> probes;
  for (size_t i = 0; i < e.probes.size(); ++i) {
    std::string f = "eval.probes[" + std::to_string(i) + "]";
    if (c.Enum(f, e.probes[i], kProbes) && !probes.insert(e.probes[i]).second) {
      c.Fail(f, "probe \"" + e.probes[i] + "\" is listed twice");
    }
  }
  if (e.probes.empty() && (!e.epochs.empty() || e.every_epochs > 0 || e.final)) {
    c.Fail("eval.probes",
           "must name at least one of linear|knn when eval.epochs, eval.every_epochs or eval.final is set");
  }
  c.IntMin("eval.knn_k", e.knn_k, 1);
  c.Positive("eval.knn_temperature", e.knn_temperature);
  c.IntRange("eval.max_attempts", e.max_attempts, 1, 100);
  c.IntMin("eval.limit_train", e.limit_train, 0);
  c.IntMin("eval.limit_test", e.limit_test, 0);
  c.IntMin("eval.online_knn_every_epochs", e.online_knn_every_epochs, 0);
  c.IntMin("eval.online_knn_subset", e.online_knn_subset, 1);
  c.Enum("eval.resources.device", e.resources.device, kDevices);
  c.IntRange("eval.resources.cpus", e.resources.cpus, 0, 1024);

  // metrics
  const auto& mt = cfg.metrics;
  c.Note("metrics.address", [](detail::Constraint& k) { k.pattern = "^[^ \\t\\r\\n/]+$"; });
  if (mt.address.empty() || mt.address.find_first_of(" \t\r\n/") != std::string::npos) {
    c.Fail("metrics.address", "must be a host name or IP address (e.g. 127.0.0.1), got \"" + mt.address + "\"");
  }
  c.IntRange("metrics.port", mt.port, 0, 65535);
  if (mt.port > 0 && int64_t(mt.port) + res.ranks - 1 > 65535) {
    c.Fail("metrics.port", "rank r listens on port + local_rank; " + Str(int64_t(mt.port)) + " + " +
                               Str(int64_t(res.ranks - 1)) + " exceeds 65535");
  }
}

}  // namespace

std::vector<FieldError> Validate(const JobConfig& cfg) {
  std::vector<FieldError> errors;
  Checker c(errors, nullptr);
  Check(cfg, c);
  return errors;
}

namespace detail {
std::vector<Constraint> StaticConstraints() {
  // The defaults, plus the list items and the optional keys they leave empty, so that every rule
  // that does not depend on another key's value runs once.
  JobConfig cfg;
  cfg.augment.mean = {0.5, 0.5, 0.5};
  cfg.augment.std = {0.25, 0.25, 0.25};
  cfg.eval.datasets = {EvalDatasetConfig{"cifar10", ""}};
  cfg.eval.probes = {"linear"};
  std::vector<FieldError> errors;
  std::vector<Constraint> out;
  Checker c(errors, &out);
  Check(cfg, c);
  return out;
}
}  // namespace detail

}  // namespace vicreg::config
