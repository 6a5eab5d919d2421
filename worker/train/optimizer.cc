#include "worker/train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <map>
#include <sstream>
#include <tuple>
#include <type_traits>

#include "common/errors.h"
#include "worker/train/lars.h"
#define VICREG_COMPAT_OPTIM
#include "worker/torch_compat.h"

namespace vicreg::train {

namespace {

// One clone per ISA level, picked at load time (GCC ifunc). The file is compiled with -fno-math-errno
// (worker/train/CMakeLists.txt) so that the sqrt vectorizes.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VICREG_ADAMW_KERNEL_ATTRS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VICREG_ADAMW_KERNEL_ATTRS
#endif

// torch::optim::AdamW with the per-parameter update fused into one pass over memory for contiguous
// CPU fp32 parameters (LibTorch's step makes ~9 full passes per tensor: mul_, mul_, add_, mul_,
// addcmul_, sqrt, div, add_, addcdiv_; this update is memory-bound). Same formula, same state
// (AdamWParamState, so SaveState/LoadState and torch serialization are unchanged), same order of
// the scalar factors; results agree with torch.optim.AdamW to float rounding. Other parameters
// (CUDA, fp64, non-contiguous, amsgrad) take LibTorch's implementation.
class FusedAdamW : public torch::optim::AdamW {
 public:
  FusedAdamW(std::vector<torch::optim::OptimizerParamGroup> groups, torch::optim::AdamWOptions defaults, AdamWImpl impl)
      : torch::optim::AdamW(std::move(groups), std::move(defaults)), impl_(impl) {}

