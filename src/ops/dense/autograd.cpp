// Differentiable dense ops (see autograd.h): each forward runs the op of dense.h / ops/norm in
// f32 (the same code the inference models run) or its f64 form from backward.cpp, and records
// a closure calling the backward of backward.cpp (or ops::rms_norm_backward).
#include "ops/dense/autograd.h"

#include "ops/dense/backward.h"
#include "ops/norm/norm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lrnn::ag {

namespace {

using grads = std::vector<tensor>;
using ops::grad::parallel_blocks;

// Elements per block of the elementwise loops (ops::grad::parallel_blocks: results do not depend
// on the thread count).
constexpr int64_t elem_grain = 16384;

template <typename F>
auto with_float(dtype t, F&& f) {
  if (t == dtype::f64) return f(double{});
  return f(float{});
}

status check_float(const var& x, const char* what) {
  if (!x.defined()) return make_error(status_code::invalid_argument, "{}: undefined input", what);
  return ops::grad::require_float(x.value(), what);
}

status check_same_type(const var& a, const var& b, const char* what) {
  if (b.defined() && a.type() != b.type())
    return make_error(status_code::invalid_argument, "{}: inputs of dtypes {} and {} (one dtype per op)", what,
                      dtype_name(a.type()), dtype_name(b.type()));
  return {};
}

bool wants(const var& v) { return v.defined() && v.requires_grad(); }

// y = f(x) elementwise with dy/dx = df(x, y), computed in double.
template <typename F, typename DF>
result<var> unary(const var& x, const char* name, F f, DF df) {
  LRNN_TRY(check_float(x, name));
  LRNN_ASSIGN_OR_RETURN(tensor xv, x.value().contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(xv.shape(), xv.type()));
  with_float(xv.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = xv.data<T>();
    T* q = y.data<T>();
    parallel_blocks(xv.numel(), elem_grain / 4, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) q[i] = static_cast<T>(f(static_cast<double>(p[i])));
    });
  });
  return make_result(y, {x}, [xv, y, df](const tensor& g_in) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor g, g_in.to(xv.type()));
    LRNN_ASSIGN_OR_RETURN(g, g.contiguous());
    LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(xv.shape(), xv.type()));
    with_float(xv.type(), [&](auto tag) {
      using T = decltype(tag);
      const T *p = xv.data<T>(), *yp = y.data<T>(), *gp = g.data<T>();
      T* d = dx.data<T>();
      parallel_blocks(xv.numel(), elem_grain / 4, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          d[i] = static_cast<T>(gp[i] * df(static_cast<double>(p[i]), static_cast<double>(yp[i])));
      });
    });
    return grads{dx};
  }, name);
}

bool is_suffix(const shape_t& s, const shape_t& of) {
  if (s.size() > of.size()) return false;
  return std::equal(s.begin(), s.end(), of.end() - static_cast<std::ptrdiff_t>(s.size()));
}

enum class binop { add, sub, mul };

