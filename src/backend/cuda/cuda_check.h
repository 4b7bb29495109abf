// LRNN_CUDA_CHECK: a failed CUDA runtime call becomes a status naming the call, the device and
// file:line. LRNN_CUDA_CHECK_LAUNCH checks the last error after a kernel launch. LRNN_CUDA_TRY
// turns a kernel file's cuda_error (launch_check.h) into such a status. Host C++ only (fmt).
#pragma once

#include "backend/cuda/launch_check.h"
#include "lrnn/status.h"

#include <cuda_runtime.h>

namespace lrnn::cuda {

inline status error_status(cudaError_t err, const char* call, const char* file, int line) {
  // Reset the runtime's last error (a non-sticky one), or the next launch check would report it
  // again against an innocent kernel.
  cudaGetLastError();
  int dev = -1;
  cudaGetDevice(&dev);
  return make_error(err == cudaErrorMemoryAllocation ? status_code::out_of_memory : status_code::internal,
                    "CUDA call {} failed on device {}: {} ({}) ({}:{})", call, dev, cudaGetErrorString(err),
                    cudaGetErrorName(err), file, line);
}

inline status to_status(const cuda_error& e) {
  if (e.ok()) return {};
  return error_status(e.code, e.call ? e.call : "?", e.file ? e.file : "?", e.line);
}

}  // namespace lrnn::cuda

#define LRNN_CUDA_CHECK(call)                                                                  \
  do {                                                                                         \
    cudaError_t lrnn_err_ = (call);                                                            \
    if (lrnn_err_ != cudaSuccess) return ::lrnn::cuda::error_status(lrnn_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define LRNN_CUDA_CHECK_LAUNCH() LRNN_CUDA_CHECK(cudaGetLastError())

// `expr` returns a cuda_error (a kernel file's launcher).
#define LRNN_CUDA_TRY(expr) LRNN_TRY(::lrnn::cuda::to_status(expr))