  at::Tensor step(LossClosure closure = nullptr) override {
    bool all_fusable = impl_ == AdamWImpl::kAuto, all_device = impl_ != AdamWImpl::kReference, amsgrad = false;
    for (const auto& group : param_groups_) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      if (o.amsgrad()) amsgrad = true;
      for (const auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        if (!Fusable(p)) all_fusable = false;
        if (p.device().is_cpu() && impl_ != AdamWImpl::kForeach) all_device = false;
      }
    }
    if (amsgrad || (!all_fusable && !all_device)) return torch::optim::AdamW::step(std::move(closure));
    if (!all_fusable) return MultiTensorStep(std::move(closure));
    c10::NoGradGuard no_grad;
    const at::Tensor loss = EvaluateClosure(closure);
    for (auto& group : param_groups_) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto& st = StateFor(p);
        st.step(st.step() + 1);
        const double bc1 = 1 - std::pow(beta1, static_cast<double>(st.step()));
        const double bc2 = 1 - std::pow(beta2, static_cast<double>(st.step()));
        Update(p.data_ptr<float>(), p.grad().contiguous().data_ptr<float>(), st.exp_avg().data_ptr<float>(),
               st.exp_avg_sq().data_ptr<float>(), p.numel(), static_cast<float>(1 - o.lr() * o.weight_decay()),
               static_cast<float>(beta1), static_cast<float>(1 - beta1), static_cast<float>(beta2),
               static_cast<float>(1 - beta2), static_cast<float>(std::sqrt(bc2)), static_cast<float>(o.eps()),
               static_cast<float>(-(o.lr() / bc1)), o.weight_decay() != 0);
        p.unsafeGetTensorImpl()->bump_version();  // in-place update, visible to autograd's checks
        st.exp_avg().unsafeGetTensorImpl()->bump_version();
        st.exp_avg_sq().unsafeGetTensorImpl()->bump_version();
      }
    }
    return loss;
  }

 private:
  // p's state, created (step 0, zero moments) on its first update.
  torch::optim::AdamWParamState& StateFor(const at::Tensor& p) {
    const auto key = compat::OptimKey(p);
    auto it = state_.find(key);
    if (it == state_.end()) {
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(0);
      st->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
      st->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      it = state_.emplace(key, std::move(st)).first;
    }
    return static_cast<torch::optim::AdamWParamState&>(*it->second);
  }

  // The torch.optim.AdamW(foreach=True) update: params of one group (and one step count) are
  // updated together with _foreach ops. Same state objects as LibTorch's AdamW.
  at::Tensor MultiTensorStep(LossClosure closure) {
    c10::NoGradGuard no_grad;
    const at::Tensor loss = EvaluateClosure(closure);
    for (auto& group : param_groups_) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
      std::map<int64_t, std::vector<size_t>> by_step;  // step count -> indices into group.params()
      auto& params = group.params();
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& p = params[i];
        if (!p.grad().defined()) continue;
        auto& st = StateFor(p);
        st.step(st.step() + 1);
        by_step[st.step()].push_back(i);
      }
      for (const auto& [step, idx] : by_step) {
        std::vector<at::Tensor> ps, gs, ms, vs;
        for (size_t i : idx) {
          const auto& p = params[i];
          auto& st = static_cast<torch::optim::AdamWParamState&>(*state_.at(compat::OptimKey(p)));
          ps.push_back(p);
          gs.push_back(p.grad());
          ms.push_back(st.exp_avg());
          vs.push_back(st.exp_avg_sq());
        }
        const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
        const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
        if (o.weight_decay() != 0) at::_foreach_mul_(ps, 1 - o.lr() * o.weight_decay());
        at::_foreach_mul_(ms, beta1);
        at::_foreach_add_(ms, gs, 1 - beta1);
        at::_foreach_mul_(vs, beta2);
        at::_foreach_addcmul_(vs, gs, gs, 1 - beta2);
        auto denom = at::_foreach_sqrt(vs);
        at::_foreach_div_(denom, std::sqrt(bc2));
        at::_foreach_add_(denom, o.eps());
        at::_foreach_addcdiv_(ps, ms, denom, -(o.lr() / bc1));
      }
    }
    return loss;
  }

  AdamWImpl impl_;

  static bool Fusable(const at::Tensor& p) {
    return p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_contiguous() &&
           p.grad().scalar_type() == at::kFloat && p.grad().device().is_cpu();
  }
  // p <- p * decay;  m <- m * b1 + (1 - b1) g;  v <- v * b2 + (1 - b2) g^2
  // p <- p + neg_step * m / (sqrt(v) / sqrt_bc2 + eps)          (torch.optim.AdamW, decoupled decay)
  VICREG_ADAMW_KERNEL_ATTRS
  static void Update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                     int64_t n, float decay, float b1, float omb1, float b2, float omb2, float sqrt_bc2, float eps,
                     float neg_step, bool apply_decay) {
    if (!apply_decay) decay = 1.0f;  // x * 1.0f == x exactly: one branch-free loop
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float pi = p[i] * decay;
      const float mi = m[i] * b1 + omb1 * gi;
      const float vi = v[i] * b2 + omb2 * (gi * gi);
      m[i] = mi;
      v[i] = vi;
      p[i] = pi + neg_step * (mi / (std::sqrt(vi) / sqrt_bc2 + eps));
    }
  }
};

}  // namespace

OptimizerOptions OptimizerOptions::FromConfig(const config::TrainConfig& t) {
  VICREG_CHECK(t.optimizer == "adamw" || t.optimizer == "lars",
               "train.optimizer '" + t.optimizer + "' passed no config::Validate");
  OptimizerOptions o;
  o.type = t.optimizer == "lars" ? OptimizerType::kLars : OptimizerType::kAdamW;
  o.lr = t.learning_rate;
  o.weight_decay = t.weight_decay;
  o.beta1 = t.betas[0];
  o.beta2 = t.betas[1];
  o.momentum = t.momentum;
  o.eta = t.lars_eta;
  return o;
}

