#include "worker/model/vicreg_model.h"

#include <ATen/ATen.h>

#include "common/errors.h"

namespace vicreg::model {

VicregModelOptions VicregModelOptions::FromConfig(const config::ModelConfig& m, const config::VicregConfig& v) {
  VicregModelOptions o;
  o.encoder = VitOptions::FromConfig(m);
  o.projector = ProjectorOptions::FromConfig(o.encoder.embed_dim, v);
  return o;
}

VicregModelImpl::VicregModelImpl(const VicregModelOptions& opts, comm::Communicator* comm) : opts_(opts) {
  VICREG_CHECK(opts_.projector.in_dim() == opts_.encoder.embed_dim,
               "projector in_dim " + std::to_string(opts_.projector.in_dim()) + " != encoder embed_dim " +
                   std::to_string(opts_.encoder.embed_dim));
  encoder = register_module("encoder", VisionTransformer(opts_.encoder));
  projector = register_module("projector", Projector(opts_.projector, comm));
}

VicregOutput VicregModelImpl::forward(const at::Tensor& x) {
  VicregOutput out;
  out.features = encoder->forward(x);        // [B, D]
  out.z = projector->forward(out.features);  // [B, P]
  return out;
}

VicregPairOutput VicregModelImpl::forward_pair(const at::Tensor& xa, const at::Tensor& xb) {
  VICREG_CHECK(xa.sizes() == xb.sizes(),
               "forward_pair: views differ in shape: " + c10::str(xa.sizes()) + " vs " + c10::str(xb.sizes()));
  const int64_t B = xa.size(0);
  auto feats = encoder->forward(at::cat({xa, xb}, 0));  // [2B, D]
  auto z = projector->forward_stacked(feats, 2);        // [2B, P], BN statistics per view
  VicregPairOutput out;
  out.features_a = feats.narrow(0, 0, B);  // [B, D]
  out.features_b = feats.narrow(0, B, B);
  out.za = z.narrow(0, 0, B);  // [B, P]
  out.zb = z.narrow(0, B, B);
  return out;
}

void VicregModelImpl::set_communicator(comm::Communicator* comm) { projector->set_communicator(comm); }

std::vector<at::Tensor> VicregModelImpl::encoder_parameters() const { return encoder->parameters(); }

ParamGroups VicregModelImpl::param_groups() const { return SplitParamGroups(*this); }

}  // namespace vicreg::model
