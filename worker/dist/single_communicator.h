// World-size-1 backend: every collective is the identity (AllGather returns a copy).
#pragma once

#include <memory>

#include "worker/dist/communicator.h"

namespace vicreg::dist {

// device: where tensors live (cpu or cuda:N); collectives accept tensors on any device.
std::shared_ptr<Communicator> CreateSingleCommunicator(c10::Device device);

}  // namespace vicreg::dist
