// cuBLAS GEMM for the dense layers: y = x w^T in f32 / bf16 / f16 with f32 accumulation, one
// cuBLAS handle per device (created on first use, kept for the process), on the current stream.
#ifdef LRNN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/stream.h"

#include <cublas_v2.h>

#include <climits>
#include <mutex>

#define LRNN_CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                      \
    cublasStatus_t lrnn_cb_ = (call);                                                                       \
    if (lrnn_cb_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      return ::lrnn::make_error(lrnn_cb_ == CUBLAS_STATUS_ALLOC_FAILED ? ::lrnn::status_code::out_of_memory \
                                                                       : ::lrnn::status_code::internal,     \
                                "cuBLAS call {} failed on device {}: {} ({}:{})", #call, device_index,      \
                                cublasGetStatusString(lrnn_cb_), __FILE__, __LINE__);                       \
  } while (0)

namespace lrnn::cuda {

namespace {

result<cublasHandle_t> handle_for(int device_index) {
  static std::mutex mu;
  static cublasHandle_t handles[64] = {};
  if (device_index < 0 || device_index >= 64 || device_index >= device_count())
    return make_error(status_code::invalid_argument, "cuBLAS: no CUDA device {} ({} visible)", device_index, device_count());
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[device_index]) {
    LRNN_CUDA_CHECK(cudaSetDevice(device_index));
    cublasHandle_t h = nullptr;
    LRNN_CUBLAS_CHECK(cublasCreate(&h));
    handles[device_index] = h;
  }
  return handles[device_index];
}

}  // namespace

status gemm_xwt(dtype t, int device_index, const void* x, const void* w, void* y, int64_t M, int64_t N, int64_t Kd,
                bool accumulate) {
  if (M < 0 || N < 0 || Kd < 0 || M > INT_MAX || N > INT_MAX || Kd > INT_MAX)
    return make_error(status_code::unsupported, "cuBLAS GEMM: sizes M={} N={} K={} outside 0..{}", M, N, Kd, INT_MAX);
  if (M == 0 || N == 0) return {};
  cudaDataType_t dt;
  switch (t) {
    case dtype::f32: dt = CUDA_R_32F; break;
    case dtype::bf16: dt = CUDA_R_16BF; break;
    case dtype::f16: dt = CUDA_R_16F; break;
    default: return make_error(status_code::unsupported, "cuBLAS GEMM: dtype {} (expected f32, bf16 or f16)", dtype_name(t));
  }
  if (Kd == 0) {
    if (accumulate) return {};
    return memset(y, 0, static_cast<size_t>(M * N) * dtype_size(t));
  }
  LRNN_CUDA_CHECK(cudaSetDevice(device_index));
  LRNN_ASSIGN_OR_RETURN(cublasHandle_t h, handle_for(device_index));
  LRNN_CUBLAS_CHECK(cublasSetStream(h, current_cuda_stream(device_index)));
  // Row-major y [M, N] is column-major y^T [N, M] = w [N, Kd] (column-major [Kd, N], transposed)
  // times x^T (column-major [Kd, M]).
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(Kd);
  // f32 stays full f32 (CUBLAS_COMPUTE_32F, no TF32), as the CPU SGEMM it is compared with.
  LRNN_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w, dt, k, x, dt, k, &beta, y, dt, m,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return {};
}

status broadcast_rows(dtype t, int device_index, void* y, const void* b, int64_t M, int64_t N) {
  if (t != dtype::f32 && t != dtype::bf16 && t != dtype::f16)
    return make_error(status_code::unsupported, "broadcast_rows: dtype {} (expected f32, bf16 or f16)", dtype_name(t));
  if (M == 0 || N == 0) return {};
  LRNN_CUDA_CHECK(cudaSetDevice(device_index));
  LRNN_CUDA_TRY(launch_broadcast_rows(static_cast<int>(dtype_size(t)), y, b, M, N, current_cuda_stream(device_index)));
  return {};
}

}  // namespace lrnn::cuda
#endif
