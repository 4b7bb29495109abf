// Backward passes of the dense ops and their f64 forwards (see backward.h). Plain loops with
// double accumulation, GEMMs through cblas_{s,d}gemm. Norm gradients, per row of D with
// inv = 1 / sqrt(var + eps) and xhat the normalised row:
//   LayerNorm/GroupNorm: dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * w
//   RMSNorm:             dx = inv * (dy * w) - x * inv^3 / D * sum(dy * w * x)
#include "ops/dense/backward.h"

#include "lrnn/threads.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

namespace lrnn::ops::grad {

namespace {

template <typename F>
auto with_float(dtype t, F&& f) {
  if (t == dtype::f64) return f(double{});
  return f(float{});
}

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  const auto A_ = ta ? CblasTrans : CblasNoTrans, B_ = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, double>)
    cblas_dgemm(CblasRowMajor, A_, B_, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0, A,
                static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
  else
    cblas_sgemm(CblasRowMajor, A_, B_, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, A,
                static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

result<tensor> contig(const tensor& t, dtype want, const char* what) {
  if (!t.defined()) return make_error(status_code::invalid_argument, "{}: tensor is undefined", what);
  if (t.type() != want)
    return make_error(status_code::invalid_argument, "{}: {} does not match the op's dtype {}", what, t.describe(), dtype_name(want));
  return t.contiguous();
}

// Work per block: elementwise loops of a few flops, rows of norms, columns of reductions.
constexpr int64_t elem_grain = 16384;
constexpr int64_t heavy_grain = 2048;  // elementwise with exp / tanh / erf
// Column blocks of the per-column reductions: each block reads every row, so blocks narrower
// than a few cache lines multiply the memory traffic.
constexpr int64_t col_grain = 64;

}  // namespace

bool elementwise_threads() {
  static const bool on = [] {
    const char* e = std::getenv("LRNN_ELEMENTWISE_THREADS");
    return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
  }();
  return on;
}

void parallel_blocks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t bs = std::max(grain, (n + 63) / 64), nb = (n + bs - 1) / bs;
  if (nb == 1 || !elementwise_threads()) {
    for (int64_t b = 0; b < nb; ++b) f(b * bs, std::min(n, (b + 1) * bs));
    return;
  }
  if (nb == 1) {
    f(0, n);
    return;
  }
  parallel_for(nb, [&](int64_t b) { f(b * bs, std::min(n, (b + 1) * bs)); });
}

status require_float(const tensor& t, const char* what) {
  if (!t.defined()) return make_error(status_code::invalid_argument, "{}: tensor is undefined", what);
  if ((t.type() != dtype::f32 && t.type() != dtype::f64) || !t.dev().is_cpu())
    return make_error(status_code::invalid_argument, "{}: expected a CPU f32 or f64 tensor, got {}", what, t.describe());
  return {};
}

result<tensor> linear_forward(const tensor& x_in, const tensor& w_in, const tensor& b_in) {
  LRNN_TRY(require_float(x_in, "linear x"));
  const dtype dt = x_in.type();
  if (w_in.dim() != 2 || x_in.dim() < 1 || x_in.size(-1) != w_in.size(1))
    return make_error(status_code::invalid_argument, "linear: x {} and weight {} do not match (weight is [out, in])",
                      x_in.describe(), w_in.describe());
  if (b_in.defined() && (b_in.dim() != 1 || b_in.size(0) != w_in.size(0)))
    return make_error(status_code::invalid_argument, "linear: bias {} for weight {}", b_in.describe(), w_in.describe());
  LRNN_ASSIGN_OR_RETURN(tensor x, contig(x_in, dt, "linear x"));
  LRNN_ASSIGN_OR_RETURN(tensor w, contig(w_in, dt, "linear weight"));
  tensor b;
  if (b_in.defined()) {
    LRNN_ASSIGN_OR_RETURN(b, contig(b_in, dt, "linear bias"));
  }
  const int64_t in = w.size(1), out = w.size(0), M = in ? x.numel() / in : 0;
  shape_t shape = x.shape();
  shape.back() = out;
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(shape, dt));  // [..., out]
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    if (b.defined())
      for (int64_t m = 0; m < M; ++m) std::memcpy(yp + m * out, b.data<T>(), out * sizeof(T));
    gemm<T>(false, true, M, out, in, x.data<T>(), in, w.data<T>(), in, b.defined() ? T(1) : T(0), yp, out);
  });
  return y;
}

