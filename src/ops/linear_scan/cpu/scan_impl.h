// linear_scan scan form on CPU: a chunked parallel scan over time. Each chunk of L tokens is
// scanned from a zero state in parallel (keeping the running product of a); a short sequential
// pass carries the state across chunks; a second parallel pass adds product * carry. The
// backward runs the same scan in reverse for dh (README.md, "Scan form").
// Compiled twice (backend/cpu/simd.h): scan.cpp (baseline) and scan_avx2.cpp (AVX2 + FMA), each
// inside its own namespace LRNN_SIMD_NS; no include guard on purpose.
#include "ops/linear_scan/cpu/gates.h"
#include "lrnn/threads.h"

namespace lrnn::ops::detail::LRNN_SIMD_NS {


namespace {

struct chunk_ref {
  int64_t n, ts, te;
};

std::vector<chunk_ref> make_chunks(const std::vector<int64_t>& offsets, int64_t L) {
  std::vector<chunk_ref> out;
  for (size_t n = 0; n + 1 < offsets.size(); ++n)
    for (int64_t ts = offsets[n]; ts < offsets[n + 1]; ts += L)
      out.push_back({static_cast<int64_t>(n), ts, std::min(offsets[n + 1], ts + L)});
  return out;
}

// Forward:  out_t = a_t out_{t-1} + b_t, out_{t0-1} = seed; fin = out_{t1-1}.
// Reverse:  out_t = a_{t+1} out_{t+1} + b_t with a_{t1} = 1, out_{t1} = seed; fin = a_{t0} out_{t0}
// (the gradient reaching the state before the sequence). seed may be null (zeros).
template <typename A>
void chunked_scan(const std::vector<int64_t>& offsets, const std::vector<chunk_ref>& chunks, int64_t C, const A* a,
                  const A* b, const A* seed, A* out, A* fin, bool reverse) {
  const int64_t n_chunks = static_cast<int64_t>(chunks.size()), N = static_cast<int64_t>(offsets.size()) - 1;
  const int64_t tokens = offsets.back();
  std::vector<A> q(static_cast<size_t>(tokens) * C);             // running product of a inside the chunk
  std::vector<A> ends(static_cast<size_t>(n_chunks) * 2 * C);    // per chunk: product, local end value
  std::vector<A> carry_in(static_cast<size_t>(n_chunks) * C);
  parallel_for(n_chunks, [&](int64_t j) {
    const chunk_ref& ch = chunks[j];
    const int64_t t_last = offsets[ch.n + 1];
    std::vector<A> h(C, A(0)), prod(C, A(1));
    for (int64_t s = 0; s < ch.te - ch.ts; ++s) {
      const int64_t t = reverse ? ch.te - 1 - s : ch.ts + s;
      const A* coef = reverse ? (t + 1 < t_last ? a + (t + 1) * C : nullptr) : a + t * C;
      const A* bt = b + t * C;
      A* ot = out + t * C;
      A* qt = q.data() + t * C;
      if (coef) {
        for (int64_t c = 0; c < C; ++c) {
          h[c] = coef[c] * h[c] + bt[c];
          prod[c] *= coef[c];
          ot[c] = h[c], qt[c] = prod[c];
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          h[c] += bt[c];
          ot[c] = h[c], qt[c] = prod[c];
        }
      }
    }
    std::copy(prod.begin(), prod.end(), ends.begin() + j * 2 * C);
    std::copy(h.begin(), h.end(), ends.begin() + j * 2 * C + C);
  });
  // Chunks of sequence n are contiguous in `chunks`: find each sequence's range.
  std::vector<int64_t> first(N + 1, n_chunks);
  for (int64_t j = n_chunks - 1; j >= 0; --j) first[chunks[j].n] = j;
  for (int64_t n = N - 1; n >= 0; --n) first[n] = std::min(first[n], first[n + 1]);
  parallel_for(N, [&](int64_t n) {
    std::vector<A> carry(C, A(0));
    if (seed)
      for (int64_t c = 0; c < C; ++c) carry[c] = seed[n * C + c];
    const int64_t j0 = first[n], j1 = first[n + 1];
    for (int64_t s = 0; s < j1 - j0; ++s) {
      const int64_t j = reverse ? j1 - 1 - s : j0 + s;
      const A* prod = ends.data() + j * 2 * C;
      const A* hend = prod + C;
      std::copy(carry.begin(), carry.end(), carry_in.begin() + j * C);
      for (int64_t c = 0; c < C; ++c) carry[c] = prod[c] * carry[c] + hend[c];
    }
    if (!fin) return;
    const int64_t t0 = offsets[n];
    for (int64_t c = 0; c < C; ++c) fin[n * C + c] = reverse && offsets[n + 1] > t0 ? a[t0 * C + c] * carry[c] : carry[c];
  });
  parallel_for(n_chunks, [&](int64_t j) {
    const chunk_ref& ch = chunks[j];
    const A* cin = carry_in.data() + j * C;
    for (int64_t t = ch.ts; t < ch.te; ++t) {
      A* ot = out + t * C;
      const A* qt = q.data() + t * C;
      for (int64_t c = 0; c < C; ++c) ot[c] += qt[c] * cin[c];
    }
  });
}

template <typename A>
void coefficients_all(const linear_scan_problem<A>& p, const std::vector<chunk_ref>& chunks, A* a, A* b) {
  parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t j) {
    for (int64_t t = chunks[j].ts; t < chunks[j].te; ++t) scan_coefficients(p, t, 0, p.C, a + t * p.C, b + t * p.C);
  });
}

}  // namespace

