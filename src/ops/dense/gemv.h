// linear()'s path for a few rows of input (decoding): one pass over the weights, split over
// the threads by output rows (gemv.cpp).
#pragma once

#include <cstdint>

namespace lrnn::ops::detail {

// Up to this many rows of x take gemv() in linear(); more go to SGEMM.
inline constexpr int64_t gemv_max_rows = 4;

// y[m, o] = sum_i x[m, i] w[o, i] (+ y[m, o] when accumulate); x [M, in], w [out, in], y [M, out],
// all contiguous f32.
void gemv(const float* x, int64_t M, const float* w, int64_t out, int64_t in, float* y, bool accumulate);

}  // namespace lrnn::ops::detail
