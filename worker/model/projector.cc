#include "worker/model/projector.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include <string>

#include "common/errors.h"
#include "worker/model/linear.h"
#include "worker/model/sync_batchnorm.h"

namespace vicreg::model {

ProjectorOptions ProjectorOptions::FromConfig(int64_t in_dim, const config::VicregConfig& v) {
  auto bad = [](const std::string& field, int64_t got) {
    throw UserError("train.vicreg." + field + ": must be >= 1, got " + std::to_string(got));
  };
  if (v.proj_layers < 1) bad("proj_layers", v.proj_layers);
  if (v.proj_dim < 1) bad("proj_dim", v.proj_dim);
  if (v.proj_hidden_dim < 1 && v.proj_layers > 1) bad("proj_hidden_dim", v.proj_hidden_dim);
  return ProjectorOptions(in_dim, v.proj_hidden_dim, v.proj_dim, v.proj_layers);
}

struct ProjectorImpl::Parts {
  std::vector<torch::nn::Linear> linears;  // layers entries
  std::vector<SyncBatchNorm1d> norms;      // layers - 1 entries
};

ProjectorImpl::ProjectorImpl(const ProjectorOptions& opts, comm::Communicator* comm)
    : opts_(opts), parts_(std::make_shared<Parts>()) {
  VICREG_CHECK(opts_.layers() >= 1 && opts_.in_dim() >= 1 && opts_.out_dim() >= 1 &&
                   (opts_.layers() == 1 || opts_.hidden_dim() >= 1),
               "invalid ProjectorOptions");
  int64_t index = 0, in = opts_.in_dim();
  for (int64_t l = 0; l < opts_.layers(); ++l) {
    const bool last = l + 1 == opts_.layers();
    const int64_t out = last ? opts_.out_dim() : opts_.hidden_dim();
    parts_->linears.push_back(
        register_module(std::to_string(index++), torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(!last))));
    if (!last) {
      parts_->norms.push_back(register_module(
          std::to_string(index++),
          SyncBatchNorm1d(SyncBatchNormOptions(out).eps(opts_.bn_eps()).momentum(opts_.bn_momentum()), comm)));
      ++index;  // ReLU (no parameters) keeps facebookresearch's Sequential index
    }
    in = out;
  }
}

void ProjectorImpl::set_communicator(comm::Communicator* comm) {
  for (auto& n : parts_->norms) n->set_communicator(comm);
}

void ProjectorImpl::reset_parameters() {
  for (auto& l : parts_->linears) l->reset_parameters();
  for (auto& n : parts_->norms) n->reset_parameters();
}

at::Tensor ProjectorImpl::forward(const at::Tensor& h) {
  auto z = h;
  const auto& lin = parts_->linears;
  for (size_t l = 0; l < lin.size(); ++l) {
    z = model::Linear(z, lin[l]->weight, lin[l]->bias);  // [B, H] or [B, P]
    if (l + 1 < lin.size()) z = at::relu(parts_->norms[l]->forward(z));
  }
  return z;
}

at::Tensor ProjectorImpl::forward_stacked(const at::Tensor& h, int64_t groups) {
  VICREG_CHECK(groups >= 1 && h.dim() == 2 && h.size(0) % groups == 0,
               "forward_stacked: " + std::to_string(groups) + " groups do not divide " + c10::str(h.sizes()));
  if (groups == 1) return forward(h);
  const int64_t B = h.size(0) / groups;
  auto z = h;
  const auto& lin = parts_->linears;
  for (size_t l = 0; l < lin.size(); ++l) {
    z = model::Linear(z, lin[l]->weight, lin[l]->bias);  // [G*B, H] or [G*B, P]
    if (l + 1 < lin.size()) {
      std::vector<at::Tensor> normed;
      for (int64_t g = 0; g < groups; ++g) normed.push_back(parts_->norms[l]->forward(z.narrow(0, g * B, B)));
      z = at::cat(normed, 0);  // [G*B, H]
      z.relu_();
    }
  }
  return z;
}

}  // namespace vicreg::model
