// What a checkpoint captures from a running training and restores into it (checkpoint.h holds the
// archive format): the model's tensors by state_dict key, matched strictly on restore, and the states of
// the default random generators (CPU, and every visible CUDA device on CUDA runs).
//
//   p.model = ModelState(*model);  CaptureRng(cuda, &p);          // save
//   RestoreModelState(*model, p.model, path);  RestoreRng(p, cuda); // resume (bit-exact on CPU)
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "worker/train/checkpoint.h"

namespace torch::nn {
class Module;
}

namespace vicreg::train {

// Parameters, then buffers, in state_dict order (the tensors themselves, not copies).
std::vector<std::pair<std::string, at::Tensor>> ModelState(const torch::nn::Module& model);

// Copies `saved` into the model's tensors (converted to each tensor's device and dtype). Throws UserError
// naming `source` and the key when a key is missing on either side or a shape differs (the checkpoint was
// written for a different model config); nothing is copied then.
void RestoreModelState(torch::nn::Module& model, const std::vector<std::pair<std::string, at::Tensor>>& saved,
                       const std::string& source);

// The default generators' states into p->rng_cpu / p->rng_cuda (one per visible device when cuda).
void CaptureRng(bool cuda, CheckpointPayload* p);
// Sets the default generators from p (the CUDA ones only when cuda, for the devices both sides have).
void RestoreRng(const CheckpointPayload& p, bool cuda);

}  // namespace vicreg::train
