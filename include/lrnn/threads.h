// Threading: OpenMP for parallel loops, OpenBLAS for GEMM. set_num_threads() sets both
// (the CLI's --threads); parallel_for splits [0, n) over the threads.
#pragma once

#include <cstdint>
#include <functional>

namespace lrnn {

void set_num_threads(int n);  // n <= 0: all hardware threads
int num_threads();

// Calls f(i) for i in [0, n) on the thread team. f must not throw.
void parallel_for(int64_t n, const std::function<void(int64_t)>& f);

// Runs `f` with BLAS limited to one thread (for GEMMs issued from inside parallel loops).
class blas_single_thread_scope {
 public:
  blas_single_thread_scope();
  ~blas_single_thread_scope();
  blas_single_thread_scope(const blas_single_thread_scope&) = delete;
  blas_single_thread_scope& operator=(const blas_single_thread_scope&) = delete;

 private:
  int saved_;
};

}  // namespace lrnn
