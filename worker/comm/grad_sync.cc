#include "worker/comm/grad_sync.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <map>

#include "common/errors.h"

namespace vicreg::comm {

GradientSynchronizer::GradientSynchronizer(std::vector<at::Tensor> params, std::shared_ptr<Communicator> comm,
                                           int64_t bucket_bytes)
    : GradientSynchronizer(std::move(params), std::move(comm), GradSyncOptions{bucket_bytes, true}) {}

GradientSynchronizer::GradientSynchronizer(std::vector<at::Tensor> params, std::shared_ptr<Communicator> comm,
                                           GradSyncOptions opts, std::vector<std::string> names)
    : params_(std::move(params)), names_(std::move(names)), comm_(std::move(comm)), opts_(opts) {
  VICREG_CHECK(comm_ != nullptr, "GradientSynchronizer needs a communicator");
  VICREG_CHECK(opts_.bucket_bytes > 0, "bucket_bytes must be > 0");
  VICREG_CHECK(names_.empty() || names_.size() == params_.size(), "names must be empty or one per parameter");
  where_.assign(params_.size(), {-1, -1});
  if (comm_->world_size() == 1) return;
  overlap_ = opts_.overlap && comm_->SupportsAsync();

  // Reverse parameter order; a new bucket when dtype/device change or the size would exceed the cap.
  Bucket cur;
  int64_t cur_elems = 0, cur_bytes = 0;
  at::ScalarType cur_type = at::kFloat;
  auto close = [&] {
    if (cur.slots.empty()) return;
    const auto& p0 = params_[cur.slots.front().param];
    cur.flat = at::zeros({cur_elems + static_cast<int64_t>(cur.slots.size())},
                         at::TensorOptions().dtype(p0.scalar_type()).device(comm_->device()));
    buckets_.push_back(std::move(cur));
    cur = Bucket();
    cur_elems = cur_bytes = 0;
  };
  for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i) {
    const at::Tensor& p = params_[i];
    VICREG_CHECK(p.defined(), "parameter " + std::to_string(i) + " is undefined");
    if (!p.requires_grad()) continue;
    VICREG_CHECK(at::isFloatingType(p.scalar_type()),
                 "parameter " + std::to_string(i) + " requires grad but is not floating point");
    VICREG_CHECK(p.device() == comm_->device(), "parameter " + (names_.empty() ? std::to_string(i) : names_[i]) +
                                                    " is on " + p.device().str() + " but the " + comm_->backend() +
                                                    " communicator works on " + comm_->device().str());
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (!cur.slots.empty() && (p.scalar_type() != cur_type || cur_bytes + bytes > opts_.bucket_bytes)) close();
    cur_type = p.scalar_type();
    Slot s;
    s.param = i;
    s.offset = cur_elems;
    s.numel = p.numel();
    cur.slots.push_back(s);
    cur_elems += p.numel();
    cur_bytes += bytes;
  }
  close();
  for (int b = 0; b < static_cast<int>(buckets_.size()); ++b) {
    for (int s = 0; s < static_cast<int>(buckets_[b].slots.size()); ++s) where_[buckets_[b].slots[s].param] = {b, s};
  }
  for (int i = 0; i < static_cast<int>(params_.size()); ++i) {
    if (where_[i].first < 0) continue;
    hook_ids_.push_back(params_[i].register_hook([this, i](const at::Tensor& grad) { OnGrad(i, grad); }));
    hooked_.push_back(i);
  }
}

GradientSynchronizer::~GradientSynchronizer() {
  for (size_t k = 0; k < hooked_.size(); ++k) {
    try {
      params_[hooked_[k]].remove_hook(hook_ids_[k]);
    } catch (...) {
    }
  }
}

std::vector<std::vector<int>> GradientSynchronizer::BucketLayout() const {
  std::vector<std::vector<int>> out;
  for (const auto& b : buckets_) {
    out.emplace_back();
    for (const auto& s : b.slots) out.back().push_back(s.param);
  }
  return out;
}

