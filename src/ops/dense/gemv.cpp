// The decode path of linear(): y = x W^T (+ y) for a few rows of x (M <= gemv_max_rows), where
// the work is one pass over the weights and SGEMM would first pack W (a second pass) for a
// product it cannot block. Memory-bound: each weight is read once per call, by one thread; the
// threads split the output rows. AVX2 + FMA when the CPU has them (chosen at run time; the
// build targets baseline x86-64), OpenBLAS SGEMV otherwise.
#include "ops/dense/gemv.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lrnn::ops::detail {
namespace {

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Output rows [o0, o1) for every row m of x: four weight rows at a time, each against x[m].
__attribute__((target("avx2,fma"))) void rows_avx2(const float* x, int64_t M, const float* w, int64_t in, float* y,
                                                   int64_t out, int64_t o0, int64_t o1, bool accumulate) {
  const int64_t in8 = in & ~int64_t{7};
  int64_t o = o0;
  for (; o + 4 <= o1; o += 4) {
    const float *w0 = w + o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * in;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t i = 0; i < in8; i += 8) {
        const __m256 xv = _mm256_loadu_ps(xm + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
      }
      float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (int64_t i = in8; i < in; ++i) {
        s0 += w0[i] * xm[i];
        s1 += w1[i] * xm[i];
        s2 += w2[i] * xm[i];
        s3 += w3[i] * xm[i];
      }
      float* ym = y + m * out + o;
      if (accumulate) {
        ym[0] += s0, ym[1] += s1, ym[2] += s2, ym[3] += s3;
      } else {
        ym[0] = s0, ym[1] = s1, ym[2] = s2, ym[3] = s3;
      }
    }
  }
  for (; o < o1; ++o) {
    const float* wr = w + o * in;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * in;
      __m256 a = _mm256_setzero_ps();
      for (int64_t i = 0; i < in8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(wr + i), _mm256_loadu_ps(xm + i), a);
      float s = hsum(a);
      for (int64_t i = in8; i < in; ++i) s += wr[i] * xm[i];
      y[m * out + o] = accumulate ? y[m * out + o] + s : s;
    }
  }
}

bool have_avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
#endif

void rows_blas(const float* x, int64_t M, const float* w, int64_t in, float* y, int64_t out, int64_t o0, int64_t o1,
               bool accumulate) {
  for (int64_t m = 0; m < M; ++m)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(o1 - o0), static_cast<int>(in), 1.0f, w + o0 * in,
                static_cast<int>(in), x + m * in, 1, accumulate ? 1.0f : 0.0f, y + m * out + o0, 1);
}

void rows(const float* x, int64_t M, const float* w, int64_t in, float* y, int64_t out, int64_t o0, int64_t o1,
          bool accumulate) {
#if defined(__x86_64__)
  if (have_avx2_fma()) return rows_avx2(x, M, w, in, y, out, o0, o1, accumulate);
#endif
  rows_blas(x, M, w, in, y, out, o0, o1, accumulate);
}

}  // namespace

void gemv(const float* x, int64_t M, const float* w, int64_t out, int64_t in, float* y, bool accumulate) {
  // Below ~64K multiply-adds (256 KiB of weights) a fork/join costs more than it saves.
  const int64_t work = M * out * in;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t parts = std::min<int64_t>(threads, std::max<int64_t>(1, out / 4));
  if (parts <= 1 || work < (int64_t{1} << 16)) return rows(x, M, w, in, y, out, 0, out, accumulate);
  // Contiguous blocks of rows, multiples of 4, one per thread.
  const int64_t per = ((out + parts - 1) / parts + 3) & ~int64_t{3};
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts))
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t o0 = std::min(out, p * per), o1 = std::min(out, o0 + per);
    if (o0 < o1) rows(x, M, w, in, y, out, o0, o1, accumulate);
  }
}

}  // namespace lrnn::ops::detail