result<var> binary(const var& a, const var& b, binop op, const char* name) {
  LRNN_TRY(check_float(a, name));
  LRNN_TRY(check_float(b, name));
  LRNN_TRY(check_same_type(a, b, name));
  if (!is_suffix(b.shape(), a.shape()))
    return make_error(status_code::invalid_argument, "{}: shape {} does not broadcast onto {} (it must be a suffix)", name,
                      shape_to_string(b.shape()), shape_to_string(a.shape()));
  LRNN_ASSIGN_OR_RETURN(tensor av, a.value().contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor bv, b.value().contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(av.shape(), av.type()));
  const int64_t n = av.numel(), m = bv.numel();
  with_float(av.type(), [&](auto tag) {
    using T = decltype(tag);
    const T *p = av.data<T>(), *q = bv.data<T>();
    T* r = y.data<T>();
    // Rows of m elements (b broadcast over them), a block of rows at a time.
    const int64_t rows = m ? n / m : 0;
    parallel_blocks(rows, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, m)), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const T* pa = p + row * m;
        T* pr = r + row * m;
        if (op == binop::add)
          for (int64_t j = 0; j < m; ++j) pr[j] = pa[j] + q[j];
        else if (op == binop::sub)
          for (int64_t j = 0; j < m; ++j) pr[j] = pa[j] - q[j];
        else
          for (int64_t j = 0; j < m; ++j) pr[j] = pa[j] * q[j];
      }
    });
  });
  const bool need_a = wants(a), need_b = wants(b);
  return make_result(y, {a, b}, [av, bv, op, need_a, need_b, n, m](const tensor& g_in) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor g, g_in.to(av.type()));
    LRNN_ASSIGN_OR_RETURN(g, g.contiguous());
    tensor da, db;
    if (op == binop::mul) {
      if (need_a) {
        LRNN_ASSIGN_OR_RETURN(da, tensor::empty(av.shape(), av.type()));
      }
      tensor gb;
      if (need_b) {
        LRNN_ASSIGN_OR_RETURN(gb, tensor::empty(av.shape(), av.type()));
      }
      with_float(av.type(), [&](auto tag) {
        using T = decltype(tag);
        const T *p = av.data<T>(), *q = bv.data<T>(), *gp = g.data<T>();
        T* pda = need_a ? da.data<T>() : nullptr;
        T* pgb = need_b ? gb.data<T>() : nullptr;
        const int64_t rows = m ? n / m : 0;
        parallel_blocks(rows, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, m)), [&](int64_t r0, int64_t r1) {
          for (int64_t row = r0; row < r1; ++row) {
            const int64_t o = row * m;
            if (pda)
              for (int64_t j = 0; j < m; ++j) pda[o + j] = gp[o + j] * q[j];
            if (pgb)
              for (int64_t j = 0; j < m; ++j) pgb[o + j] = gp[o + j] * p[o + j];
          }
        });
      });
      if (need_b) {
        LRNN_ASSIGN_OR_RETURN(db, ops::grad::reduce_to_suffix(gb, bv.shape()));
      }
      return grads{da, db};
    }
    if (need_a) da = g;
    if (need_b) {
      LRNN_ASSIGN_OR_RETURN(db, ops::grad::reduce_to_suffix(g, bv.shape()));
      if (op == binop::sub) {
        LRNN_ASSIGN_OR_RETURN(db, db.clone());
        with_float(db.type(), [&](auto tag) {
          using T = decltype(tag);
          for (int64_t i = 0; i < db.numel(); ++i) db.data<T>()[i] = -db.data<T>()[i];
        });
      }
    }
    return grads{da, db};
  }, name);
}

result<tensor> scaled_copy(const tensor& g_in, dtype dt, double s) {
  LRNN_ASSIGN_OR_RETURN(tensor g, g_in.to(dt));
  LRNN_ASSIGN_OR_RETURN(g, g.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(g.shape(), dt));
  with_float(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = g.data<T>();
    T* op = out.data<T>();
    parallel_blocks(g.numel(), elem_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) op[i] = static_cast<T>(gp[i] * s);
    });
  });
  return out;
}

}  // namespace

result<var> linear(const var& x, const var& w, const var& b) {
  LRNN_TRY(check_float(x, "linear x"));
  LRNN_TRY(check_float(w, "linear weight"));
  LRNN_TRY(check_same_type(x, w, "linear"));
  LRNN_TRY(check_same_type(x, b, "linear"));
  tensor y;
  if (x.type() == dtype::f32) {
    LRNN_ASSIGN_OR_RETURN(y, ops::linear(x.value(), w.value(), b.defined() ? b.value() : tensor()));
  } else {
    LRNN_ASSIGN_OR_RETURN(y, ops::grad::linear_forward(x.value(), w.value(), b.defined() ? b.value() : tensor()));
  }
  tensor xv = x.value(), wv = w.value();
  const bool has_b = b.defined(), need_x = wants(x), need_w = wants(w) || wants(b);
  return make_result(y, {x, w, b}, [xv, wv, has_b, need_x, need_w](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(auto r, ops::grad::linear_backward(xv, wv, has_b, g, need_x, need_w));
    return grads{r.dx, r.dw, r.db};
  }, "linear");
}

result<var> embedding(const tensor& ids, const var& table) {
  LRNN_TRY(check_float(table, "embedding table"));
  tensor y;
  if (table.type() == dtype::f32) {
    LRNN_ASSIGN_OR_RETURN(y, ops::embedding(ids, table.value()));
  } else {
    LRNN_ASSIGN_OR_RETURN(y, ops::grad::embedding_forward(ids, table.value()));
  }
  const int64_t V = table.size(0);
  return make_result(y, {table}, [ids, V](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor d, ops::grad::embedding_backward(ids, V, g));
    return grads{d};
  }, "embedding");
}

