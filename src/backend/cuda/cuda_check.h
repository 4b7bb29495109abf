// LRNN_CUDA_CHECK: a failed CUDA runtime call becomes a status naming the call, the device
// and file:line. LRNN_CUDA_CHECK_LAUNCH checks the last error after a kernel launch.
#pragma once

#include "lrnn/status.h"

#include <cuda_runtime.h>

#define LRNN_CUDA_CHECK(call)                                                                        \
  do {                                                                                               \
    cudaError_t lrnn_err_ = (call);                                                                  \
    if (lrnn_err_ != cudaSuccess) {                                                                  \
      int lrnn_dev_ = -1;                                                                            \
      cudaGetDevice(&lrnn_dev_);                                                                     \
      return ::lrnn::make_error(lrnn_err_ == cudaErrorMemoryAllocation ? ::lrnn::status_code::out_of_memory \
                                                                      : ::lrnn::status_code::internal,  \
                                "CUDA call {} failed on device {}: {} ({}:{})", #call, lrnn_dev_,        \
                                cudaGetErrorString(lrnn_err_), __FILE__, __LINE__);                   \
    }                                                                                                \
  } while (0)

#define LRNN_CUDA_CHECK_LAUNCH() LRNN_CUDA_CHECK(cudaGetLastError())