std::unique_ptr<torch::optim::Optimizer> BuildOptimizer(const model::ParamGroups& groups, const OptimizerOptions& o) {
  using torch::optim::OptimizerParamGroup;
  if (o.type == OptimizerType::kAdamW) {
    auto base = torch::optim::AdamWOptions(o.lr).betas(std::make_tuple(o.beta1, o.beta2)).eps(o.eps);
    std::vector<OptimizerParamGroup> pg;
    pg.emplace_back(groups.decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(base).weight_decay(o.weight_decay)));
    pg.emplace_back(groups.no_decay,
                    std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0.0)));
    return std::make_unique<FusedAdamW>(std::move(pg), torch::optim::AdamWOptions(base).weight_decay(o.weight_decay),
                                        o.adamw_impl);
  }
  // OptimizerType::kLars
  auto base = LarsOptions(o.lr).momentum(o.momentum).eta(o.eta);
  std::vector<OptimizerParamGroup> pg;
  pg.emplace_back(groups.decay,
                  std::make_unique<LarsOptions>(LarsOptions(base).weight_decay(o.weight_decay).exclude(false)));
  pg.emplace_back(groups.no_decay, std::make_unique<LarsOptions>(LarsOptions(base).weight_decay(0.0).exclude(true)));
  return std::make_unique<Lars>(std::move(pg), LarsOptions(base).weight_decay(o.weight_decay));
}

at::Tensor EvaluateClosure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  at::AutoGradMode enable_grad(true);
  return closure();
}

std::string OptimizerKind(const torch::optim::Optimizer& opt) {
  if (dynamic_cast<const torch::optim::AdamW*>(&opt)) return "adamw";
  if (dynamic_cast<const Lars*>(&opt)) return "lars";
  VICREG_CHECK(false, "unsupported optimizer type");
  return "";
}

void SetLearningRate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

double GetLearningRate(const torch::optim::Optimizer& opt) {
  VICREG_CHECK(!opt.param_groups().empty(), "optimizer has no parameter groups");
  return opt.param_groups().front().options().get_lr();
}

namespace {

compat::OptimStateKey Key(const at::Tensor& p) { return compat::OptimKey(p); }

std::string Prefix(size_t g, size_t i) { return "group" + std::to_string(g) + ".param" + std::to_string(i) + "."; }

class StateReader {
 public:
  StateReader(const c10::IValue& v, std::string source) : source_(std::move(source)) {
    if (!v.isGenericDict()) Fail("optimizer", "is not a dict (got " + v.tagKind() + ")");
    dict_ = v.toGenericDict();
    for (const auto& kv : dict_) {
      if (!kv.key().isString()) Fail("optimizer", "has a non-string key");
    }
  }
  bool Has(const std::string& key) const { return dict_.contains(key); }
  const c10::IValue& Get(const std::string& key) const {
    auto it = dict_.find(key);
    if (it == dict_.end()) Fail(key, "is missing");
    return it->value();
  }
  int64_t Int(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isInt()) Fail(key, "must be an int, got " + v.tagKind());
    return v.toInt();
  }
  double Double(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isDouble()) Fail(key, "must be a float, got " + v.tagKind());
    return v.toDouble();
  }
  std::string String(const std::string& key) const {
    const auto& v = Get(key);
    if (!v.isString()) Fail(key, "must be a string, got " + v.tagKind());
    return v.toStringRef();
  }
  // A copy of the stored tensor, with p's dtype/device; its shape must equal p's.
  at::Tensor TensorLike(const std::string& key, const at::Tensor& p) const {
    const auto& v = Get(key);
    if (!v.isTensor()) Fail(key, "must be a tensor, got " + v.tagKind());
    const auto& t = v.toTensor();
    if (t.sizes() != p.sizes())
      Fail(key, "has shape " + c10::str(t.sizes()) + " but the parameter has shape " + c10::str(p.sizes()));
    if (t.scalar_type() != p.scalar_type())
      Fail(key, std::string("has dtype ") + c10::toString(t.scalar_type()) + " but the parameter has " +
                    c10::toString(p.scalar_type()));
    return t.to(p.device(), /*non_blocking=*/false, /*copy=*/true).contiguous();
  }
  [[noreturn]] void Fail(const std::string& key, const std::string& msg) const {
    throw UserError(source_ + ": optimizer state '" + key + "' " + msg);
  }

 private:
  std::string source_;
  c10::impl::GenericDict dict_{c10::StringType::get(), c10::AnyType::get()};
};

}  // namespace