result<linear_grads> linear_backward(const tensor& x_in, const tensor& w_in, bool has_bias, const tensor& dy_in, bool want_dx,
                                     bool want_dw) {
  const dtype dt = w_in.type();
  LRNN_ASSIGN_OR_RETURN(tensor x, contig(x_in, dt, "linear backward x"));
  LRNN_ASSIGN_OR_RETURN(tensor w, contig(w_in, dt, "linear backward weight"));
  LRNN_ASSIGN_OR_RETURN(tensor dy, contig(dy_in, dt, "linear backward dy"));
  const int64_t in = w.size(1), out = w.size(0), M = in ? x.numel() / in : 0;
  linear_grads g;
  if (want_dx) {
    LRNN_ASSIGN_OR_RETURN(g.dx, tensor::empty(x.shape(), dt));  // [..., in]
  }
  if (want_dw) {
    LRNN_ASSIGN_OR_RETURN(g.dw, tensor::empty(w.shape(), dt));  // [out, in]
    if (has_bias) {
      LRNN_ASSIGN_OR_RETURN(g.db, tensor::empty({out}, dt));     // [out]
    }
  }
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (want_dx) gemm<T>(false, false, M, in, out, dy.data<T>(), out, w.data<T>(), in, T(0), g.dx.data<T>(), in);
    if (want_dw) {
      gemm<T>(true, false, out, in, M, dy.data<T>(), out, x.data<T>(), in, T(0), g.dw.data<T>(), in);
      if (has_bias) {
        // Column sums, each in row order; columns spread over the threads.
        T* db = g.db.data<T>();
        const T* d = dy.data<T>();
        parallel_blocks(out, std::max<int64_t>(col_grain, elem_grain / std::max<int64_t>(1, M)), [&](int64_t o0, int64_t o1) {
          std::vector<double> s(static_cast<size_t>(o1 - o0), 0.0);
          for (int64_t m = 0; m < M; ++m) {
            const T* dm = d + m * out;
            for (int64_t o = o0; o < o1; ++o) s[o - o0] += dm[o];
          }
          for (int64_t o = o0; o < o1; ++o) db[o] = static_cast<T>(s[o - o0]);
        });
      }
    }
  });
  return g;
}

result<tensor> embedding_forward(const tensor& ids_in, const tensor& table_in) {
  LRNN_TRY(require_float(table_in, "embedding table"));
  if (table_in.dim() != 2) return make_error(status_code::invalid_argument, "embedding: table {} is not 2-D", table_in.describe());
  if (ids_in.type() != dtype::i64 && ids_in.type() != dtype::i32)
    return make_error(status_code::invalid_argument, "embedding: ids must be int32/int64, got {}", ids_in.describe());
  LRNN_ASSIGN_OR_RETURN(tensor ids, ids_in.to(dtype::i64));
  LRNN_ASSIGN_OR_RETURN(ids, ids.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor table, table_in.contiguous());
  const int64_t V = table.size(0), D = table.size(1);
  shape_t shape = ids.shape();
  shape.push_back(D);
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(shape, table.type()));  // [..., D]
  const int64_t* ip = ids.data<int64_t>();
  const size_t row = static_cast<size_t>(D) * dtype_size(table.type());
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (ip[i] < 0 || ip[i] >= V)
      return make_error(status_code::invalid_argument, "token id {} is outside the vocabulary [0, {})", ip[i], V);
  parallel_blocks(ids.numel(), std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(static_cast<char*>(out.raw_data()) + i * row, static_cast<const char*>(table.raw_data()) + ip[i] * row, row);
  });
  return out;
}

result<tensor> embedding_backward(const tensor& ids_in, int64_t V, const tensor& dy_in) {
  LRNN_TRY(require_float(dy_in, "embedding backward dy"));
  LRNN_ASSIGN_OR_RETURN(tensor ids, ids_in.to(dtype::i64));
  LRNN_ASSIGN_OR_RETURN(ids, ids.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor dy, dy_in.contiguous());
  const int64_t D = dy.size(-1);
  LRNN_ASSIGN_OR_RETURN(tensor dt, tensor::zeros({V, D}, dy.type()));  // [V, D]
  with_float(dy.type(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t* ip = ids.data<int64_t>();
    // Columns spread over the threads; each table entry adds its tokens in order.
    parallel_blocks(D, std::max<int64_t>(col_grain, elem_grain / std::max<int64_t>(1, ids.numel())), [&](int64_t j0, int64_t j1) {
      for (int64_t i = 0; i < ids.numel(); ++i) {
        T* r = dt.data<T>() + ip[i] * D;
        const T* d = dy.data<T>() + i * D;
        for (int64_t j = j0; j < j1; ++j) r[j] += d[j];
      }
    });
  });
  return dt;
}