// grad: same shape as the parameter; called by autograd once per backward pass.
void GradientSynchronizer::OnGrad(int param, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [b, s] = where_[param];
  Bucket& bucket = buckets_[b];
  Slot& slot = bucket.slots[s];
  if (bucket.launched) {
    throw InternalError("gradient of parameter " + (names_.empty() ? "#" + std::to_string(param) : names_[param]) +
                        " arrived after its bucket was sent: call GradientSynchronizer::Finish() after each backward");
  }
  at::NoGradGuard no_grad;
  at::Tensor dst = bucket.flat.narrow(0, slot.offset, slot.numel);
  if (!slot.has_grad) {
    dst.copy_(grad.reshape({-1}));
    slot.has_grad = true;
    ++bucket.ready;
  } else {
    dst.add_(grad.reshape({-1}));
  }
  if (!overlap_) return;
  if (bucket.ready == static_cast<int>(bucket.slots.size())) LaunchReadyLocked();
  // Drive progress of what is in flight (MPI progresses only inside MPI calls).
  for (size_t k = 0; k < next_launch_; ++k) {
    if (buckets_[k].work) buckets_[k].work->Test();
  }
}

void GradientSynchronizer::LaunchReadyLocked() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int>(buckets_[next_launch_].slots.size())) {
    LaunchLocked(buckets_[next_launch_], /*in_backward=*/true);
    ++next_launch_;
  }
}

void GradientSynchronizer::LaunchLocked(Bucket& b, bool in_backward) {
  at::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(b.slots.size());
  const int64_t flags_at = b.flat.numel() - n;
  for (int64_t k = 0; k < n; ++k) {
    const Slot& s = b.slots[k];
    if (!s.has_grad) b.flat.narrow(0, s.offset, s.numel).zero_();
  }
  // Flags: 1 where this rank produced the gradient.
  std::vector<float> flags(n);
  for (int64_t k = 0; k < n; ++k) flags[k] = b.slots[k].has_grad ? 1.f : 0.f;
  b.flat.narrow(0, flags_at, n).copy_(at::from_blob(flags.data(), {n}, at::kFloat));
  b.launched = true;
  if (overlap_) {
    b.work = comm_->AllReduceSumAsync(b.flat);
  } else {
    comm_->AllReduceSum(b.flat);
  }
  (in_backward ? stats_.buckets_launched_in_backward : stats_.buckets_launched_in_finish)++;
}

void GradientSynchronizer::Finish() {
  if (comm_->world_size() == 1) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  for (; next_launch_ < buckets_.size(); ++next_launch_) LaunchLocked(buckets_[next_launch_], /*in_backward=*/false);
  at::NoGradGuard no_grad;
  const double inv_world = 1.0 / comm_->world_size();
  for (auto& b : buckets_) {
    if (b.work) b.work->Wait();
    b.work.reset();
    const int64_t n = static_cast<int64_t>(b.slots.size());
    at::Tensor flags = b.flat.narrow(0, b.flat.numel() - n, n).to(at::kCPU, at::kFloat);
    const float* f = flags.data_ptr<float>();
    for (int64_t k = 0; k < n; ++k) {
      Slot& s = b.slots[k];
      at::Tensor& p = params_[s.param];
      if (f[k] > 0.5f) {
        at::Tensor avg = b.flat.narrow(0, s.offset, s.numel).view(p.sizes());
        at::Tensor& g = p.mutable_grad();
        if (g.defined() && g.sizes() == p.sizes()) {
          g.copy_(avg);
          g.mul_(inv_world);
        } else {
          g = avg.mul(inv_world);
        }
      }
      s.has_grad = false;
    }
    b.ready = 0;
    b.launched = false;
  }
  next_launch_ = 0;
  ++stats_.steps;
  stats_.finish_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace vicreg::comm
