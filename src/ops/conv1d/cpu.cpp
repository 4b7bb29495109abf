// cpu_impl.h built for the baseline instruction set, and the entry points, which call the
// AVX2 + FMA build (cpu_avx2.cpp) when the CPU has it (backend/cpu/simd.h).
#include "backend/cpu/simd.h"

#define LRNN_SIMD_NS base
#include "ops/conv1d/cpu_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail {

namespace avx2 {  // cpu_avx2.cpp
template <typename A> void conv1d_forward_cpu(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io);
template <typename A> void conv1d_backward_cpu(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io);
}  // namespace avx2

template <typename A>
void conv1d_forward_cpu(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io) {
  if (cpu::use_avx2()) avx2::conv1d_forward_cpu(p, io);
  else base::conv1d_forward_cpu(p, io);
}

template <typename A>
void conv1d_backward_cpu(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io) {
  if (cpu::use_avx2()) avx2::conv1d_backward_cpu(p, io);
  else base::conv1d_backward_cpu(p, io);
}

template void conv1d_forward_cpu<float>(const conv1d_problem<float>&, const conv1d_forward_io<float>&);
template void conv1d_forward_cpu<double>(const conv1d_problem<double>&, const conv1d_forward_io<double>&);
template void conv1d_backward_cpu<float>(const conv1d_problem<float>&, const conv1d_backward_io<float>&);
template void conv1d_backward_cpu<double>(const conv1d_problem<double>&, const conv1d_backward_io<double>&);

}  // namespace lrnn::ops::detail
