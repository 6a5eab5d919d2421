#include "worker/eval/online_probe.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "common/errors.h"

namespace vicreg::eval {

struct OnlineLinearProbe::Impl {
  OnlineLinearProbeOptions opts;
  c10::Device device;
  torch::nn::Linear linear{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  int64_t correct = 0, seen = 0;
  Impl(const OnlineLinearProbeOptions& o, c10::Device d) : opts(o), device(d) {}
};

OnlineLinearProbe::OnlineLinearProbe(const OnlineLinearProbeOptions& opts, c10::Device device)
    : impl_(std::make_unique<Impl>(opts, device)) {
  if (opts.feature_dim < 1)
    throw UserError("online probe: feature_dim must be >= 1, got " + std::to_string(opts.feature_dim));
  if (opts.num_classes < 2)
    throw UserError("online probe: num_classes must be >= 2, got " + std::to_string(opts.num_classes));
  if (!(opts.lr > 0) || !std::isfinite(opts.lr))
    throw UserError("online probe: lr must be > 0, got " + std::to_string(opts.lr));
  if (!(opts.weight_decay >= 0))
    throw UserError("online probe: weight_decay must be >= 0, got " + std::to_string(opts.weight_decay));
  if (opts.optimizer != "adam" && opts.optimizer != "sgd")
    throw UserError("online probe: optimizer must be adam or sgd, got '" + opts.optimizer + "'");
  {
    // Linear's constructor draws its default init from the global CPU generator: restore the
    // generator afterwards and zero-init instead, so the training run's randomness is unchanged.
    // (Not locked across the constructor: the init takes the generator's mutex itself.)
    auto gen = at::detail::getDefaultCPUGenerator();
    const auto saved = gen.get_state();
    impl_->linear = torch::nn::Linear(opts.feature_dim, opts.num_classes);
    gen.set_state(saved);
  }
  {
    at::NoGradGuard no_grad;
    impl_->linear->weight.zero_();
    impl_->linear->bias.zero_();
  }
  impl_->linear->to(device);
  if (opts.optimizer == "adam") {
    impl_->optimizer = std::make_unique<torch::optim::Adam>(
        impl_->linear->parameters(), torch::optim::AdamOptions(opts.lr).weight_decay(opts.weight_decay));
  } else {
    impl_->optimizer = std::make_unique<torch::optim::SGD>(
        impl_->linear->parameters(),
        torch::optim::SGDOptions(opts.lr).momentum(opts.momentum).weight_decay(opts.weight_decay));
  }
}

OnlineLinearProbe::~OnlineLinearProbe() = default;
OnlineLinearProbe::OnlineLinearProbe(OnlineLinearProbe&&) noexcept = default;
OnlineLinearProbe& OnlineLinearProbe::operator=(OnlineLinearProbe&&) noexcept = default;

OnlineProbeStep OnlineLinearProbe::Update(const at::Tensor& features, const at::Tensor& labels) {
  // features: [B, D], labels: [B]
  auto& im = *impl_;
  if (features.dim() != 2 || features.size(1) != im.opts.feature_dim)
    throw UserError("online probe: features must be [B, " + std::to_string(im.opts.feature_dim) + "], got dim " +
                    std::to_string(features.dim()) +
                    (features.dim() == 2 ? " width " + std::to_string(features.size(1)) : ""));
  if (labels.dim() != 1 || labels.size(0) != features.size(0))
    throw UserError("online probe: labels must be [B] with B = " + std::to_string(features.size(0)));
  auto y = labels.to(im.device, at::kLong);
  auto keep = y.ge(0);  // [B]
  if (y.numel() && y.max().item<int64_t>() >= im.opts.num_classes)
    throw UserError("online probe: label " + std::to_string(y.max().item<int64_t>()) + " >= num_classes " +
                    std::to_string(im.opts.num_classes));
  OnlineProbeStep out;
  const auto idx = keep.nonzero().squeeze(1);  // [B']
  out.samples = idx.size(0);
  if (out.samples == 0) return out;
  auto x = features.detach().to(im.device, at::kFloat).index_select(0, idx);  // [B', D]
  y = y.index_select(0, idx);                                                 // [B']
  at::AutoGradMode grad_on(true);
  auto logits = im.linear->forward(x);  // [B', C]
  auto loss = at::cross_entropy_loss(logits, y);
  im.optimizer->zero_grad();
  loss.backward();
  im.optimizer->step();
  const int64_t correct = logits.detach().argmax(1).eq(y).sum().item<int64_t>();
  im.correct += correct;
  im.seen += out.samples;
  out.loss = loss.item<double>();
  out.batch_top1 = static_cast<double>(correct) / static_cast<double>(out.samples);
  return out;
}

at::Tensor OnlineLinearProbe::Predict(const at::Tensor& features) const {
  at::NoGradGuard no_grad;
  return impl_->linear->forward(features.to(impl_->device, at::kFloat));
}

double OnlineLinearProbe::running_top1() const {
  return impl_->seen ? static_cast<double>(impl_->correct) / static_cast<double>(impl_->seen) : 0.0;
}
int64_t OnlineLinearProbe::correct() const { return impl_->correct; }
int64_t OnlineLinearProbe::seen() const { return impl_->seen; }
void OnlineLinearProbe::ResetStats() { impl_->correct = impl_->seen = 0; }

std::vector<std::pair<std::string, at::Tensor>> OnlineLinearProbe::named_parameters() const {
  return {{"weight", impl_->linear->weight.detach()}, {"bias", impl_->linear->bias.detach()}};
}

// ---- OnlineKnn -------------------------------------------------------------------------

OnlineKnn::OnlineKnn(std::shared_ptr<const data::Dataset> dataset, OnlineKnnOptions opts)
    : dataset_(std::move(dataset)), opts_(std::move(opts)) {
  VICREG_CHECK(dataset_ != nullptr, "OnlineKnn needs a dataset");
  if (dataset_->num_classes() < 1)
    throw UserError("online kNN: dataset " + dataset_->name() + " is unlabeled; use a labeled split (e.g. train)");
  const int64_t n = dataset_->size();
  if (n < 2)
    throw UserError("online kNN: dataset " + dataset_->name() + " has " + std::to_string(n) + " samples, need >= 2");
  if (opts_.query_size < 1)
    throw UserError("online kNN: eval.online_knn_subset must be >= 1, got " + std::to_string(opts_.query_size));
  if (opts_.bank_size < 0)
    throw UserError("online kNN: bank_size must be >= 0, got " + std::to_string(opts_.bank_size));
  // A local generator: the global RNG (and so the training run) is not affected.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(opts_.seed);
  const auto perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
  const int64_t nq = std::min(opts_.query_size, n - 1);
  const int64_t rest = n - nq;
  const int64_t nbank = opts_.bank_size == 0 ? rest : std::min(opts_.bank_size, rest);
  const int64_t* p = perm.data_ptr<int64_t>();
  queries_.assign(p, p + nq);
  bank_.assign(p + nq, p + nq + nbank);
  // Sorted reads are friendlier to memory-mapped files; the order does not matter for kNN.
  std::sort(queries_.begin(), queries_.end());
  std::sort(bank_.begin(), bank_.end());
}

KnnResult OnlineKnn::Evaluate(const EncodeFn& encode) const {
  auto eo = opts_.extract;
  eo.label = "online kNN bank";
  auto bank = ExtractFeatures(encode, *dataset_, eo, bank_);
  eo.label = "online kNN queries";
  auto queries = ExtractFeatures(encode, *dataset_, eo, queries_);
  return KnnClassify(bank.features, bank.labels, queries.features, queries.labels, dataset_->num_classes(), opts_.knn);
}

KnnResult OnlineKnn::Evaluate(model::VisionTransformer& encoder) const {
  const bool was_training = encoder->is_training();
  encoder->eval();
  struct Restore {
    model::VisionTransformer& e;
    bool training;
    ~Restore() { e->train(training); }
  } restore{encoder, was_training};
  return Evaluate([&](const at::Tensor& x) { return encoder->forward(x); });
}

}  // namespace vicreg::eval
