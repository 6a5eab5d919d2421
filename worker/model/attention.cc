#include "worker/model/attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstddef>
#include <string>

#include "common/errors.h"
#include "worker/model/gemm.h"
#define VICREG_COMPAT_SDPA
#include "worker/torch_compat.h"

namespace vicreg::model {
namespace {

template <typename T>
void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
          T beta, T* C, int64_t ldc) {
  GemmRowMajor(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

struct Geometry {
  int64_t B, Nq, N, Cq, Ckv, D, H, hd;
};

Geometry GeometryOf(const at::Tensor& q_src, const at::Tensor& kv_src, int64_t dim, int64_t heads) {
  return Geometry{q_src.size(0), q_src.size(1), kv_src.size(1), q_src.size(2), kv_src.size(2), dim, heads, dim / heads};
}

// ---- the custom autograd function (CPU, float/double) ----------------------------------------

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  // q_src: [B, Nq, Cq], kv_src: [B, N, Ckv] (contiguous; may be the same tensor: shared) -> o: [B, Nq, D]
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_src, const at::Tensor& kv_src,
                            int64_t q_off, int64_t k_off, int64_t v_off, int64_t dim, int64_t heads, double scale,
                            bool shared) {
    const auto g = GeometryOf(q_src, kv_src, dim, heads);
    auto scores = at::empty({g.B, g.H, g.Nq, g.N}, q_src.options());  // [B, H, Nq, N]
    auto out = at::empty({g.B, g.Nq, g.D}, q_src.options());          // [B, Nq, D]
    AT_DISPATCH_FLOATING_TYPES(q_src.scalar_type(), "vicreg_attention_fwd", [&] {
      SingleThreadedBlas one;
      const auto* qs = q_src.data_ptr<scalar_t>();
      const auto* kvs = kv_src.data_ptr<scalar_t>();
      auto* s = scores.data_ptr<scalar_t>();
      for (int64_t b = 0; b < g.B; ++b)
        for (int64_t h = 0; h < g.H; ++h) {
          const scalar_t* Q = qs + b * g.Nq * g.Cq + q_off + h * g.hd;
          const scalar_t* K = kvs + b * g.N * g.Ckv + k_off + h * g.hd;
          Gemm<scalar_t>(false, true, g.Nq, g.N, g.hd, static_cast<scalar_t>(scale), Q, g.Cq, K, g.Ckv, 0,
                         s + (b * g.H + h) * g.Nq * g.N, g.N);  // S = scale Q K^T
        }
      auto probs = at::_softmax(scores, -1, false);  // [B, H, Nq, N]
      const auto* p = probs.data_ptr<scalar_t>();
      auto* o = out.data_ptr<scalar_t>();
      for (int64_t b = 0; b < g.B; ++b)
        for (int64_t h = 0; h < g.H; ++h) {
          const scalar_t* V = kvs + b * g.N * g.Ckv + v_off + h * g.hd;
          Gemm<scalar_t>(false, false, g.Nq, g.hd, g.N, 1, p + (b * g.H + h) * g.Nq * g.N, g.N, V, g.Ckv, 0,
                         o + b * g.Nq * g.D + h * g.hd, g.D);  // O = P V
        }
      scores = probs;
    });
    ctx->save_for_backward({q_src, kv_src, scores});
    ctx->saved_data["offs"] = std::vector<int64_t>{q_off, k_off, v_off, dim, heads};
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["shared"] = shared;
    return out;
  }

  // grad[0]: dO [B, Nq, D] -> d q_src, d kv_src (shared: everything in the kv_src slot).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    const auto& q_src = saved[0];
    const auto& kv_src = saved[1];
    const auto& probs = saved[2];
    const auto offs = ctx->saved_data["offs"].toIntVector();
    const int64_t q_off = offs[0], k_off = offs[1], v_off = offs[2];
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool shared = ctx->saved_data["shared"].toBool();
    const auto g = GeometryOf(q_src, kv_src, offs[3], offs[4]);
    auto dout = grad[0].contiguous();  // [B, Nq, D]
    // Gradient buffers; columns no slice writes (none in the ViT's layouts) must be zero.
    const bool kv_covered = shared ? (g.Ckv == 3 * g.D) : (g.Ckv == 2 * g.D);
    auto dkv = kv_covered ? at::empty_like(kv_src) : at::zeros_like(kv_src);
    at::Tensor dq;
    if (!shared) dq = (g.Cq == g.D) ? at::empty_like(q_src) : at::zeros_like(q_src);
    const auto& dq_buf = shared ? dkv : dq;
    const int64_t ldq = shared ? g.Ckv : g.Cq;
    auto dprobs = at::empty_like(probs);  // [B, H, Nq, N]
    AT_DISPATCH_FLOATING_TYPES(q_src.scalar_type(), "vicreg_attention_bwd", [&] {
      SingleThreadedBlas one;
      const auto* qs = q_src.data_ptr<scalar_t>();
      const auto* kvs = kv_src.data_ptr<scalar_t>();
      const auto* p = probs.data_ptr<scalar_t>();
      const auto* dO = dout.data_ptr<scalar_t>();
      auto* dp = dprobs.data_ptr<scalar_t>();
      auto* dKV = dkv.data_ptr<scalar_t>();
      for (int64_t b = 0; b < g.B; ++b)
        for (int64_t h = 0; h < g.H; ++h) {
          const int64_t bh = (b * g.H + h) * g.Nq * g.N;
          const scalar_t* V = kvs + b * g.N * g.Ckv + v_off + h * g.hd;
          const scalar_t* dOb = dO + b * g.Nq * g.D + h * g.hd;
          Gemm<scalar_t>(true, false, g.N, g.hd, g.Nq, 1, p + bh, g.N, dOb, g.D, 0,
                         dKV + b * g.N * g.Ckv + v_off + h * g.hd, g.Ckv);                       // dV = P^T dO
          Gemm<scalar_t>(false, true, g.Nq, g.N, g.hd, 1, dOb, g.D, V, g.Ckv, 0, dp + bh, g.N);  // dP = dO V^T
        }
      auto dscores = at::_softmax_backward_data(dprobs, probs, -1, probs.scalar_type());  // [B, H, Nq, N]
      const auto* ds = dscores.data_ptr<scalar_t>();
      auto* dQ = dq_buf.data_ptr<scalar_t>();
      const auto sc = static_cast<scalar_t>(scale);
      for (int64_t b = 0; b < g.B; ++b)
        for (int64_t h = 0; h < g.H; ++h) {
          const int64_t bh = (b * g.H + h) * g.Nq * g.N;
          const scalar_t* Q = qs + b * g.Nq * g.Cq + q_off + h * g.hd;
          const scalar_t* K = kvs + b * g.N * g.Ckv + k_off + h * g.hd;
          Gemm<scalar_t>(false, false, g.Nq, g.hd, g.N, sc, ds + bh, g.N, K, g.Ckv, 0,
                         dQ + b * g.Nq * ldq + q_off + h * g.hd, ldq);  // dQ = scale dS K
          Gemm<scalar_t>(true, false, g.N, g.hd, g.Nq, sc, ds + bh, g.N, Q, g.Cq, 0,
                         dKV + b * g.N * g.Ckv + k_off + h * g.hd, g.Ckv);  // dK = scale dS^T Q
        }
    });
    torch::autograd::variable_list res(9);
    if (shared) {
      res[1] = dkv;
    } else {
      res[0] = dq;
      res[1] = dkv;
    }
    return res;
  }
};

