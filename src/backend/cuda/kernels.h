// Launchers of the backend's elementwise kernels (elementwise.cu); fmt-free for nvcc.
#pragma once

#include "backend/cuda/launch_check.h"

#include <cstdint>

namespace lrnn::cuda {

// y[m, :] = b for each of the M rows of y [M, N]; elements of elem_size bytes (2 or 4).
cuda_error launch_broadcast_rows(int elem_size, void* y, const void* b, int64_t M, int64_t N, cudaStream_t stream);

}  // namespace lrnn::cuda