// Checkpoints hold host tensors: a checkpoint written on a GPU loads in a CPU-only process (and in
// torch.load without map_location).
static at::Tensor HostCopy(const at::Tensor& t) {
  return t.detach().to(at::kCPU, /*non_blocking=*/false, /*copy=*/true);
}

c10::IValue SaveState(const torch::optim::Optimizer& opt) {
  const std::string kind = OptimizerKind(opt);
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("kind", kind);
  const auto& groups = opt.param_groups();
  d.insert("num_groups", static_cast<int64_t>(groups.size()));
  const auto& state = opt.state();
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string gp = "group" + std::to_string(g) + ".";
    d.insert(gp + "lr", groups[g].options().get_lr());
    d.insert(gp + "num_params", static_cast<int64_t>(groups[g].params().size()));
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      auto it = state.find(Key(groups[g].params()[i]));
      if (it == state.end()) continue;
      const std::string pp = Prefix(g, i);
      if (kind == "adamw") {
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        d.insert(pp + "step", s.step());
        d.insert(pp + "exp_avg", HostCopy(s.exp_avg()));
        d.insert(pp + "exp_avg_sq", HostCopy(s.exp_avg_sq()));
        if (s.max_exp_avg_sq().defined()) d.insert(pp + "max_exp_avg_sq", HostCopy(s.max_exp_avg_sq()));
      } else {
        const auto& s = static_cast<const LarsParamState&>(*it->second);
        d.insert(pp + "mu", HostCopy(s.mu()));
      }
    }
  }
  return d;
}

void LoadState(torch::optim::Optimizer& opt, const c10::IValue& value, const std::string& source) {
  StateReader r(value, source);
  const std::string kind = OptimizerKind(opt);
  const std::string saved_kind = r.String("kind");
  if (saved_kind != kind)
    r.Fail("kind", "is '" + saved_kind + "' but train.optimizer is '" + kind + "' (an optimizer change cannot resume)");
  auto& groups = opt.param_groups();
  if (r.Int("num_groups") != static_cast<int64_t>(groups.size()))
    r.Fail("num_groups", "is " + std::to_string(r.Int("num_groups")) + ", expected " + std::to_string(groups.size()));
  // Validate everything before touching the optimizer, so a bad state leaves it unchanged.
  std::decay_t<decltype(opt.state())> fresh;  // key type differs across LibTorch versions
  std::vector<double> lrs;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string gp = "group" + std::to_string(g) + ".";
    const auto n = r.Int(gp + "num_params");
    if (n != static_cast<int64_t>(groups[g].params().size()))
      r.Fail(gp + "num_params", "is " + std::to_string(n) + ", but the model has " +
                                    std::to_string(groups[g].params().size()) + " parameters in this group");
    lrs.push_back(r.Double(gp + "lr"));
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const auto& p = groups[g].params()[i];
      const std::string pp = Prefix(g, i);
      if (kind == "adamw") {
        if (!r.Has(pp + "step")) continue;
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        const auto step = r.Int(pp + "step");
        if (step < 0) r.Fail(pp + "step", "must be >= 0, got " + std::to_string(step));
        s->step(step);
        s->exp_avg(r.TensorLike(pp + "exp_avg", p));
        s->exp_avg_sq(r.TensorLike(pp + "exp_avg_sq", p));
        if (r.Has(pp + "max_exp_avg_sq")) s->max_exp_avg_sq(r.TensorLike(pp + "max_exp_avg_sq", p));
        fresh[Key(p)] = std::move(s);
      } else {
        if (!r.Has(pp + "mu")) continue;
        auto s = std::make_unique<LarsParamState>();
        s->mu(r.TensorLike(pp + "mu", p));
        fresh[Key(p)] = std::move(s);
      }
    }
  }
  opt.state() = std::move(fresh);
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(lrs[g]);
}

}  // namespace vicreg::train
