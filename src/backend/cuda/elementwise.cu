// Elementwise kernels of the CUDA backend: bias rows for the dense layers.
#include "backend/cuda/kernels.h"

namespace lrnn::cuda {

namespace {

template <typename E>
__global__ void broadcast_rows_kernel(E* __restrict__ y, const E* __restrict__ b, int64_t total, int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[i % N];
}

}  // namespace

cuda_error launch_broadcast_rows(int elem_size, void* y, const void* b, int64_t M, int64_t N, cudaStream_t stream) {
  const int64_t total = M * N;
  if (total == 0) return {};
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(want < 65535 * 8 ? want : 65535 * 8);
  if (elem_size == 4) {
    broadcast_rows_kernel<uint32_t><<<blocks, threads, 0, stream>>>(static_cast<uint32_t*>(y),
                                                                    static_cast<const uint32_t*>(b), total, N);
  } else {
    broadcast_rows_kernel<uint16_t><<<blocks, threads, 0, stream>>>(static_cast<uint16_t*>(y),
                                                                    static_cast<const uint16_t*>(b), total, N);
  }
  LRNN_CUDA_CHECK_LAUNCH_RAW("broadcast_rows_kernel");
  return {};
}

}  // namespace lrnn::cuda
