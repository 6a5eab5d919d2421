// Row-major CPU GEMM through the fastest kernel the process already has loaded:
//   fp32: oneDNN's dnnl_sgemm (libdnnl.so.2, a dependency of Debian's LibTorch; AVX-512 kernels where
//         the CPU has them, OpenMP threads = ATen's intra-op threads), else the BLAS sgemm_;
//   fp64: the BLAS dgemm_.
// LibTorch's own at::mm goes to libblas.so.3 (OpenBLAS 0.3.21 here, which runs its AVX2 "Haswell"
// kernel on this AVX-512 EPYC): measured 120 vs 245 GFLOP/s on the ViT's shapes.
#pragma once

#include <cstdint>

namespace vicreg::model {

// C[M, N] = alpha * op(A) op(B) + beta * C. op(A) is [M, K]: A is stored [M, K] (ta false) or [K, M]
// (ta true) row-major with leading dimension lda; likewise B ([K, N] or [N, K]); C has ldc.
void GemmRowMajor(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void GemmRowMajor(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Which kernels exist in this process.
bool HaveFloatGemm();    // dnnl_sgemm or sgemm_
bool HaveDoubleGemm();   // dgemm_
bool UsingOneDnnGemm();  // fp32 goes to dnnl_sgemm

// While alive, the BLAS (OpenBLAS) runs single-threaded (no-op for other BLAS / for oneDNN, whose
// threads follow ATen's). For loops of many tiny GEMMs, where OpenBLAS's thread hand-off costs more
// than it saves. Restores the previous setting.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_ = 0;
};

}  // namespace vicreg::model