namespace {
// What every group (RMS) norm kernel starts from: x contiguous, seen as [rows, groups, D], and the
// weight (when given) in x's dtype; `what` names the op in errors.
struct grouped {
  tensor x, w;
  dtype dt = dtype::f32;
  int64_t C = 0, D = 0, rows = 0;
};

// Mean and 1 / sqrt(variance + eps) of one group's D values (two passes, in double).
template <typename T>
std::pair<double, double> group_moments(const T* x, int64_t D, double eps) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < D; ++i) mean += x[i];
  mean /= static_cast<double>(D);
  for (int64_t i = 0; i < D; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(D);
  return {mean, 1.0 / std::sqrt(var + eps)};
}

result<grouped> grouped_inputs(const tensor& x_in, int64_t groups, const tensor& w_in, const std::string& what) {
  LRNN_TRY(require_float(x_in, (what + " x").c_str()));
  grouped g;
  g.C = x_in.size(-1);
  if (groups <= 0 || g.C % groups != 0)
    return make_error(status_code::invalid_argument, "{}: {} channels in {} groups", what, g.C, groups);
  g.dt = x_in.type(), g.D = g.C / groups, g.rows = g.C ? x_in.numel() / g.C : 0;
  LRNN_ASSIGN_OR_RETURN(g.x, x_in.contiguous());
  if (w_in.defined()) { LRNN_ASSIGN_OR_RETURN(g.w, contig(w_in, g.dt, (what + " weight").c_str())); }
  return g;
}
}  // namespace

result<tensor> group_norm_forward(const tensor& x_in, int64_t groups, const tensor& w_in, const tensor& b_in, double eps) {
  LRNN_ASSIGN_OR_RETURN(const grouped in, grouped_inputs(x_in, groups, w_in, "group_norm"));
  const dtype dt = in.dt;
  const int64_t C = in.C, D = in.D, rows = in.rows;
  if ((w_in.defined() && w_in.numel() != C) || (b_in.defined() && b_in.numel() != C))
    return make_error(status_code::invalid_argument, "group_norm: affine parameters must have {} elements", C);
  const tensor x = in.x, w = in.w;
  tensor b;
  if (b_in.defined()) { LRNN_ASSIGN_OR_RETURN(b, contig(b_in, dt, "group_norm bias")); }
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), dt));
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    parallel_blocks(rows * groups, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x.data<T>() + r * D;
      T* yr = y.data<T>() + r * D;
      const int64_t c0 = (r % groups) * D;
      const auto [mean, inv] = group_moments(xr, D, eps);
      for (int64_t i = 0; i < D; ++i) {
        double v = (xr[i] - mean) * inv;
        if (wp) v *= wp[c0 + i];
        if (bp) v += bp[c0 + i];
        yr[i] = static_cast<T>(v);
      }
    }
    });
  });
  return y;
}

