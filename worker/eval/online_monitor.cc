#include "worker/eval/online_monitor.h"

#include <ATen/ATen.h>

#include "common/errors.h"
#include "worker/comm/communicator.h"
#include "worker/eval/online_probe.h"

namespace vicreg::eval {
namespace {

class OnlineMonitors final : public train::OnlineMonitor {
 public:
  OnlineMonitors(const config::JobConfig& cfg, std::shared_ptr<const data::Dataset> train_set, int feature_dim,
                 c10::Device device);
  void Update(const at::Tensor& features, const at::Tensor& labels) override;
  std::optional<double> LinearTop1(comm::Communicator* comm) override;
  void ResetEpoch() override;
  bool KnnDue(int64_t epoch) const override;
  double KnnTop1(model::VisionTransformer& encoder) override;

 private:
  c10::Device device_;
  std::unique_ptr<OnlineLinearProbe> linear_;  // null when eval.online_linear is off
  std::unique_ptr<OnlineKnn> knn_;             // null when eval.online_knn_every_epochs is 0
  int knn_every_ = 0;
};

OnlineMonitors::OnlineMonitors(const config::JobConfig& cfg, std::shared_ptr<const data::Dataset> train_set,
                               int feature_dim, c10::Device device)
    : device_(device) {
  const auto& e = cfg.eval;
  if (e.online_linear) {
    if (train_set->num_classes() <= 0)
      throw UserError("eval.online_linear: the training dataset " + train_set->name() +
                      " has no labels; set eval.online_linear: false");
    OnlineLinearProbeOptions o;
    o.feature_dim = feature_dim;
    o.num_classes = train_set->num_classes();
    linear_ = std::make_unique<OnlineLinearProbe>(o, device);
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
    OnlineKnnOptions o;
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
    knn_ = std::make_unique<OnlineKnn>(ds, o);
    knn_every_ = e.online_knn_every_epochs;
  }
}

void OnlineMonitors::Update(const at::Tensor& features, const at::Tensor& labels) {
  if (!linear_ || !labels.defined()) return;
  linear_->Update(features.detach(), labels.to(device_));
}

std::optional<double> OnlineMonitors::LinearTop1(comm::Communicator* comm) {
  if (!linear_) return std::nullopt;
  double correct = static_cast<double>(linear_->correct());
  double seen = static_cast<double>(linear_->seen());
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

void OnlineMonitors::ResetEpoch() {
  if (linear_) linear_->ResetStats();
}

bool OnlineMonitors::KnnDue(int64_t epoch) const { return knn_ && knn_every_ > 0 && epoch % knn_every_ == 0; }

double OnlineMonitors::KnnTop1(model::VisionTransformer& encoder) {
  VICREG_CHECK(knn_ != nullptr, "online kNN is off");
  return knn_->Evaluate(encoder).top1;
}

}  // namespace

std::unique_ptr<train::OnlineMonitor> MakeOnlineMonitor(const config::JobConfig& cfg,
                                                        std::shared_ptr<const data::Dataset> train_set, int feature_dim,
                                                        c10::Device device) {
  return std::make_unique<OnlineMonitors>(cfg, std::move(train_set), feature_dim, device);
}

}  // namespace vicreg::eval
