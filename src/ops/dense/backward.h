// Backward passes of the dense ops (dense.h, norms, activations, token shift, cross-entropy)
// and the f64 forms of their forwards, for autograd (ops/dense/autograd.cpp). All functions
// take contiguous CPU tensors of one float dtype, f32 or f64, and return that dtype; math in
// the comments of backward.cpp.
#pragma once

#include "ops/dense/dense.h"

#include <functional>

namespace lrnn::ops::grad {

// Calls f(begin, end) on consecutive blocks covering [0, n), the blocks spread over the thread
// team (lrnn/threads.h). The blocks depend on n and grain only, never on the thread count, and
// every loop below keeps each output's summation order of the single-threaded code, so results
// are the same bits for any number of threads.
//
// The blocks run on the OpenMP team only with LRNN_ELEMENTWISE_THREADS=1 in the environment;
// otherwise one after the other on the calling thread (same blocks, same results). Measured on
// the shared 2-core machine (bench/training_step.md), these short loops were slower threaded:
// with libgomp's default spinning wait, a worker still spinning after a region holds the core
// the next OpenBLAS (pthreads) call needs; with OMP_WAIT_POLICY=passive the threaded loops still
// did not beat the serial ones under that machine's load.
void parallel_blocks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);
bool elementwise_threads();

// Any of these: f32 or f64 (the dtype the caller dispatches on).
status require_float(const tensor& t, const char* what);

// f64-capable forwards (f32 goes through dense.h where the op exists there).
result<tensor> linear_forward(const tensor& x, const tensor& w, const tensor& b);
result<tensor> embedding_forward(const tensor& ids, const tensor& table);
result<tensor> group_norm_forward(const tensor& x, int64_t groups, const tensor& w, const tensor& b, double eps);
result<tensor> group_rms_norm_forward(const tensor& x, int64_t groups, const tensor& w, double eps);
result<tensor> activation_forward(const tensor& x, activation a);

struct linear_grads {
  tensor dx, dw, db;
};
// x [M, in] (any leading dims), w [out, in], dy [M, out]; want_* skips unneeded products.
result<linear_grads> linear_backward(const tensor& x, const tensor& w, bool has_bias, const tensor& dy, bool want_dx,
                                     bool want_dw);
// Scatter-add of dy [..., D] into a [V, D] table by ids.
result<tensor> embedding_backward(const tensor& ids, int64_t V, const tensor& dy);

struct norm_grads {
  tensor dx, dw, db;
};
result<norm_grads> group_norm_backward(const tensor& x, int64_t groups, const tensor& w, bool has_bias, const tensor& dy,
                                       double eps);
result<norm_grads> group_rms_norm_backward(const tensor& x, int64_t groups, const tensor& w, const tensor& dy, double eps);

// dx = dy * a'(x).
result<tensor> activation_backward(const tensor& x, activation a, const tensor& dy);

// Sums g [..., suffix] over its leading dims down to `suffix` (broadcast reduction).
result<tensor> reduce_to_suffix(const tensor& g, const shape_t& suffix);

// Mean cross-entropy with z-loss over rows whose target != ignore_index. logits [N, V];
// targets i64 [N]. Returns loss (one element) and, when want_grad, dlogits for seed 1.
struct cross_entropy_result {
  double loss = 0;
  int64_t counted = 0;
  tensor dlogits;
};
result<cross_entropy_result> cross_entropy(const tensor& logits, const tensor& targets, double z_loss,
                                           int64_t ignore_index, bool want_grad);

}  // namespace lrnn::ops::grad
