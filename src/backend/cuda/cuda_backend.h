// The CUDA runtime glue the core needs: the caching allocator, copies, device count, the current
// stream and cuBLAS GEMM. Implemented in the .cpp files of this folder when built with CUDA, and
// by stub.cpp (returning `unsupported`) without. Stream handles are void* here so that CPU-only
// code can include this header; stream.h has the cudaStream_t view for CUDA code.
#pragma once

#include "lrnn/dtype.h"
#include "lrnn/status.h"

#include <cstddef>
#include <cstdint>

namespace lrnn::cuda {

enum class copy_kind { host_to_device, device_to_host, device_to_device };

bool built();
int device_count();

// Caching allocator (allocator.cpp): plain cudaMalloc, blocks rounded up to size classes, a
// freed block kept per (device, stream) and handed out again for the same class; cudaFree only
// in trim() (and on an out-of-memory retry). Memory left cached at exit goes with the context.
result<void*> allocate(size_t nbytes, int device_index);
void release(void* p, int device_index);
struct allocator_stats {
  size_t bytes_in_use = 0;    // held by live blocks (class sizes)
  size_t peak_bytes_in_use = 0;
  size_t bytes_cached = 0;    // freed blocks kept for reuse
  size_t bytes_reserved = 0;  // in use + cached: what cudaMalloc handed out
  uint64_t num_cuda_malloc = 0;  // cudaMalloc calls that succeeded
  uint64_t num_reused = 0;       // allocations served from the cache
  uint64_t num_cuda_free = 0;
};
allocator_stats get_allocator_stats(int device_index);
void reset_peak_bytes(int device_index);
// Frees every cached block of the device (cudaFree); returns the bytes freed.
size_t trim(int device_index);
// The size class an allocation of nbytes is rounded up to.
size_t size_class(size_t nbytes);

// The current stream of the calling thread on a device (0: the legacy default stream, which
// also orders work with PyTorch's default stream). Every lrnn launch and copy goes on it.
void* current_stream(int device_index);
void set_current_stream(int device_index, void* stream);
status synchronize(int device_index);  // waits for the current stream

// Copies on the current stream of the current device; copies touching the host wait for it.
status memcpy(void* dst, const void* src, size_t nbytes, copy_kind kind);
status memset(void* dst, int value, size_t nbytes);

// y[M, N] = x[M, Kd] w[N, Kd]^T (+ y when accumulate): row-major, x, w, y of one dtype (f32,
// bf16, f16), f32 accumulation (f32 without TF32). cuBLAS on the device's current stream.
status gemm_xwt(dtype t, int device_index, const void* x, const void* w, void* y, int64_t M, int64_t N, int64_t Kd,
                bool accumulate);
// y[m, :] = b for every row m of y [M, N] (dtype t).
status broadcast_rows(dtype t, int device_index, void* y, const void* b, int64_t M, int64_t N);

}  // namespace lrnn::cuda
