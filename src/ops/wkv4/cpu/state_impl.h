// The wkv4 CPU kernels' per-task state traffic (chunk_impl.h and recurrent_impl.h): the (a, b, p)
// state of one sequence's channel block in and out, and the backward's state gradients and
// per-channel dw, du. Internal linkage, so the baseline and AVX2 builds each keep their own copy.
#pragma once

#include "ops/wkv4/wkv4.h"

#include <cstdint>

namespace lrnn::ops::detail {
namespace {

template <typename A>
void load_state(const wkv4_problem<A>& pr, int64_t n, int64_t c0, int64_t cw, A* a, A* b, A* p) {
  for (int64_t c = 0; c < cw; ++c) {
    a[c] = pr.a0 ? pr.a0[n * pr.C + c0 + c] : A(0);
    b[c] = pr.b0 ? pr.b0[n * pr.C + c0 + c] : A(0);
    p[c] = pr.p0 ? pr.p0[n * pr.C + c0 + c] : A(wkv4_p_start);
  }
}

template <typename A>
void store_state(const wkv4_forward_io<A>& io, int64_t C, int64_t n, int64_t c0, int64_t cw, const A* a, const A* b,
                 const A* p) {
  if (!io.a) return;
  for (int64_t c = 0; c < cw; ++c) {
    io.a[n * C + c0 + c] = a[c];
    io.b[n * C + c0 + c] = b[c];
    io.p[n * C + c0 + c] = p[c];
  }
}

// Gradients of the final state in (zero where not given); dw, du start at zero.
template <typename A>
void load_state_grads(const wkv4_backward_io<A>& io, int64_t C, int64_t n, int64_t c0, int64_t cw, A* ga, A* gb, A* gp,
                      A* dw, A* du) {
  for (int64_t c = 0; c < cw; ++c) {
    ga[c] = io.da ? io.da[n * C + c0 + c] : A(0);
    gb[c] = io.db ? io.db[n * C + c0 + c] : A(0);
    gp[c] = io.dp ? io.dp[n * C + c0 + c] : A(0);
    dw[c] = du[c] = A(0);
  }
}

// dw, du of the block and the initial-state gradients out.
template <typename A>
void store_grads(const wkv4_backward_io<A>& io, int64_t C, int64_t n, int64_t c0, int64_t cw, const A* dw, const A* du,
                 const A* ga, const A* gb, const A* gp) {
  for (int64_t c = 0; c < cw; ++c) {
    io.dw[n * C + c0 + c] = dw[c];
    io.du[n * C + c0 + c] = du[c];
    if (io.da0) {
      io.da0[n * C + c0 + c] = ga[c];
      io.db0[n * C + c0 + c] = gb[c];
      io.dp0[n * C + c0 + c] = gp[c];
    }
  }
}

}  // namespace
}  // namespace lrnn::ops::detail