template <typename A>
void linear_scan_forward_scan(const linear_scan_problem<A>& p, const linear_scan_forward_io<A>& io) {
  const auto chunks = make_chunks(p.offsets, p.chunk);
  const int64_t tokens = p.offsets.back();
  std::vector<A> a(static_cast<size_t>(tokens) * p.C), b(static_cast<size_t>(tokens) * p.C);  // [tokens, C]
  coefficients_all(p, chunks, a.data(), b.data());
  chunked_scan(p.offsets, chunks, p.C, a.data(), b.data(), p.h0, io.y, io.h_final, false);
}

template <typename A>
void linear_scan_backward_scan(const linear_scan_problem<A>& p, const linear_scan_backward_io<A>& io) {
  const auto chunks = make_chunks(p.offsets, p.chunk);
  const int64_t tokens = p.offsets.back(), C = p.C, N = p.N;
  std::vector<A> a(static_cast<size_t>(tokens) * C), b(static_cast<size_t>(tokens) * C);  // [tokens, C]
  coefficients_all(p, chunks, a.data(), b.data());
  std::vector<A> h(static_cast<size_t>(tokens) * C), dh(static_cast<size_t>(tokens) * C);  // [tokens, C]
  chunked_scan(p.offsets, chunks, C, a.data(), b.data(), p.h0, h.data(), static_cast<A*>(nullptr), false);
  chunked_scan(p.offsets, chunks, C, a.data(), io.dy, io.dh_final, dh.data(), io.dh0, true);
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  std::vector<A> dncs(static_cast<size_t>(n_chunks) * C, A(0));
  std::vector<A> zeros(C, A(0));
  parallel_for(n_chunks, [&](int64_t j) {
    const chunk_ref& ch = chunks[j];
    for (int64_t t = ch.ts; t < ch.te; ++t) {
      const A* hprev = t > p.offsets[ch.n] ? h.data() + (t - 1) * C : (p.h0 ? p.h0 + ch.n * C : zeros.data());
      scan_input_grads(p, t, 0, C, dh.data() + t * C, hprev, io, dncs.data() + j * C);
    }
  });
  if (io.dneg_c_softplus) {
    std::fill(io.dneg_c_softplus, io.dneg_c_softplus + N * C, A(0));
    for (int64_t j = 0; j < n_chunks; ++j)
      for (int64_t c = 0; c < C; ++c) io.dneg_c_softplus[chunks[j].n * C + c] += dncs[j * C + c];
  }
}

}  // namespace lrnn::ops::detail::LRNN_SIMD_NS