result<var> rms_norm(const var& x, const var& w, double eps, double weight_offset) {
  LRNN_TRY(check_float(x, "rms_norm x"));
  LRNN_TRY(check_same_type(x, w, "rms_norm"));
  ops::rms_norm_spec spec;
  spec.eps = eps;
  spec.weight_offset = weight_offset;
  // The CPU form computes in f32; f64 (gradient checks) takes the f64 reference.
  const ops::norm_form form = x.type() == dtype::f64 ? ops::norm_form::reference : ops::norm_form::cpu;
  tensor wv = w.defined() ? w.value() : tensor();
  LRNN_ASSIGN_OR_RETURN(tensor y, ops::rms_norm_forward(spec, x.value(), wv, form));
  tensor xv = x.value();
  return make_result(y, {x, w}, [spec, xv, wv, form](const tensor& g_in) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor g, g_in.to(xv.type()));
    LRNN_ASSIGN_OR_RETURN(auto r, ops::rms_norm_backward(spec, xv, wv, g, form));
    tensor dw = r.dweight;
    if (dw.defined() && wv.defined() && dw.type() != wv.type()) {
      LRNN_ASSIGN_OR_RETURN(dw, dw.to(wv.type()));
    }
    return grads{r.dx, dw};
  }, "rms_norm");
}

result<var> group_rms_norm(const var& x, int64_t groups, const var& w, double eps) {
  LRNN_TRY(check_float(x, "group_rms_norm x"));
  LRNN_TRY(check_same_type(x, w, "group_rms_norm"));
  tensor wv = w.defined() ? w.value() : tensor();
  tensor y;
  if (x.type() == dtype::f32) {
    LRNN_ASSIGN_OR_RETURN(y, ops::group_rms_norm(x.value(), groups, wv, eps));
  } else {
    LRNN_ASSIGN_OR_RETURN(y, ops::grad::group_rms_norm_forward(x.value(), groups, wv, eps));
  }
  tensor xv = x.value();
  return make_result(y, {x, w}, [xv, wv, groups, eps](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(auto r, ops::grad::group_rms_norm_backward(xv, groups, wv, g, eps));
    return grads{r.dx, r.dw};
  }, "group_rms_norm");
}

result<var> group_norm(const var& x, int64_t groups, const var& w, const var& b, double eps) {
  LRNN_TRY(check_float(x, "group_norm x"));
  LRNN_TRY(check_same_type(x, w, "group_norm"));
  LRNN_TRY(check_same_type(x, b, "group_norm"));
  tensor wv = w.defined() ? w.value() : tensor(), bv = b.defined() ? b.value() : tensor();
  tensor y;
  if (x.type() == dtype::f32) {
    LRNN_ASSIGN_OR_RETURN(y, ops::group_norm(x.value(), groups, wv, bv, eps));
  } else {
    LRNN_ASSIGN_OR_RETURN(y, ops::grad::group_norm_forward(x.value(), groups, wv, bv, eps));
  }
  tensor xv = x.value();
  const bool has_b = bv.defined();
  return make_result(y, {x, w, b}, [xv, wv, has_b, groups, eps](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(auto r, ops::grad::group_norm_backward(xv, groups, wv, has_b, g, eps));
    return grads{r.dx, r.dw, r.db};
  }, "group_norm");
}

result<var> layer_norm(const var& x, const var& w, const var& b, double eps) { return group_norm(x, 1, w, b, eps); }

result<var> activation(const var& x, ops::activation a) {
  LRNN_TRY(check_float(x, "activation x"));
  tensor y;
  if (x.type() == dtype::f32) {
    LRNN_ASSIGN_OR_RETURN(y, x.value().clone());
    LRNN_ASSIGN_OR_RETURN(y, y.contiguous());
    // The inference op on contiguous blocks of the flat tensor, the blocks spread over the threads.
    LRNN_ASSIGN_OR_RETURN(tensor flat, y.view({y.numel()}));
    status st;
    parallel_blocks(y.numel(), elem_grain / 8, [&](int64_t i0, int64_t i1) {
      auto part = flat.slice(0, i0, i1);
      if (part.ok()) ops::apply_activation(*part, a);
      else if (i0 == 0) st = part.get_status();
    });
    LRNN_TRY(st);
  } else {
    LRNN_ASSIGN_OR_RETURN(y, ops::grad::activation_forward(x.value(), a));
  }
  tensor xv = x.value();
  return make_result(y, {x}, [xv, a](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor gg, g.to(xv.type()));
    LRNN_ASSIGN_OR_RETURN(tensor d, ops::grad::activation_backward(xv, a, gg));
    return grads{d};
  }, "activation");
}

result<var> add(const var& a, const var& b) { return binary(a, b, binop::add, "add"); }
result<var> sub(const var& a, const var& b) { return binary(a, b, binop::sub, "sub"); }
result<var> mul(const var& a, const var& b) { return binary(a, b, binop::mul, "mul"); }

result<var> scale(const var& x, double s) {
  return unary(x, "scale", [s](double v) { return v * s; }, [s](double, double) { return s; });
}

