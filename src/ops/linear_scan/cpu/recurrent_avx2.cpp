// recurrent_impl.h built for AVX2 + FMA (backend/cpu/simd.h): every header is parsed first with the
// default target, so only this file's own functions (namespace avx2) use the wider instructions.
#include "ops/linear_scan/cpu/gates.h"
#include "lrnn/threads.h"

#include "backend/cpu/avx2_begin.h"  // after the headers: what follows is compiled for AVX2 + FMA

#define LRNN_SIMD_NS avx2
#include "ops/linear_scan/cpu/recurrent_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail::avx2 {
template void linear_scan_forward_recurrent<float>(const linear_scan_problem<float>&, const linear_scan_forward_io<float>&);
template void linear_scan_forward_recurrent<double>(const linear_scan_problem<double>&, const linear_scan_forward_io<double>&);
template void linear_scan_backward_recurrent<float>(const linear_scan_problem<float>&, const linear_scan_backward_io<float>&);
template void linear_scan_backward_recurrent<double>(const linear_scan_problem<double>&, const linear_scan_backward_io<double>&);
}  // namespace lrnn::ops::detail::avx2

#include "backend/cpu/avx2_end.h"
