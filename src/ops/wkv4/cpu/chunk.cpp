// chunk_impl.h built for the baseline instruction set, and the entry points, which call the
// AVX2 + FMA build (chunk_avx2.cpp) when the CPU has it (backend/cpu/simd.h).
#include "backend/cpu/simd.h"

#define LRNN_SIMD_NS base
#include "ops/wkv4/cpu/chunk_impl.h"
#undef LRNN_SIMD_NS

namespace lrnn::ops::detail {

namespace avx2 {  // chunk_avx2.cpp
template <typename A> void wkv4_forward_chunk(const wkv4_problem<A>& p, const wkv4_forward_io<A>& io);
template <typename A> void wkv4_backward_chunk(const wkv4_problem<A>& p, const wkv4_backward_io<A>& io);
}  // namespace avx2

template <typename A>
void wkv4_forward_chunk(const wkv4_problem<A>& p, const wkv4_forward_io<A>& io) {
  if (cpu::use_avx2()) avx2::wkv4_forward_chunk(p, io);
  else base::wkv4_forward_chunk(p, io);
}

template <typename A>
void wkv4_backward_chunk(const wkv4_problem<A>& p, const wkv4_backward_io<A>& io) {
  if (cpu::use_avx2()) avx2::wkv4_backward_chunk(p, io);
  else base::wkv4_backward_chunk(p, io);
}

template void wkv4_forward_chunk<float>(const wkv4_problem<float>&, const wkv4_forward_io<float>&);
template void wkv4_forward_chunk<double>(const wkv4_problem<double>&, const wkv4_forward_io<double>&);
template void wkv4_backward_chunk<float>(const wkv4_problem<float>&, const wkv4_backward_io<float>&);
template void wkv4_backward_chunk<double>(const wkv4_problem<double>&, const wkv4_backward_io<double>&);

}  // namespace lrnn::ops::detail
