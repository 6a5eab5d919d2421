#include "worker/model/sync_batchnorm.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <string>

#include "common/errors.h"
#include "worker/comm/communicator.h"

namespace vicreg::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool Distributed(const comm::Communicator* comm) { return comm != nullptr && comm->world_size() > 1; }

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  // x: [B, C] (fp32/fp64), weight/bias: [C]; running_mean/var: [C] and num_batches_tracked: [] are
  // updated in place. Returns y: [B, C].
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, at::Tensor num_batches_tracked,
                            comm::Communicator* comm, double eps, double momentum) {
    const int64_t B = x.size(0), C = x.size(1);
    auto [var_local, mean_local] = at::var_mean(x, {0}, /*unbiased=*/false);  // [C], [C]
    at::Tensor mean, var;
    double count = static_cast<double>(B);
    if (Distributed(comm)) {
      // One collective: every rank's [mean, M2, count] -> combine (Chan et al.), exact for unequal counts.
      auto packed =
          at::cat({mean_local, var_local * static_cast<double>(B), at::full({1}, static_cast<double>(B), x.options())})
              .unsqueeze(0);                            // [1, 2C+1]
      auto all = comm->AllGather(packed);               // [W, 2C+1]
      auto counts = all.select(1, 2 * C).unsqueeze(1);  // [W, 1]
      count = counts.sum().item<double>();
      auto means = all.narrow(1, 0, C);                                      // [W, C]
      auto m2s = all.narrow(1, C, C);                                        // [W, C]
      mean = (means * counts).sum(0) / count;                                // [C]
      var = (m2s.sum(0) + ((means - mean).pow(2) * counts).sum(0)) / count;  // [C] biased
    } else {
      mean = mean_local;
      var = var_local;
    }
    if (count < 2) {
      throw UserError("SyncBatchNorm1d: training needs more than 1 sample per channel in the global batch, got " +
                      std::to_string(static_cast<int64_t>(count)) +
                      " (increase train.batch_size or the number of ranks)");
    }
    auto invstd = at::rsqrt(var + eps);  // [C]
    {
      running_mean.mul_(1.0 - momentum).add_(mean, momentum);
      running_var.mul_(1.0 - momentum).add_(var * (count / (count - 1.0)), momentum);
      num_batches_tracked.add_(1);
    }
    auto scale = invstd * weight;           // [C]
    auto shift = bias - mean * scale;       // [C]
    auto y = at::addcmul(shift, x, scale);  // [B, C]
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    ctx->saved_data["count"] = count;
    return y;
  }

  // grad_out[0]: dy [B, C] -> dx [B, C], dweight [C], dbias [C] (local sums, as torch.nn.SyncBatchNorm).
  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto& mean = saved[2];
    const auto& invstd = saved[3];
    auto* comm = reinterpret_cast<comm::Communicator*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    const double count = ctx->saved_data["count"].toDouble();
    auto dy = grad_out[0].contiguous();  // [B, C]
    const int64_t C = x.size(1);
    auto xmu = x - mean;                  // [B, C]
    auto sum_dy = dy.sum(0);              // [C]
    auto sum_dy_xmu = (dy * xmu).sum(0);  // [C]
    auto grad_weight = sum_dy_xmu * invstd;
    auto grad_bias = sum_dy;
    at::Tensor g_sum_dy = sum_dy, g_sum_dy_xmu = sum_dy_xmu;
    if (Distributed(comm)) {
      auto packed = at::cat({sum_dy, sum_dy_xmu});  // [2C]
      comm->AllReduceSum(packed);
      g_sum_dy = packed.narrow(0, 0, C);
      g_sum_dy_xmu = packed.narrow(0, C, C);
    }
    auto mean_dy = g_sum_dy / count;                    // [C]
    auto k = invstd * invstd * (g_sum_dy_xmu / count);  // [C]
    auto a = invstd * weight;                           // [C]
    // dx = (dy - mean_dy - xmu * k) * a
    auto dx = at::addcmul(dy - mean_dy, xmu, k, -1.0).mul_(a);
    return {dx,           grad_weight,  grad_bias,    at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

SyncBatchNorm1dImpl::SyncBatchNorm1dImpl(const SyncBatchNormOptions& opts, comm::Communicator* comm)
    : opts_(opts), comm_(comm) {
  const int64_t C = opts_.num_features();
  VICREG_CHECK(C > 0, "SyncBatchNorm1d num_features must be > 0, got " + std::to_string(C));
  weight = register_parameter("weight", at::ones({C}));
  bias = register_parameter("bias", at::zeros({C}));
  running_mean = register_buffer("running_mean", at::zeros({C}));
  running_var = register_buffer("running_var", at::ones({C}));
  num_batches_tracked = register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
}

void SyncBatchNorm1dImpl::reset_running_stats() {
  c10::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

void SyncBatchNorm1dImpl::reset_parameters() {
  reset_running_stats();
  c10::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

at::Tensor SyncBatchNorm1dImpl::forward(const at::Tensor& x) {
  VICREG_CHECK(x.dim() == 2 && x.size(1) == opts_.num_features(),
               "SyncBatchNorm1d expects [B, " + std::to_string(opts_.num_features()) + "], got " + c10::str(x.sizes()));
  const bool reduced = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  auto xin = reduced ? x.to(at::kFloat) : x;
  at::Tensor y;
  if (is_training()) {
    y = SyncBatchNormFunction::apply(xin.contiguous(), weight, bias, running_mean, running_var, num_batches_tracked,
                                     comm_, opts_.eps(), opts_.momentum());
  } else {
    y = at::batch_norm(xin, weight, bias, running_mean, running_var, /*training=*/false, opts_.momentum(), opts_.eps(),
                       /*cudnn_enabled=*/false);
  }
  return reduced ? y.to(x.scalar_type()) : y;
}

}  // namespace vicreg::model
