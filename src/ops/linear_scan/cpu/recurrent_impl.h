// linear_scan recurrent form on CPU: tasks over (sequence, block of up to 4096 channels), tokens in
// order, channels vectorised, gates computed on the fly. The backward stores h every 64 tokens
// and recomputes the states inside each block while walking back.
// Compiled twice (backend/cpu/simd.h): recurrent.cpp (baseline) and recurrent_avx2.cpp (AVX2 + FMA), each
// inside its own namespace LRNN_SIMD_NS; no include guard on purpose.
#include "ops/linear_scan/cpu/gates.h"
#include "lrnn/threads.h"

namespace lrnn::ops::detail::LRNN_SIMD_NS {


namespace {
constexpr int64_t max_block = 4096;  // channels per task at most (seq_util::channel_block)
constexpr int64_t checkpoint = 64;  // backward: tokens between stored states
}  // namespace

template <typename A>
void linear_scan_forward_recurrent(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io) {
  const int64_t C = p.C, block = seq_util::channel_block(p.N, C, max_block), nb = (C + block - 1) / block;
  parallel_for(p.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    std::vector<A> h_buf(block), a_buf(block), b_buf(block);
    A *h = h_buf.data(), *a = a_buf.data(), *b = b_buf.data();
    for (int64_t c = 0; c < cw; ++c) h[c] = p.h0 ? p.h0[n * C + c0 + c] : A(0);
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
      scan_coefficients(p, t, c0, cw, a, b);
      A* y = io.y + t * C + c0;
      for (int64_t c = 0; c < cw; ++c) y[c] = h[c] = a[c] * h[c] + b[c];
    }
    if (io.h_final)
      for (int64_t c = 0; c < cw; ++c) io.h_final[n * C + c0 + c] = h[c];
  });
}

template <typename A>
void linear_scan_backward_recurrent(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io) {
  const int64_t C = p.C, block = seq_util::channel_block(p.N, C, max_block), nb = (C + block - 1) / block;
  parallel_for(p.N * nb, [&](int64_t task) {
    const int64_t n = task / nb, c0 = (task % nb) * block, cw = std::min(block, C - c0);
    const int64_t t0 = p.offsets[n], t1 = p.offsets[n + 1], n_ck = (t1 - t0 + checkpoint - 1) / checkpoint;
    std::vector<A> ck(static_cast<size_t>(n_ck) * block);              // h before each 64-token block
    std::vector<A> hs(static_cast<size_t>(checkpoint + 1) * block);    // h inside the block
    std::vector<A> as(static_cast<size_t>(checkpoint) * block);        // a_t inside the block
    std::vector<A> h_buf(block), a_buf(block), b_buf(block), dh_buf(block), dncs_buf(block);
    A *h = h_buf.data(), *a = a_buf.data(), *b = b_buf.data(), *dh = dh_buf.data(), *dncs = dncs_buf.data();
    for (int64_t c = 0; c < cw; ++c) h[c] = p.h0 ? p.h0[n * C + c0 + c] : A(0);
    for (int64_t j = 0; j < n_ck; ++j) {
      std::copy(h, h + cw, ck.begin() + j * block);
      for (int64_t t = t0 + j * checkpoint; t < std::min(t1, t0 + (j + 1) * checkpoint); ++t) {
        scan_coefficients(p, t, c0, cw, a, b);
        for (int64_t c = 0; c < cw; ++c) h[c] = a[c] * h[c] + b[c];
      }
    }
    for (int64_t c = 0; c < cw; ++c) {
      dh[c] = io.dh_final ? io.dh_final[n * C + c0 + c] : A(0);
      dncs[c] = A(0);
    }
    for (int64_t j = n_ck - 1; j >= 0; --j) {
      const int64_t ts = t0 + j * checkpoint, te = std::min(t1, ts + checkpoint);
      std::copy(ck.begin() + j * block, ck.begin() + (j + 1) * block, hs.begin());
      for (int64_t t = ts; t < te; ++t) {
        A* at = as.data() + (t - ts) * block;
        scan_coefficients(p, t, c0, cw, at, b);
        const A* hp = hs.data() + (t - ts) * block;
        A* hn = hs.data() + (t - ts + 1) * block;
        for (int64_t c = 0; c < cw; ++c) hn[c] = at[c] * hp[c] + b[c];
      }
      for (int64_t t = te - 1; t >= ts; --t) {
        const A* dy = io.dy + t * C + c0;
        for (int64_t c = 0; c < cw; ++c) dh[c] += dy[c];
        scan_input_grads(p, t, c0, cw, dh, hs.data() + (t - ts) * block, io, dncs);
        const A* at = as.data() + (t - ts) * block;
        for (int64_t c = 0; c < cw; ++c) dh[c] *= at[c];
      }
    }
    for (int64_t c = 0; c < cw; ++c) {
      if (io.dneg_c_softplus) io.dneg_c_softplus[n * C + c0 + c] = dncs[c];
      if (io.dh0) io.dh0[n * C + c0 + c] = dh[c];
    }
  });
}

}  // namespace lrnn::ops::detail::LRNN_SIMD_NS