result<norm_grads> group_norm_backward(const tensor& x_in, int64_t groups, const tensor& w_in, bool has_bias, const tensor& dy_in,
                                       double eps) {
  LRNN_ASSIGN_OR_RETURN(const grouped in, grouped_inputs(x_in, groups, w_in, "group_norm backward"));
  const dtype dt = in.dt;
  const int64_t C = in.C, D = in.D, rows = in.rows;
  const tensor x = in.x, w = in.w;
  LRNN_ASSIGN_OR_RETURN(tensor dy, contig(dy_in, dt, "group_norm backward dy"));
  norm_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dx, tensor::empty(x.shape(), dt));
  if (w.defined()) { LRNN_ASSIGN_OR_RETURN(g.dw, tensor::zeros({C}, dt)); }
  if (has_bias) { LRNN_ASSIGN_OR_RETURN(g.db, tensor::zeros({C}, dt)); }
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const int64_t R = rows * groups;
    std::vector<double> means(static_cast<size_t>(R)), invs(static_cast<size_t>(R));
    // dx row by row (rows spread over the threads).
    parallel_blocks(R, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
      std::vector<double> dxh(static_cast<size_t>(D)), xh(static_cast<size_t>(D));
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = x.data<T>() + r * D;
        const T* dr = dy.data<T>() + r * D;
        T* out = g.dx.data<T>() + r * D;
        const int64_t c0 = (r % groups) * D;
        const auto [mean, inv] = group_moments(xr, D, eps);
        means[r] = mean;
        invs[r] = inv;
        double m1 = 0, m2 = 0;
        for (int64_t i = 0; i < D; ++i) {
          xh[i] = (xr[i] - mean) * inv;
          dxh[i] = static_cast<double>(dr[i]) * (wp ? wp[c0 + i] : 1.0);
          m1 += dxh[i];
          m2 += dxh[i] * xh[i];
        }
        m1 /= static_cast<double>(D);
        m2 /= static_cast<double>(D);
        for (int64_t i = 0; i < D; ++i) out[i] = static_cast<T>(inv * (dxh[i] - m1 - xh[i] * m2));
      }
    });
    // dw, db: per channel, rows in order (channels spread over the threads).
    if (g.dw.defined() || g.db.defined())
      parallel_blocks(C, std::max<int64_t>(col_grain, elem_grain / std::max<int64_t>(1, rows)), [&](int64_t c_lo, int64_t c_hi) {
        std::vector<double> dw(static_cast<size_t>(c_hi - c_lo), 0.0), db(static_cast<size_t>(c_hi - c_lo), 0.0);
        for (int64_t r = 0; r < R; ++r) {
          const int64_t c0 = (r % groups) * D, lo = std::max(c_lo, c0), hi = std::min(c_hi, c0 + D);
          if (lo >= hi) continue;
          const T* xr = x.data<T>() + r * D;
          const T* dr = dy.data<T>() + r * D;
          const double mean = means[r], inv = invs[r];
          for (int64_t c = lo; c < hi; ++c) {
            const int64_t i = c - c0;
            const double xh = (xr[i] - mean) * inv;
            dw[c - c_lo] += static_cast<double>(dr[i]) * xh;
            db[c - c_lo] += dr[i];
          }
        }
        for (int64_t c = c_lo; c < c_hi; ++c) {
          if (g.dw.defined()) g.dw.data<T>()[c] = static_cast<T>(dw[c - c_lo]);
          if (g.db.defined()) g.db.data<T>()[c] = static_cast<T>(db[c - c_lo]);
        }
      });
  });
  return g;
}

result<tensor> group_rms_norm_forward(const tensor& x_in, int64_t groups, const tensor& w_in, double eps) {
  LRNN_ASSIGN_OR_RETURN(const grouped in, grouped_inputs(x_in, groups, w_in, "group_rms_norm"));
  const dtype dt = in.dt;
  const int64_t C = in.C, D = in.D, rows = in.rows;
  if (w_in.defined() && w_in.numel() != D && w_in.numel() != C)
    return make_error(status_code::invalid_argument, "group_rms_norm: weight has {} elements, expected {} or {}", w_in.numel(), D, C);
  const tensor x = in.x, w = in.w;
  const bool shared = w.defined() && w.numel() == D;
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), dt));
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    for (int64_t r = 0; r < rows * groups; ++r) {
      const T* xr = x.data<T>() + r * D;
      T* yr = y.data<T>() + r * D;
      const int64_t c0 = shared ? 0 : (r % groups) * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
      for (int64_t i = 0; i < D; ++i) yr[i] = static_cast<T>(xr[i] * inv * (wp ? static_cast<double>(wp[c0 + i]) : 1.0));
    }
  });
  return y;
}

