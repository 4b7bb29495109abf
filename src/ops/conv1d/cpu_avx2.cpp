// cpu_impl.h built for AVX2 + FMA (backend/cpu/simd.h): every header is parsed first with the
// default target, so only this file's own functions (namespace avx2) use the wider instructions.
#include "backend/cpu/vec_math.h"
#include "ops/common/seq_util.h"
#include "ops/conv1d/conv1d.h"
#include "lrnn/threads.h"
#include <algorithm>

#include "backend/cpu/avx2_begin.h"  // after the headers: what follows is compiled for AVX2 + FMA

#define LRNN_SIMD_NS avx2
#include "ops/conv1d/cpu_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail::avx2 {
template void conv1d_forward_cpu<float>(const conv1d_problem<float>&, const conv1d_forward_io<float>&);
template void conv1d_forward_cpu<double>(const conv1d_problem<double>&, const conv1d_forward_io<double>&);
template void conv1d_backward_cpu<float>(const conv1d_problem<float>&, const conv1d_backward_io<float>&);
template void conv1d_backward_cpu<double>(const conv1d_problem<double>&, const conv1d_backward_io<double>&);
}  // namespace lrnn::ops::detail::avx2

#include "backend/cpu/avx2_end.h"
