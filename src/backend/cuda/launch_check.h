// Checked launches for kernel files (.cu): nvcc cannot include the fmt-based status.h, so a
// launcher returns a plain cuda_error naming the failed call and file:line, and its host caller
// turns it into a status with LRNN_CUDA_TRY (cuda_check.h).
//   cuda_error launch_x(...) { kernel<<<g, b, smem, s>>>(...); LRNN_CUDA_CHECK_LAUNCH_RAW("kernel"); return {}; }
#pragma once

#include <cuda_runtime.h>

namespace lrnn::cuda {

struct cuda_error {
  cudaError_t code = cudaSuccess;
  const char* call = nullptr;  // the call or kernel that failed
  const char* file = nullptr;
  int line = 0;
  bool ok() const { return code == cudaSuccess; }
};

}  // namespace lrnn::cuda

// In a function returning cuda_error: returns the failure of `call` (a cudaError_t expression).
#define LRNN_CUDA_CHECK_RAW(call)                                                          \
  do {                                                                                     \
    cudaError_t lrnn_raw_err_ = (call);                                                    \
    if (lrnn_raw_err_ != cudaSuccess) return ::lrnn::cuda::cuda_error{lrnn_raw_err_, #call, __FILE__, __LINE__}; \
  } while (0)

// After a launch, in a function returning cuda_error: the launch's error (bad configuration,
// too much shared memory, no kernel image for the device) named by `what`.
#define LRNN_CUDA_CHECK_LAUNCH_RAW(what)                                                   \
  do {                                                                                     \
    cudaError_t lrnn_raw_err_ = cudaGetLastError();                                        \
    if (lrnn_raw_err_ != cudaSuccess) return ::lrnn::cuda::cuda_error{lrnn_raw_err_, what, __FILE__, __LINE__}; \
  } while (0)
