// conv1d on CPU: tasks over (sequence, 64-token chunk), channels vectorised. The backward first
// forms dz = dy * act'(z) with per-task partial sums of dweight and dbias (added in a fixed
// order), then gathers dx and the cache gradient from dz, so no two tasks write one element.
// Compiled twice (backend/cpu/simd.h): cpu.cpp (baseline) and cpu_avx2.cpp (AVX2 + FMA), each
// inside its own namespace LRNN_SIMD_NS; no include guard on purpose.
#include "backend/cpu/vec_math.h"
#include "ops/common/seq_util.h"
#include "ops/conv1d/conv1d.h"
#include "lrnn/threads.h"
#include <algorithm>

namespace lrnn::ops::detail::LRNN_SIMD_NS {


namespace {

constexpr int64_t chunk = 64;

struct task_ref {
  int64_t n, ts, te;
};

std::vector<task_ref> make_tasks(const std::vector<int64_t>& offsets) {
  std::vector<task_ref> out;
  for (size_t n = 0; n + 1 < offsets.size(); ++n)
    for (int64_t ts = offsets[n]; ts < offsets[n + 1]; ts += chunk)
      out.push_back({static_cast<int64_t>(n), ts, std::min(offsets[n + 1], ts + chunk)});
  return out;
}

// Row j of the window of sequence n (j < 0: the cache), or null for a zero row.
template <typename A>
const A* input_row(const conv1d_problem<A>& p, int64_t n, int64_t j) {
  if (j >= 0) return p.x + (p.offsets[n] + j) * p.C;
  return p.cache ? p.cache + (n * (p.W - 1) + p.W - 1 + j) * p.C : nullptr;
}

template <typename A>
void pre_activation(const conv1d_problem<A>& p, int64_t n, int64_t t, A* z) {
  const int64_t C = p.C, tau = t - p.offsets[n], start = p.last_start[t];
  for (int64_t c = 0; c < C; ++c) z[c] = p.bias ? p.bias[c] : A(0);
  for (int64_t s = 0; s < p.W; ++s) {
    if (tau - s < start) break;
    const A* xr = input_row(p, n, tau - s);
    if (!xr) break;
    const A* wr = p.w + (p.W - 1 - s) * C;
    for (int64_t c = 0; c < C; ++c) z[c] += wr[c] * xr[c];
  }
}

template <typename A>
int64_t end_start(const conv1d_problem<A>& p, int64_t n) {
  return p.offsets[n + 1] > p.offsets[n] ? p.last_start[p.offsets[n + 1] - 1] : -p.W;
}

// Gradient of window input j of sequence n from the outputs (dz) and from the final cache.
template <typename A>
void input_grad(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io, const A* dz, int64_t n, int64_t j, A* out) {
  const int64_t C = p.C, W = p.W, t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
  std::fill(out, out + C, A(0));
  for (int64_t s = 0; s < W; ++s) {
    const int64_t tau = j + s;
    if (tau < 0) continue;
    if (tau >= L) break;
    if (j < p.last_start[t0 + tau]) continue;
    const A* d = dz + (t0 + tau) * C;
    const A* wr = p.w + (W - 1 - s) * C;
    for (int64_t c = 0; c < C; ++c) out[c] += d[c] * wr[c];
  }
  const int64_t i = j - (L - (W - 1));
  if (io.dcache_out && i >= 0 && j >= end_start(p, n)) {
    const A* g = io.dcache_out + (n * (W - 1) + i) * C;
    for (int64_t c = 0; c < C; ++c) out[c] += g[c];
  }
}

}  // namespace

template <typename A>
void conv1d_forward_cpu(const conv1d_problem<A>& p, const conv1d_forward_io<A>& io) {
  const auto tasks = make_tasks(p.offsets);
  const int64_t C = p.C, W = p.W;
  parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t k) {
    const task_ref& tk = tasks[k];
    for (int64_t t = tk.ts; t < tk.te; ++t) {
      A* y = io.y + t * C;
      pre_activation(p, tk.n, t, y);
      if (p.activation == conv1d_activation::silu)
        for (int64_t c = 0; c < C; ++c) y[c] = y[c] * cpu::vmath::sigmoid(y[c]);
    }
  });
  if (!io.cache) return;
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t L = p.offsets[n + 1] - p.offsets[n], start = end_start(p, n);
    for (int64_t i = 0; i < W - 1; ++i) {
      const int64_t j = L - (W - 1) + i;
      const A* xr = j >= start ? input_row(p, n, j) : nullptr;
      A* out = io.cache + (n * (W - 1) + i) * C;
      for (int64_t c = 0; c < C; ++c) out[c] = xr ? xr[c] : A(0);
    }
  }
}

template <typename A>
void conv1d_backward_cpu(const conv1d_problem<A>& p, const conv1d_backward_io<A>& io) {
  const auto tasks = make_tasks(p.offsets);
  const int64_t C = p.C, W = p.W, n_tasks = static_cast<int64_t>(tasks.size());
  const int64_t tokens = p.offsets.back();
  std::vector<A> dz(static_cast<size_t>(tokens) * C);                  // [tokens, C]
  std::vector<A> partial(static_cast<size_t>(n_tasks) * (W + 1) * C, A(0));  // per task: dweight rows, dbias
  parallel_for(n_tasks, [&](int64_t k) {
    const task_ref& tk = tasks[k];
    A* pw = partial.data() + k * (W + 1) * C;
    A* pb = pw + W * C;
    std::vector<A> z(C);
    for (int64_t t = tk.ts; t < tk.te; ++t) {
      const A* dy = io.dy + t * C;
      A* d = dz.data() + t * C;
      if (p.activation == conv1d_activation::silu) {
        pre_activation(p, tk.n, t, z.data());
        for (int64_t c = 0; c < C; ++c) {
          const A sg = cpu::vmath::sigmoid(z[c]);
          d[c] = dy[c] * sg * (A(1) + z[c] * (A(1) - sg));
        }
      } else {
        std::copy(dy, dy + C, d);
      }
      for (int64_t c = 0; c < C; ++c) pb[c] += d[c];
      const int64_t tau = t - p.offsets[tk.n], start = p.last_start[t];
      for (int64_t s = 0; s < W; ++s) {
        if (tau - s < start) break;
        const A* xr = input_row(p, tk.n, tau - s);
        if (!xr) break;
        A* wr = pw + (W - 1 - s) * C;
        for (int64_t c = 0; c < C; ++c) wr[c] += d[c] * xr[c];
      }
    }
  });
  parallel_for(n_tasks, [&](int64_t k) {
    const task_ref& tk = tasks[k];
    for (int64_t t = tk.ts; t < tk.te; ++t) input_grad(p, io, dz.data(), tk.n, t - p.offsets[tk.n], io.dx + t * C);
  });
  if (io.dcache)
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t i = 0; i < W - 1; ++i) input_grad(p, io, dz.data(), n, i - (W - 1), io.dcache + (n * (W - 1) + i) * C);
  std::fill(io.dw, io.dw + W * C, A(0));
  if (io.dbias) std::fill(io.dbias, io.dbias + C, A(0));
  for (int64_t k = 0; k < n_tasks; ++k) {
    const A* pw = partial.data() + k * (W + 1) * C;
    for (int64_t i = 0; i < W * C; ++i) io.dw[i] += pw[i];
    if (io.dbias)
      for (int64_t c = 0; c < C; ++c) io.dbias[c] += pw[W * C + c];
  }
}

}  // namespace lrnn::ops::detail::LRNN_SIMD_NS
