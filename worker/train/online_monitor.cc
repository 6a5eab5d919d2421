#include "worker/train/online_monitor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/errors.h"
#include "worker/comm/communicator.h"
#include "worker/eval/online_probe.h"

namespace vicreg::train {

struct OnlineMonitor::Impl {
  c10::Device device{c10::kCPU};
  std::unique_ptr<eval::OnlineLinearProbe> linear;
  std::unique_ptr<eval::OnlineKnn> knn;
  int knn_every = 0;
};

OnlineMonitor::OnlineMonitor(const config::JobConfig& cfg, std::shared_ptr<const data::Dataset> train_set,
                             int feature_dim, c10::Device device)
    : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  const auto& e = cfg.eval;
  if (e.online_linear) {
    if (train_set->num_classes() <= 0)
      throw UserError("eval.online_linear: the training dataset " + train_set->name() +
                      " has no labels; set eval.online_linear: false");
    eval::OnlineLinearProbeOptions o;
    o.feature_dim = feature_dim;
    o.num_classes = train_set->num_classes();
    impl_->linear = std::make_unique<eval::OnlineLinearProbe>(o, device);
  }
  if (e.online_knn_every_epochs > 0) {
    std::shared_ptr<const data::Dataset> ds = train_set;
    if (!e.datasets.empty()) {
      data::DatasetSpec spec{e.datasets[0].name,
                             e.datasets[0].data_dir.empty() ? cfg.data.data_dir : e.datasets[0].data_dir, "train", 0};
      ds = data::OpenDataset(spec);
    }
    if (ds->num_classes() <= 0)
      throw UserError("eval.online_knn_every_epochs: dataset " + ds->name() +
                      " has no labels; name a labeled one in eval.datasets or set it to 0");
    eval::OnlineKnnOptions o;
    o.query_size = e.online_knn_subset;
    o.knn.k = e.knn_k;
    o.knn.temperature = e.knn_temperature;
    o.extract.image_size = cfg.model.image_size;
    auto pick = [](const std::vector<double>& v, std::array<double, 3> d) {
      return v.size() == 3 ? std::array<double, 3>{v[0], v[1], v[2]} : d;
    };
    o.extract.mean = pick(cfg.augment.mean, ds->mean());
    o.extract.std = pick(cfg.augment.std, ds->std());
    o.extract.device = device;
    o.extract.progress = false;
    o.seed = cfg.train.seed;
    impl_->knn = std::make_unique<eval::OnlineKnn>(ds, o);
    impl_->knn_every = e.online_knn_every_epochs;
  }
}

OnlineMonitor::~OnlineMonitor() = default;

bool OnlineMonitor::enabled() const { return impl_->linear || impl_->knn; }

void OnlineMonitor::Update(const at::Tensor& features, const at::Tensor& labels) {
  if (!impl_->linear || !labels.defined()) return;
  impl_->linear->Update(features.detach(), labels.to(impl_->device));
}

std::optional<double> OnlineMonitor::LinearTop1(comm::Communicator* comm) {
  if (!impl_->linear) return std::nullopt;
  double correct = static_cast<double>(impl_->linear->correct());
  double seen = static_cast<double>(impl_->linear->seen());
  if (comm && comm->world_size() > 1) {
    at::Tensor t = at::tensor({correct, seen}, at::kDouble).to(comm->device());
    comm->AllReduceSum(t);
    t = t.cpu();
    correct = t[0].item<double>();
    seen = t[1].item<double>();
  }
  if (seen <= 0) return std::nullopt;
  return correct / seen;
}

void OnlineMonitor::ResetEpoch() {
  if (impl_->linear) impl_->linear->ResetStats();
}

bool OnlineMonitor::KnnDue(int64_t epoch) const {
  return impl_->knn && impl_->knn_every > 0 && epoch % impl_->knn_every == 0;
}

double OnlineMonitor::KnnTop1(model::VisionTransformer& encoder) {
  VICREG_CHECK(impl_->knn != nullptr, "online kNN is off");
  return impl_->knn->Evaluate(encoder).top1;
}

}  // namespace vicreg::train
