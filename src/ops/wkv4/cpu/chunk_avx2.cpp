// chunk_impl.h built for AVX2 + FMA (backend/cpu/simd.h): every header is parsed first with the
// default target, so only this file's own functions (namespace avx2) use the wider instructions.
#include "backend/cpu/vec_math.h"
#include "ops/common/seq_util.h"
#include "ops/wkv4/wkv4.h"
#include "lrnn/threads.h"
#include <algorithm>
#include <cmath>

#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#endif

#define LRNN_SIMD_NS avx2
#include "ops/wkv4/cpu/chunk_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail::avx2 {
template void wkv4_forward_chunk<float>(const wkv4_problem<float>&, const wkv4_forward_io<float>&);
template void wkv4_forward_chunk<double>(const wkv4_problem<double>&, const wkv4_forward_io<double>&);
template void wkv4_backward_chunk<float>(const wkv4_problem<float>&, const wkv4_backward_io<float>&);
template void wkv4_backward_chunk<double>(const wkv4_problem<double>&, const wkv4_backward_io<double>&);
}  // namespace lrnn::ops::detail::avx2

#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
