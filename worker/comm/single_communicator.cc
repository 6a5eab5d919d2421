#include "worker/comm/single_communicator.h"

#include <cstdio>
#include <cstdlib>

#include "common/errors.h"

namespace vicreg::comm {
namespace {

class DoneWork : public Work {
 public:
  void Wait() override {}
  bool Test() override { return true; }
};

class SingleCommunicator : public Communicator {
 public:
  explicit SingleCommunicator(c10::Device device) : device_(device) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  c10::Device device() const override { return device_; }
  bool SupportsAsync() const override { return false; }

  void AllReduceSum(at::Tensor& t) override { VICREG_CHECK(t.defined(), "allreduce: undefined tensor"); }
  std::unique_ptr<Work> AllReduceSumAsync(at::Tensor& t) override {
    AllReduceSum(t);
    return std::make_unique<DoneWork>();
  }
  // t: [B, ...] -> [B, ...] (a copy, like every other backend's fresh output)
  at::Tensor AllGather(const at::Tensor& t) override {
    VICREG_CHECK(t.defined() && t.dim() >= 1, "allgather needs a tensor with a leading batch dimension");
    return t.clone();
  }
  void Broadcast(at::Tensor& t, int root) override {
    VICREG_CHECK(root == 0, "broadcast root " + std::to_string(root) + " out of range for world size 1");
  }
  void Barrier() override {}
  [[noreturn]] void Abort(int exit_code, const std::string& reason) override {
    std::fprintf(stderr, "[rank 0/1] aborting (exit code %d): %s\n", exit_code, reason.c_str());
    std::fflush(stderr);
    std::_Exit(exit_code == 0 ? 1 : exit_code);
  }

 private:
  c10::Device device_;
};

}  // namespace

std::shared_ptr<Communicator> CreateSingleCommunicator(c10::Device device) {
  return std::make_shared<SingleCommunicator>(device);
}

}  // namespace vicreg::comm
