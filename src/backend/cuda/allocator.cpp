// The CUDA caching allocator (see cuda_backend.h): size classes, free lists per (device, stream),
// statistics, trim. Plain cudaMalloc: never managed memory.
#ifdef LRNN_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/stream.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lrnn::cuda {

namespace {

struct block {
  void* p = nullptr;
  size_t size = 0;  // the size class
  cudaStream_t stream = nullptr;
};

struct device_pool {
  std::mutex mu;
  std::multimap<std::pair<cudaStream_t, size_t>, void*> free;  // (stream, class) -> block
  std::unordered_map<void*, block> used;
  allocator_stats stats;
};

constexpr int max_devices = 64;

// Never destroyed: tensors held in static objects may be released after other statics are gone.
device_pool& pool(int device_index) {
  static device_pool* pools = new device_pool[max_devices];
  return pools[device_index];
}

// Restores the caller's current device on scope exit.
struct device_guard {
  int prev = -1;
  explicit device_guard(int want) {
    if (cudaGetDevice(&prev) != cudaSuccess) { cudaGetLastError(); prev = -1; }
    if (prev != want) cudaSetDevice(want);
  }
  ~device_guard() {
    int now = -1;
    if (prev >= 0 && cudaGetDevice(&now) == cudaSuccess && now != prev) cudaSetDevice(prev);
  }
};

size_t free_all_locked(device_pool& dp) {
  size_t freed = 0;
  for (auto& [key, p] : dp.free) {
    cudaFree(p);
    freed += key.second;
    ++dp.stats.num_cuda_free;
  }
  dp.free.clear();
  dp.stats.bytes_cached = 0;
  dp.stats.bytes_reserved -= freed;
  return freed;
}

}  // namespace

size_t size_class(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  if (nbytes <= (size_t(1) << 20)) return (nbytes + 511) / 512 * 512;  // small: 512-byte steps
  // Large: four classes per power of two (at most 25% rounding).
  size_t pow2 = size_t(1) << 20;
  while (pow2 * 2 < nbytes) pow2 *= 2;
  const size_t step = pow2 / 4;
  return (nbytes + step - 1) / step * step;
}

result<void*> allocate(size_t nbytes, int device_index) {
  const int n = device_count();
  if (device_index < 0 || device_index >= n || device_index >= max_devices) {
    // Name the runtime call that would fail, as cudaSetDevice reports it.
    return make_error(status_code::invalid_argument,
                      "CUDA call cudaSetDevice({}) failed: no such device ({} CUDA devices visible)", device_index, n);
  }
  const size_t cls = size_class(nbytes);
  cudaStream_t stream = current_cuda_stream(device_index);
  device_pool& dp = pool(device_index);
  std::lock_guard<std::mutex> lock(dp.mu);
  auto it = dp.free.find({stream, cls});
  void* p = nullptr;
  if (it != dp.free.end()) {
    p = it->second;
    dp.free.erase(it);
    dp.stats.bytes_cached -= cls;
    ++dp.stats.num_reused;
  } else {
    device_guard guard(device_index);
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      cudaGetLastError();
      cudaDeviceSynchronize();
      free_all_locked(dp);
      err = cudaMalloc(&p, cls);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      return make_error(err == cudaErrorMemoryAllocation ? status_code::out_of_memory : status_code::internal,
                        "CUDA call cudaMalloc({} bytes) failed on device {}: {} ({} bytes in use, {} cached)", cls,
                        device_index, cudaGetErrorString(err), dp.stats.bytes_in_use, dp.stats.bytes_cached);
    }
    ++dp.stats.num_cuda_malloc;
    dp.stats.bytes_reserved += cls;
  }
  dp.used[p] = block{p, cls, stream};
  dp.stats.bytes_in_use += cls;
  if (dp.stats.bytes_in_use > dp.stats.peak_bytes_in_use) dp.stats.peak_bytes_in_use = dp.stats.bytes_in_use;
  return p;
}

// The block goes back to its stream's free list: work queued on that stream before this point
// finishes before any later reuse on the same stream, so no synchronisation is needed.
void release(void* p, int device_index) {
  if (!p || device_index < 0 || device_index >= max_devices) return;
  device_pool& dp = pool(device_index);
  std::lock_guard<std::mutex> lock(dp.mu);
  auto it = dp.used.find(p);
  LRNN_ASSERT(it != dp.used.end(), "cuda::release of {} not allocated by lrnn on device {}", p, device_index);
  const block b = it->second;
  dp.used.erase(it);
  dp.stats.bytes_in_use -= b.size;
  dp.free.emplace(std::make_pair(b.stream, b.size), b.p);
  dp.stats.bytes_cached += b.size;
}

allocator_stats get_allocator_stats(int device_index) {
  if (device_index < 0 || device_index >= max_devices) return {};
  device_pool& dp = pool(device_index);
  std::lock_guard<std::mutex> lock(dp.mu);
  return dp.stats;
}

void reset_peak_bytes(int device_index) {
  if (device_index < 0 || device_index >= max_devices) return;
  device_pool& dp = pool(device_index);
  std::lock_guard<std::mutex> lock(dp.mu);
  dp.stats.peak_bytes_in_use = dp.stats.bytes_in_use;
}

size_t trim(int device_index) {
  if (device_index < 0 || device_index >= max_devices || device_index >= device_count()) return 0;
  device_pool& dp = pool(device_index);
  std::lock_guard<std::mutex> lock(dp.mu);
  if (dp.free.empty()) return 0;
  device_guard guard(device_index);
  cudaDeviceSynchronize();  // cached blocks may still be read by queued work on their streams
  return free_all_locked(dp);
}

}  // namespace lrnn::cuda
#endif
