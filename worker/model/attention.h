// Multi-head scaled dot-product attention core of the ViT (softmax(scale Q K^T) V per head), reading
// q, k and v straight out of the packed projections (timm layout: qkv = [q | k | v], head h at
// columns h*hd .. (h+1)*hd of each part) and writing the heads' outputs side by side: no permute /
// transpose copies in forward or backward.
//
// CPU float/double: a custom autograd function that runs one small GEMM per (sample, head) through
// the BLAS (sgemm_/dgemm_ of the libblas.so.3 LibTorch loaded), single-threaded inside that loop
// (OpenBLAS threading on 65x64 matrices costs more than it gains), and stores only the attention
// probabilities for backward. Other devices/dtypes, or a BLAS without those symbols: the same math
// with ATen ops (MultiHeadAttentionComposite).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace vicreg::model {

// Packed inputs: q_src [B, Nq, Cq] holds q at columns q_off .. q_off+D; kv_src [B, N, Ckv] holds k at
// k_off and v at v_off (D columns each). q_src and kv_src may be the same tensor (the full qkv
// projection [B, N, 3D] with offsets 0, D, 2D); for the class-token-only path they are q [B, 1, D]
// and kv [B, N, 2D]. D = heads * head_dim. Returns o: [B, Nq, D], head h at columns h*hd.
struct AttentionInputs {
  at::Tensor q_src, kv_src;
  int64_t q_off = 0, k_off = 0, v_off = 0;
  int64_t dim = 0, heads = 1;
  double scale = 1.0;
};

at::Tensor MultiHeadAttention(const AttentionInputs& in);
// The reference path with ATen ops (views, matmul, softmax); autograd-differentiable on any device.
at::Tensor MultiHeadAttentionComposite(const AttentionInputs& in);
// True when Attention() uses the BLAS fast path for this dtype on CPU.
bool AttentionFastPathAvailable(const at::Tensor& like);

}  // namespace vicreg::model
