// The CUDA runtime glue the core needs: allocation, copies, device count. Implemented in
// cuda_backend.cu when built with CUDA, and by stub.cpp (returning `unsupported`) without.
#pragma once

#include "lrnn/status.h"

#include <cstddef>

namespace lrnn::cuda {

enum class copy_kind { host_to_device, device_to_host, device_to_device };

bool built();
int device_count();
result<void*> allocate(size_t nbytes, int device_index);
void release(void* p, int device_index);
status memcpy(void* dst, const void* src, size_t nbytes, copy_kind kind);
status memset(void* dst, int value, size_t nbytes);

}  // namespace lrnn::cuda
