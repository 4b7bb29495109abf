// CPU-only builds: the CUDA entry points report that CUDA was not compiled in.
#ifndef LRNN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"

namespace lrnn::cuda {

static status not_built() {
  return status(status_code::unsupported,
                "CUDA is not available: this lrnn was built without CUDA (configure with --preset cuda-release)");
}
bool built() { return false; }
int device_count() { return 0; }
result<void*> allocate(size_t, int) { return not_built(); }
void release(void*, int) {}
allocator_stats get_allocator_stats(int) { return {}; }
void reset_peak_bytes(int) {}
size_t trim(int) { return 0; }
size_t size_class(size_t nbytes) { return nbytes; }
void* current_stream(int) { return nullptr; }
void set_current_stream(int, void*) {}
status synchronize(int) { return not_built(); }
status memcpy(void*, const void*, size_t, copy_kind) { return not_built(); }
status memset(void*, int, size_t) { return not_built(); }
status gemm_xwt(dtype, int, const void*, const void*, void*, int64_t, int64_t, int64_t, bool) { return not_built(); }
status broadcast_rows(dtype, int, void*, const void*, int64_t, int64_t) { return not_built(); }

}  // namespace lrnn::cuda
#endif