result<norm_grads> group_rms_norm_backward(const tensor& x_in, int64_t groups, const tensor& w_in, const tensor& dy_in, double eps) {
  LRNN_ASSIGN_OR_RETURN(const grouped in, grouped_inputs(x_in, groups, w_in, "group_rms_norm backward"));
  const dtype dt = in.dt;
  const int64_t D = in.D, rows = in.rows;
  const tensor x = in.x, w = in.w;
  LRNN_ASSIGN_OR_RETURN(tensor dy, contig(dy_in, dt, "group_rms_norm backward dy"));
  const bool shared = w.defined() && w.numel() == D;
  norm_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dx, tensor::empty(x.shape(), dt));
  if (w.defined()) { LRNN_ASSIGN_OR_RETURN(g.dw, tensor::empty(w.shape(), dt)); }
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const int64_t R = rows * groups;
    std::vector<double> invs(static_cast<size_t>(R));
    // dx row by row (rows spread over the threads).
    parallel_blocks(R, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = x.data<T>() + r * D;
        const T* dr = dy.data<T>() + r * D;
        T* out = g.dx.data<T>() + r * D;
        const int64_t c0 = shared ? 0 : (r % groups) * D;
        double ss = 0, dot = 0;
        for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
        invs[r] = inv;
        for (int64_t i = 0; i < D; ++i) {
          const double wi = wp ? static_cast<double>(wp[c0 + i]) : 1.0;
          dot += static_cast<double>(dr[i]) * wi * xr[i];
        }
        const double k = inv * inv * inv / static_cast<double>(D) * dot;
        for (int64_t i = 0; i < D; ++i) {
          const double wi = wp ? static_cast<double>(wp[c0 + i]) : 1.0;
          out[i] = static_cast<T>(inv * dr[i] * wi - xr[i] * k);
        }
      }
    });
    // dw: per weight entry, rows in order (entries spread over the threads).
    if (wp) {
      const int64_t W = w.numel();
      parallel_blocks(W, std::max<int64_t>(col_grain, elem_grain / std::max<int64_t>(1, R)), [&](int64_t w_lo, int64_t w_hi) {
        std::vector<double> dw(static_cast<size_t>(w_hi - w_lo), 0.0);
        for (int64_t r = 0; r < R; ++r) {
          const int64_t c0 = shared ? 0 : (r % groups) * D, lo = std::max(w_lo, c0), hi = std::min(w_hi, c0 + D);
          if (lo >= hi) continue;
          const T* xr = x.data<T>() + r * D;
          const T* dr = dy.data<T>() + r * D;
          const double inv = invs[r];
          for (int64_t c = lo; c < hi; ++c) dw[c - w_lo] += static_cast<double>(dr[c - c0]) * xr[c - c0] * inv;
        }
        for (int64_t c = w_lo; c < w_hi; ++c) g.dw.data<T>()[c] = static_cast<T>(dw[c - w_lo]);
      });
    }
  });
  return g;
}

namespace {
double act_value(activation a, double x) {
  switch (a) {
    case activation::identity: return x;
    case activation::silu: return x / (1.0 + std::exp(-x));
    case activation::sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case activation::tanh: return std::tanh(x);
    case activation::relu: return x > 0 ? x : 0.0;
    case activation::relu_squared: return x > 0 ? x * x : 0.0;
    case activation::gelu_tanh: return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    case activation::gelu_erf: return 0.5 * x * (1.0 + std::erf(x * 0.7071067811865476));
    case activation::softplus: return x > 20.0 ? x : std::log1p(std::exp(x));
    case activation::logsigmoid: return -(x < -20.0 ? -x : std::log1p(std::exp(-x)));
    case activation::exp: return std::exp(x);
  }
  return x;
}
double act_derivative(activation a, double x) {
  switch (a) {
    case activation::identity: return 1.0;
    case activation::silu: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case activation::sigmoid: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
    case activation::tanh: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case activation::relu: return x > 0 ? 1.0 : 0.0;
    case activation::relu_squared: return x > 0 ? 2.0 * x : 0.0;
    case activation::gelu_tanh: {
      const double c = 0.7978845608028654, u = c * (x + 0.044715 * x * x * x), t = std::tanh(u);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case activation::gelu_erf:
      return 0.5 * (1.0 + std::erf(x * 0.7071067811865476)) + x * std::exp(-0.5 * x * x) * 0.3989422804014327;
    case activation::softplus: return x > 20.0 ? 1.0 : 1.0 / (1.0 + std::exp(-x));
    case activation::logsigmoid: return x < -20.0 ? 1.0 : 1.0 / (1.0 + std::exp(x));
    case activation::exp: return std::exp(x);
  }
  return 1.0;
}
}  // namespace

result<tensor> activation_forward(const tensor& x_in, activation a) {
  LRNN_TRY(require_float(x_in, "activation x"));
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));
  with_float(x.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    T* q = y.data<T>();
    parallel_blocks(x.numel(), heavy_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) q[i] = static_cast<T>(act_value(a, p[i]));
    });
  });
  return y;
}

result<tensor> activation_backward(const tensor& x_in, activation a, const tensor& dy_in) {
  LRNN_TRY(require_float(x_in, "activation backward x"));
  LRNN_ASSIGN_OR_RETURN(tensor x, x_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor dy, contig(dy_in, x.type(), "activation backward dy"));
  LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(x.shape(), x.type()));
  with_float(x.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    const T* d = dy.data<T>();
    T* q = dx.data<T>();
    parallel_blocks(x.numel(), heavy_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) q[i] = static_cast<T>(d[i] * act_derivative(a, p[i]));
    });
  });
  return dx;
}

