// CUDA runtime glue for the core: plain cudaMalloc/cudaFree (no managed memory), copies.
// Host C++ (runtime API only); compiled in CUDA builds. The caching allocator arrives with
// the CUDA kernels (issue #7).
#ifdef LRNN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace lrnn::cuda {

bool built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

static status set_device(int index) {
  LRNN_CUDA_CHECK(cudaSetDevice(index));
  return {};
}

result<void*> allocate(size_t nbytes, int device_index) {
  LRNN_TRY(set_device(device_index));
  void* p = nullptr;
  LRNN_CUDA_CHECK(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes));
  return p;
}

void release(void* p, int device_index) {
  if (!p) return;
  cudaSetDevice(device_index);
  cudaFree(p);
}

status memcpy(void* dst, const void* src, size_t nbytes, copy_kind kind) {
  cudaMemcpyKind k = kind == copy_kind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == copy_kind::device_to_host ? cudaMemcpyDeviceToHost
                                                         : cudaMemcpyDeviceToDevice;
  LRNN_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, k));
  return {};
}

status memset(void* dst, int value, size_t nbytes) {
  LRNN_CUDA_CHECK(cudaMemset(dst, value, nbytes));
  return {};
}

}  // namespace lrnn::cuda
#endif
