// y = x W^T + b (torch.nn.functional.linear) for the model's Linear layers. CPU fp32 (and fp64)
// tensors go through a custom autograd function on gemm.h's kernels (oneDNN for fp32): forward one
// GEMM, backward dX = dY W and dW = dY^T X (each only when needed) and db = sum dY. Anything else
// (CUDA, bf16/fp16, no GEMM symbol) is at::linear. Same math; results differ from at::linear only by
// float rounding (different GEMM kernel).
#pragma once

#include <ATen/core/Tensor.h>

namespace vicreg::model {

// x: [..., in], weight: [out, in] (rows contiguous), bias: [out] or undefined -> [..., out]
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace vicreg::model