result<var> add_scaled(const var& a, const var& b, double s) {
  LRNN_TRY(check_float(a, "add_scaled"));
  LRNN_TRY(check_float(b, "add_scaled"));
  LRNN_TRY(check_same_type(a, b, "add_scaled"));
  if (a.shape() != b.shape())
    return make_error(status_code::invalid_argument, "add_scaled: shapes {} and {} differ", shape_to_string(a.shape()),
                      shape_to_string(b.shape()));
  LRNN_ASSIGN_OR_RETURN(tensor y, a.value().clone());
  LRNN_ASSIGN_OR_RETURN(y, y.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor bv, b.value().contiguous());
  with_float(y.type(), [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    const T* bp = bv.data<T>();
    parallel_blocks(y.numel(), elem_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) yp[i] = static_cast<T>(yp[i] + s * bp[i]);
    });
  });
  const dtype dt = y.type();
  return make_result(y, {a, b}, [s, dt](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor db, scaled_copy(g, dt, s));
    return grads{g, db};
  }, "add_scaled");
}

result<var> softcap(const var& x, double cap) {
  if (!(cap > 0)) return make_error(status_code::invalid_argument, "softcap: cap must be > 0, got {}", cap);
  return unary(
      x, "softcap", [cap](double v) { return cap * std::tanh(v / cap); },
      [cap](double v, double) {
        const double t = std::tanh(v / cap);
        return 1.0 - t * t;
      });
}

result<var> clamp_min(const var& x, double lo) {
  return unary(x, "clamp_min", [lo](double v) { return std::max(v, lo); }, [lo](double v, double) { return v > lo ? 1.0 : 0.0; });
}

result<var> reshape(const var& x, const shape_t& shape) {
  if (!x.defined()) return make_error(status_code::invalid_argument, "reshape: undefined input");
  LRNN_ASSIGN_OR_RETURN(tensor c, x.value().contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, c.view(shape));
  const shape_t from = x.shape();
  return make_result(y, {x}, [from](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor d, g.reshape(from));
    return grads{d};
  }, "reshape");
}

result<var> slice(const var& x, int64_t dim, int64_t start, int64_t end) {
  if (!x.defined()) return make_error(status_code::invalid_argument, "slice: undefined input");
  LRNN_ASSIGN_OR_RETURN(tensor s, x.value().slice(dim, start, end));
  LRNN_ASSIGN_OR_RETURN(tensor y, s.contiguous());
  const shape_t from = x.shape();
  const dtype dt = x.type();
  return make_result(y, {x}, [from, dt, dim, start, end](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor d, tensor::zeros(from, dt));
    LRNN_ASSIGN_OR_RETURN(tensor part, d.slice(dim, start, end));
    LRNN_TRY(part.copy_from(g));
    return grads{d};
  }, "slice");
}

result<var> concat(const std::vector<var>& xs, int64_t dim) {
  if (xs.empty()) return make_error(status_code::invalid_argument, "concat: no inputs");
  for (const var& x : xs)
    if (!x.defined()) return make_error(status_code::invalid_argument, "concat: undefined input");
  const int64_t nd = xs[0].dim();
  if (dim < 0) dim += nd;
  if (dim < 0 || dim >= nd) return make_error(status_code::invalid_argument, "concat: dim out of range for {}-D inputs", nd);
  shape_t shape = xs[0].shape();
  shape[dim] = 0;
  std::vector<int64_t> offsets;
  for (const var& x : xs) {
    shape_t s = x.shape();
    if (x.dim() != nd || x.type() != xs[0].type())
      return make_error(status_code::invalid_argument, "concat: inputs differ in rank or dtype");
    for (int64_t d = 0; d < nd; ++d)
      if (d != dim && s[d] != shape[d])
        return make_error(status_code::invalid_argument, "concat: shapes {} and {} differ outside dim {}",
                          shape_to_string(xs[0].shape()), shape_to_string(s), dim);
    offsets.push_back(shape[dim]);
    shape[dim] += s[dim];
  }
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(shape, xs[0].type()));
  for (size_t i = 0; i < xs.size(); ++i) {
    LRNN_ASSIGN_OR_RETURN(tensor part, y.slice(dim, offsets[i], offsets[i] + xs[i].size(dim)));
    LRNN_TRY(part.copy_from(xs[i].value()));
  }
  std::vector<int64_t> sizes;
  for (const var& x : xs) sizes.push_back(x.size(dim));
  return make_result(y, xs, [offsets, sizes, dim](const tensor& g) -> result<grads> {
    grads out;
    for (size_t i = 0; i < offsets.size(); ++i) {
      LRNN_ASSIGN_OR_RETURN(tensor part, g.slice(dim, offsets[i], offsets[i] + sizes[i]));
      LRNN_ASSIGN_OR_RETURN(part, part.contiguous());
      out.push_back(part);
    }
    return out;
  }, "concat");
}