void CheckInputs(const AttentionInputs& in) {
  VICREG_CHECK(in.q_src.dim() == 3 && in.kv_src.dim() == 3 && in.q_src.size(0) == in.kv_src.size(0),
               "Attention: q_src [B, Nq, Cq] and kv_src [B, N, Ckv] expected, got " + c10::str(in.q_src.sizes()) +
                   " and " + c10::str(in.kv_src.sizes()));
  VICREG_CHECK(in.heads > 0 && in.dim % in.heads == 0, "Attention: dim must be divisible by heads");
  VICREG_CHECK(in.q_off >= 0 && in.q_off + in.dim <= in.q_src.size(2), "Attention: q columns out of range");
  VICREG_CHECK(in.k_off >= 0 && in.k_off + in.dim <= in.kv_src.size(2) && in.v_off >= 0 &&
                   in.v_off + in.dim <= in.kv_src.size(2),
               "Attention: k/v columns out of range");
}

}  // namespace

bool AttentionFastPathAvailable(const at::Tensor& like) {
  if (!like.device().is_cpu()) return false;
  if (like.scalar_type() == at::kFloat) return HaveFloatGemm();
  if (like.scalar_type() == at::kDouble) return HaveDoubleGemm();
  return false;
}

at::Tensor MultiHeadAttentionComposite(const AttentionInputs& in) {
  CheckInputs(in);
  const int64_t B = in.q_src.size(0), Nq = in.q_src.size(1), N = in.kv_src.size(1), D = in.dim, H = in.heads;
  const int64_t hd = D / H;
  auto heads = [&](const at::Tensor& src, int64_t off, int64_t n) {  // -> [B, H, n, hd]
    return src.narrow(2, off, D).reshape({B, n, H, hd}).permute({0, 2, 1, 3});
  };
  auto q = heads(in.q_src, in.q_off, Nq), k = heads(in.kv_src, in.k_off, N), v = heads(in.kv_src, in.v_off, N);
  auto probs = at::softmax(at::matmul(q, k.transpose(-2, -1)) * in.scale, -1);  // [B, H, Nq, N]
  return at::matmul(probs, v).transpose(1, 2).reshape({B, Nq, D});              // [B, Nq, D]
}

at::Tensor MultiHeadAttention(const AttentionInputs& in) {
  CheckInputs(in);
  const int64_t hd = in.dim / in.heads;
  if (compat::kHaveSdpa && !in.q_src.device().is_cpu() &&
      std::abs(in.scale - 1.0 / std::sqrt(static_cast<double>(hd))) < 1e-12) {
    // CUDA (LibTorch >= 2.0): the fused flash / memory-efficient kernels, same math and scale.
    const int64_t B = in.q_src.size(0), Nq = in.q_src.size(1), N = in.kv_src.size(1), D = in.dim, H = in.heads;
    auto heads = [&](const at::Tensor& src, int64_t off, int64_t n) {  // -> [B, H, n, hd]
      return src.narrow(2, off, D).view({B, n, H, hd}).transpose(1, 2);
    };
    auto o = compat::Sdpa(heads(in.q_src, in.q_off, Nq), heads(in.kv_src, in.k_off, N), heads(in.kv_src, in.v_off, N));
    return o.transpose(1, 2).reshape({B, Nq, D});  // [B, Nq, D]
  }
  if (!AttentionFastPathAvailable(in.q_src) || in.kv_src.scalar_type() != in.q_src.scalar_type() ||
      !in.kv_src.device().is_cpu())
    return MultiHeadAttentionComposite(in);
  const bool shared = in.q_src.is_same(in.kv_src);
  auto kv = in.kv_src.contiguous();
  auto q = shared ? kv : in.q_src.contiguous();
  return AttentionFunction::apply(q, kv, in.q_off, in.k_off, in.v_off, in.dim, in.heads, in.scale, shared);
}

}  // namespace vicreg::model
