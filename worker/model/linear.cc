#include "worker/model/linear.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "worker/model/gemm.h"

namespace vicreg::model {
namespace {

bool FastPath(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!x.device().is_cpu() || !w.device().is_cpu() || x.scalar_type() != w.scalar_type()) return false;
  if (b.defined() && (b.scalar_type() != w.scalar_type() || !b.device().is_cpu())) return false;
  if (x.scalar_type() == at::kFloat) return HaveFloatGemm();
  if (x.scalar_type() == at::kDouble) return HaveDoubleGemm();
  return false;
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  // x2: [M, in] contiguous, w: [out, in] contiguous, b: [out] (has_bias) or [0] -> y: [M, out]
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2, const at::Tensor& w,
                            const at::Tensor& b_or_empty, bool has_bias) {
    const at::Tensor b = has_bias ? b_or_empty : at::Tensor();
    const int64_t M = x2.size(0), in = x2.size(1), out = w.size(0);
    at::Tensor y;
    if (b.defined()) {
      y = b.expand({M, out}).contiguous();  // C = bias, then C += X W^T
    } else {
      y = at::empty({M, out}, x2.options());
    }
    AT_DISPATCH_FLOATING_TYPES(x2.scalar_type(), "vicreg_linear_fwd", [&] {
      GemmRowMajor(false, true, M, out, in, scalar_t(1), x2.data_ptr<scalar_t>(), in, w.data_ptr<scalar_t>(), in,
                   scalar_t(b.defined() ? 1 : 0), y.data_ptr<scalar_t>(), out);
    });
    ctx->save_for_backward({x2, w});
    ctx->saved_data["has_bias"] = b.defined();
    return y;
  }

  // grad[0]: dY [M, out] -> dX [M, in], dW [out, in], db [out]
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& x2 = saved[0];
    const auto& w = saved[1];
    auto dy = grad[0].contiguous();
    const int64_t M = x2.size(0), in = x2.size(1), out = w.size(0);
    at::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = at::empty({M, in}, x2.options());
    if (ctx->needs_input_grad(1)) dw = at::empty({out, in}, w.options());
    AT_DISPATCH_FLOATING_TYPES(x2.scalar_type(), "vicreg_linear_bwd", [&] {
      if (dx.defined())  // dX = dY W
        GemmRowMajor(false, false, M, in, out, scalar_t(1), dy.data_ptr<scalar_t>(), out, w.data_ptr<scalar_t>(), in,
                     scalar_t(0), dx.data_ptr<scalar_t>(), in);
      if (dw.defined())  // dW = dY^T X
        GemmRowMajor(true, false, out, in, M, scalar_t(1), dy.data_ptr<scalar_t>(), out, x2.data_ptr<scalar_t>(), in,
                     scalar_t(0), dw.data_ptr<scalar_t>(), in);
    });
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) db = dy.sum(0);
    return {dx, dw, db, at::Tensor()};
  }
};

}  // namespace

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!FastPath(x, weight, bias) || x.dim() < 1 || weight.dim() != 2 || x.size(-1) != weight.size(1))
    return at::linear(x, weight, bias);  // also produces ATen's shape errors
  const int64_t in = x.size(-1), out = weight.size(0);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = out;
  auto x2 = x.reshape({-1, in}).contiguous();  // [M, in]
  // (Custom autograd functions take no undefined tensors: a bias-less layer passes an empty one.)
  auto y = LinearFunction::apply(x2, weight.contiguous(),
                                 bias.defined() ? bias.contiguous() : at::empty({0}, weight.options()), bias.defined());
  return y.view(out_shape);
}

}  // namespace vicreg::model
