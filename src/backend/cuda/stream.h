// The current stream as a cudaStream_t, for kernel launchers (.cu files included: no fmt here).
#pragma once

#include <cuda_runtime.h>

namespace lrnn::cuda {

// Same as cuda_backend.h's current_stream, typed.
cudaStream_t current_cuda_stream(int device_index);

}  // namespace lrnn::cuda
