// The trained network: encoder (timm ViT) + projector. state_dict keys are
// "encoder.<timm key>" and "projector.<facebookresearch Sequential index>.*"; the encoder's
// sub-dict ("encoder." stripped) loads into timm.create_model(..., num_classes=0) strictly.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "common/config.h"
#include "worker/model/param_groups.h"
#include "worker/model/projector.h"
#include "worker/model/vit.h"

namespace vicreg::comm {
class Communicator;
}

namespace vicreg::model {

struct VicregModelOptions {
  VitOptions encoder;
  ProjectorOptions projector;
  // model -> encoder geometry (presets resolved), train.vicreg -> projector dims.
  static VicregModelOptions FromConfig(const config::ModelConfig& m, const config::VicregConfig& v);
};

struct VicregOutput {
  at::Tensor features;  // [B, D] normed CLS token (what evaluation uses)
  at::Tensor z;         // [B, P] projector output (what the loss uses)
};

struct VicregPairOutput {
  at::Tensor features_a, features_b;  // [B, D] each
  at::Tensor za, zb;                  // [B, P] each
};

class VicregModelImpl : public torch::nn::Module {
 public:
  explicit VicregModelImpl(const VicregModelOptions& opts, comm::Communicator* comm = nullptr);
  // x: [B, C, S, S] -> {features [B, D], z [B, P]}
  VicregOutput forward(const at::Tensor& x);
  // xa, xb: [B, C, S, S] the two views. Same result as forward(xa), forward(xb) (BN statistics and
  // running-stat updates per view, a then b) but the encoder and the projector's Linears run once
  // on [2B] rows (bigger GEMMs, one read of each weight). za/zb/features_* are views of [2B] tensors.
  VicregPairOutput forward_pair(const at::Tensor& xa, const at::Tensor& xb);
  // The communicator used by the projector's SyncBatchNorm1d (null = local statistics).
  void set_communicator(comm::Communicator* comm);
  std::vector<at::Tensor> encoder_parameters() const;
  // Weight-decay groups over all trainable parameters (names "encoder.*", "projector.*").
  ParamGroups param_groups() const;
  const VicregModelOptions& options() const { return opts_; }

  VisionTransformer encoder{nullptr};
  Projector projector{nullptr};

 private:
  VicregModelOptions opts_;
};
TORCH_MODULE(VicregModel);

}  // namespace vicreg::model
