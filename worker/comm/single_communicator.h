// World-size-1 backend: every collective is the identity (AllGather returns a copy).
#pragma once

#include <memory>

#include "worker/comm/communicator.h"

namespace vicreg::comm {

// device: where tensors live (cpu or cuda:N); collectives accept tensors on any device.
std::shared_ptr<Communicator> CreateSingleCommunicator(c10::Device device);

}  // namespace vicreg::comm
