#include "worker/model/gemm.h"

#include <dlfcn.h>

#include <cstddef>
#include <cstdlib>
#include <string>

#include "common/errors.h"

namespace vicreg::model {
namespace {

// Fortran BLAS gemm (column-major); the trailing lengths are gfortran's hidden string-length
// arguments (C implementations such as OpenBLAS ignore them).
template <typename T>
using BlasGemm = void (*)(const char*, const char*, const int*, const int*, const int*, const T*, const T*, const int*,
                          const T*, const int*, const T*, T*, const int*, size_t, size_t);
// oneDNN (row-major): dnnl_status_t dnnl_sgemm(char, char, dim M, N, K, float alpha, const float* A,
// dim lda, const float* B, dim ldb, float beta, float* C, dim ldc); dnnl_dim_t = int64_t, 0 = success.
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);

struct Kernels {
  DnnlSgemm dnnl_sgemm = nullptr;
  BlasGemm<float> sgemm = nullptr;
  BlasGemm<double> dgemm = nullptr;
  void (*set_threads)(int) = nullptr;
  int (*get_threads)() = nullptr;

  static const Kernels& Get() {
    static const Kernels k = [] {
      Kernels r;
      // VICREG_GEMM=blas keeps fp32 GEMMs on the BLAS (for comparisons).
      const char* pref = std::getenv("VICREG_GEMM");
      if (!pref || std::string(pref) != "blas")
        r.dnnl_sgemm = reinterpret_cast<DnnlSgemm>(::dlsym(RTLD_DEFAULT, "dnnl_sgemm"));
      r.sgemm = reinterpret_cast<BlasGemm<float>>(::dlsym(RTLD_DEFAULT, "sgemm_"));
      r.dgemm = reinterpret_cast<BlasGemm<double>>(::dlsym(RTLD_DEFAULT, "dgemm_"));
      r.set_threads = reinterpret_cast<void (*)(int)>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
      r.get_threads = reinterpret_cast<int (*)()>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
      if (!r.set_threads || !r.get_threads) r.set_threads = nullptr, r.get_threads = nullptr;
      return r;
    }();
    return k;
  }
};

int ToInt(int64_t v) {
  VICREG_CHECK(v >= 0 && v <= 0x7fffffff, "GEMM dimension out of BLAS int range: " + std::to_string(v));
  return static_cast<int>(v);
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T on the same memory.
template <typename T>
void BlasRowMajor(BlasGemm<T> gemm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  const char first = tb ? 'T' : 'N', second = ta ? 'T' : 'N';
  const int m = ToInt(N), n = ToInt(M), k = ToInt(K), la = ToInt(ldb), lb = ToInt(lda), lc = ToInt(ldc);
  gemm(&first, &second, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc, 1, 1);
}

}  // namespace

bool HaveFloatGemm() { return Kernels::Get().dnnl_sgemm || Kernels::Get().sgemm; }
bool HaveDoubleGemm() { return Kernels::Get().dgemm != nullptr; }
bool UsingOneDnnGemm() { return Kernels::Get().dnnl_sgemm != nullptr; }

void GemmRowMajor(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const auto& k = Kernels::Get();
  if (M == 0 || N == 0) return;
  if (k.dnnl_sgemm) {
    const int st = k.dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    VICREG_CHECK(st == 0, "dnnl_sgemm failed with status " + std::to_string(st));
    return;
  }
  VICREG_CHECK(k.sgemm != nullptr, "no fp32 GEMM kernel (dnnl_sgemm / sgemm_) in this process");
  BlasRowMajor<float>(k.sgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void GemmRowMajor(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  const auto& k = Kernels::Get();
  if (M == 0 || N == 0) return;
  VICREG_CHECK(k.dgemm != nullptr, "no fp64 GEMM kernel (dgemm_) in this process");
  BlasRowMajor<double>(k.dgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

SingleThreadedBlas::SingleThreadedBlas() {
  const auto& k = Kernels::Get();
  if (k.get_threads) {
    saved_ = k.get_threads();
    if (saved_ > 1) k.set_threads(1);
  }
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (saved_ > 1) Kernels::Get().set_threads(saved_);
}

}  // namespace vicreg::model