result<tensor> reduce_to_suffix(const tensor& g_in, const shape_t& suffix) {
  if (g_in.shape() == suffix) return g_in;
  LRNN_TRY(require_float(g_in, "broadcast reduction"));
  LRNN_ASSIGN_OR_RETURN(tensor g, g_in.contiguous());
  const int64_t n = shape_numel(suffix), rows = n ? g.numel() / n : 0;
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(suffix, g.type()));
  with_float(g.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = g.data<T>();
    // Per entry, rows in order (entries spread over the threads).
    parallel_blocks(n, std::max<int64_t>(col_grain, elem_grain / std::max<int64_t>(1, rows)), [&](int64_t i0, int64_t i1) {
      std::vector<double> acc(static_cast<size_t>(i1 - i0), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = i0; i < i1; ++i) acc[i - i0] += p[r * n + i];
      for (int64_t i = i0; i < i1; ++i) out.data<T>()[i] = static_cast<T>(acc[i - i0]);
    });
  });
  return out;
}

result<cross_entropy_result> cross_entropy(const tensor& logits_in, const tensor& targets_in, double z_loss, int64_t ignore_index,
                                           bool want_grad) {
  LRNN_TRY(require_float(logits_in, "cross_entropy logits"));
  if (targets_in.type() != dtype::i64 && targets_in.type() != dtype::i32)
    return make_error(status_code::invalid_argument, "cross_entropy: targets must be int64/int32, got {}", targets_in.describe());
  const int64_t V = logits_in.size(-1), N = V ? logits_in.numel() / V : 0;
  if (targets_in.numel() != N)
    return make_error(status_code::invalid_argument, "cross_entropy: logits {} need {} targets, got {}", logits_in.describe(), N,
                      targets_in.describe());
  LRNN_ASSIGN_OR_RETURN(tensor x, logits_in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor tg, targets_in.to(dtype::i64));
  LRNN_ASSIGN_OR_RETURN(tg, tg.contiguous());
  const int64_t* tp = tg.data<int64_t>();
  cross_entropy_result r;
  for (int64_t i = 0; i < N; ++i) {
    if (tp[i] == ignore_index) continue;
    if (tp[i] < 0 || tp[i] >= V)
      return make_error(status_code::invalid_argument, "cross_entropy: target {} at position {} is outside the vocabulary [0, {})",
                        tp[i], i, V);
    ++r.counted;
  }
  if (want_grad) {
    LRNN_ASSIGN_OR_RETURN(r.dlogits, tensor::zeros(x.shape(), x.type()));
  }
  const double inv_n = r.counted ? 1.0 / static_cast<double>(r.counted) : 0.0;
  with_float(x.type(), [&](auto tag) {
    using T = decltype(tag);
    // Rows spread over the threads; the per-row losses are summed in row order afterwards.
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
    parallel_blocks(N, std::max<int64_t>(1, heavy_grain / std::max<int64_t>(1, V)), [&](int64_t i0, int64_t i1) {
      std::vector<double> e(static_cast<size_t>(V));  // exp(x_j - max), one exp per logit
      for (int64_t i = i0; i < i1; ++i) {
        if (tp[i] == ignore_index) continue;
        const T* row = x.data<T>() + i * V;
        double mx = -INFINITY;
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, static_cast<double>(row[j]));
        double se = 0;
        for (int64_t j = 0; j < V; ++j) {
          e[j] = std::exp(row[j] - mx);
          se += e[j];
        }
        const double lse = mx + std::log(se);
        row_loss[i] = lse - row[tp[i]] + z_loss * lse * lse;
        if (want_grad) {
          // d/dx_j = (softmax_j - [j == t] + 2 z lse softmax_j) / n, softmax_j = e_j / se
          T* d = r.dlogits.data<T>() + i * V;
          const double f = (1.0 + 2.0 * z_loss * lse) * inv_n / se;
          for (int64_t j = 0; j < V; ++j) d[j] = static_cast<T>(e[j] * f);
          d[tp[i]] = static_cast<T>(d[tp[i]] - inv_n);
        }
      }
    });
    double total = 0;
    for (int64_t i = 0; i < N; ++i)
      if (tp[i] != ignore_index) total += row_loss[i];
    r.loss = total * inv_n;
  });
  return r;
}

}  // namespace lrnn::ops::grad