result<var> transpose(const var& x, int64_t a, int64_t b) {
  if (!x.defined()) return make_error(status_code::invalid_argument, "transpose: undefined input");
  LRNN_ASSIGN_OR_RETURN(tensor t, x.value().transpose(a, b));
  LRNN_ASSIGN_OR_RETURN(tensor y, t.contiguous());
  return make_result(y, {x}, [a, b](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor t2, g.transpose(a, b));
    LRNN_ASSIGN_OR_RETURN(tensor d, t2.contiguous());
    return grads{d};
  }, "transpose");
}

result<var> token_shift(const var& x) {
  LRNN_TRY(check_float(x, "token_shift x"));
  if (x.dim() != 3) return make_error(status_code::invalid_argument, "token_shift: x {} is not [B, T, D]", x.value().describe());
  LRNN_ASSIGN_OR_RETURN(tensor xv, x.value().contiguous());
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(xv.shape(), xv.type()));  // [B, T, D]
  with_float(xv.type(), [&](auto tag) {
    using T_ = decltype(tag);
    const T_* p = xv.data<T_>();
    T_* q = y.data<T_>();
    parallel_blocks(B * T, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
      for (int64_t bt = r0; bt < r1; ++bt) {
        const int64_t t = bt % T;
        for (int64_t i = 0; i < D; ++i) {
          const int64_t at = bt * D + i;
          q[at] = (t > 0 ? p[at - D] : T_(0)) - p[at];
        }
      }
    });
  });
  const dtype dt = xv.type();
  return make_result(y, {x}, [B, T, D, dt](const tensor& g_in) -> result<grads> {
    // dx[t] = g[t + 1] - g[t]
    LRNN_ASSIGN_OR_RETURN(tensor g, g_in.to(dt));
    LRNN_ASSIGN_OR_RETURN(g, g.contiguous());
    LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(g.shape(), dt));
    with_float(dt, [&](auto tag) {
      using T_ = decltype(tag);
      const T_* gp = g.data<T_>();
      T_* d = dx.data<T_>();
      parallel_blocks(B * T, std::max<int64_t>(1, elem_grain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
        for (int64_t bt = r0; bt < r1; ++bt) {
          const int64_t t = bt % T;
          for (int64_t i = 0; i < D; ++i) {
            const int64_t at = bt * D + i;
            d[at] = (t + 1 < T ? gp[at + D] : T_(0)) - gp[at];
          }
        }
      });
    });
    return grads{dx};
  }, "token_shift");
}

result<var> cross_entropy(const var& logits, const tensor& targets, const cross_entropy_options& opt, int64_t* counted_tokens) {
  LRNN_TRY(check_float(logits, "cross_entropy logits"));
  if (logits.dim() < 2 || logits.dim() > 3 || targets.dim() != logits.dim() - 1)
    return make_error(status_code::invalid_argument, "cross_entropy: logits {} with targets {} (expected [N, V] / [N] or [B, T, V] / [B, T])",
                      logits.value().describe(), targets.describe());
  for (int64_t d = 0; d + 1 < logits.dim(); ++d)
    if (targets.size(d) != logits.size(d))
      return make_error(status_code::invalid_argument, "cross_entropy: logits {} do not match targets {}", logits.value().describe(),
                        targets.describe());
  const bool want = grad_enabled() && logits.requires_grad();
  LRNN_ASSIGN_OR_RETURN(auto r, ops::grad::cross_entropy(logits.value(), targets, opt.z_loss, opt.ignore_index, want));
  if (counted_tokens) *counted_tokens = r.counted;
  const dtype dt = logits.type();
  tensor loss = tensor::from_doubles({r.loss}, {1}, dt);
  tensor dl = r.dlogits;
  return make_result(loss, {logits}, [dl, dt](const tensor& g) -> result<grads> {
    LRNN_ASSIGN_OR_RETURN(tensor g64, g.to(dtype::f64));
    const double s = g64.to_doubles()[0];
    // Seed 1 (a plain backward(loss)): dlogits as computed, no scaled copy (x * 1 == x).
    if (s == 1.0 && dl.type() == dt) return grads{dl};
    LRNN_ASSIGN_OR_RETURN(tensor d, scaled_copy(dl, dt, s));
    return grads{d};
  }, "cross_entropy");
}

}  // namespace lrnn::ag
