// OpenMP thread team and OpenBLAS thread count, kept in step.
#include "lrnn/threads.h"

#include <omp.h>

#include <thread>

extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
}

namespace lrnn {

void set_num_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

void parallel_for(int64_t n, const std::function<void(int64_t)>& f) {
  if (n <= 0) return;
  if (n == 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) f(i);
}

blas_single_thread_scope::blas_single_thread_scope() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
blas_single_thread_scope::~blas_single_thread_scope() { openblas_set_num_threads(saved_); }

}  // namespace lrnn
