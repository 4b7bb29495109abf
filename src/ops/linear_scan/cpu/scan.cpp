// scan_impl.h built for the baseline instruction set, and the entry points, which call the
// AVX2 + FMA build (scan_avx2.cpp) when the CPU has it (backend/cpu/simd.h).
#include "backend/cpu/simd.h"

#define LRNN_SIMD_NS base
#include "ops/linear_scan/cpu/scan_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail {

namespace avx2 {  // scan_avx2.cpp
template <typename A> void linear_scan_forward_scan(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io);
template <typename A> void linear_scan_backward_scan(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io);
}  // namespace avx2

template <typename A>
void linear_scan_forward_scan(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io) {
  if (cpu::use_avx2()) avx2::linear_scan_forward_scan(p, io);
  else base::linear_scan_forward_scan(p, io);
}

template <typename A>
void linear_scan_backward_scan(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io) {
  if (cpu::use_avx2()) avx2::linear_scan_backward_scan(p, io);
  else base::linear_scan_backward_scan(p, io);
}

template void linear_scan_forward_scan<float>(const linear_scan_problem<float>&, const linear_scan_forward_io<float>&);
template void linear_scan_forward_scan<double>(const linear_scan_problem<double>&, const linear_scan_forward_io<double>&);
template void linear_scan_backward_scan<float>(const linear_scan_problem<float>&, const linear_scan_backward_io<float>&);
template void linear_scan_backward_scan<double>(const linear_scan_problem<double>&, const linear_scan_backward_io<double>&);

}  // namespace lrnn::ops::detail
