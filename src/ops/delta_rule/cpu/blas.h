// delta_rule CPU forms: row-major BLAS wrappers for float and double (GEMM, unit-lower solve).
#pragma once

#include <cblas.h>

#include <cstdint>

namespace lrnn::ops::detail::dr_blas {

inline int ci(int64_t x) { return static_cast<int>(x); }

inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, ci(M), ci(N), ci(K), alpha, a, ci(lda), b,
              ci(ldb), beta, c, ci(ldc));
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* a, int64_t lda, const double* b,
                 int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, ci(M), ci(N), ci(K), alpha, a, ci(lda), b,
              ci(ldb), beta, c, ci(ldc));
}
// X <- (I + A)^{-1} X (trans: (I + A)^{-T} X) for the strictly lower A stored in `a` (diagonal ignored).
inline void unit_lower_solve(bool trans, int64_t L, int64_t N, const float* a, int64_t lda, float* x, int64_t ldx) {
  cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, trans ? CblasTrans : CblasNoTrans, CblasUnit, ci(L), ci(N), 1.0f, a, ci(lda), x,
              ci(ldx));
}
inline void unit_lower_solve(bool trans, int64_t L, int64_t N, const double* a, int64_t lda, double* x, int64_t ldx) {
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, trans ? CblasTrans : CblasNoTrans, CblasUnit, ci(L), ci(N), 1.0, a, ci(lda), x,
              ci(ldx));
}

}  // namespace lrnn::ops::detail::dr_blas
