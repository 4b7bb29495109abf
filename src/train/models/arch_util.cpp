#include "train/models/arch_util.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

namespace lrnn::train::arch {

result<ag::var> param_builder::get(const std::string& name, const shape_t& shape, const param_init& init, const std::string& why) {
  LRNN_ASSIGN_OR_RETURN(tensor t, src_.get(name, shape, init, why));
  ag::var v(std::move(t), true);
  params_.push_back({name, v});
  return v;
}

param_init orthogonal_init(double gain, const std::string& seed_name) {
  return param_init::custom([gain, seed_name](tensor& t) {
    const int64_t rows = t.size(0), cols = t.numel() / std::max<int64_t>(rows, 1);
    // Orthonormalise the rows (rows <= cols) or the columns (rows > cols) of a Gaussian matrix.
    const bool by_rows = rows <= cols;
    const int64_t n = by_rows ? rows : cols, len = by_rows ? cols : rows;
    std::mt19937_64 rng(std::hash<std::string>{}(seed_name));
    std::normal_distribution<double> nd(0.0, 1.0);
    std::vector<double> m(static_cast<size_t>(n * len));
    for (double& x : m) x = nd(rng);
    for (int64_t i = 0; i < n; ++i) {
      double* vi = m.data() + i * len;
      for (int pass = 0; pass < 2; ++pass)
        for (int64_t j = 0; j < i; ++j) {
          const double* vj = m.data() + j * len;
          double d = 0;
          for (int64_t e = 0; e < len; ++e) d += vi[e] * vj[e];
          for (int64_t e = 0; e < len; ++e) vi[e] -= d * vj[e];
        }
      double nn = 0;
      for (int64_t e = 0; e < len; ++e) nn += vi[e] * vi[e];
      nn = std::sqrt(std::max(nn, 1e-300));
      for (int64_t e = 0; e < len; ++e) vi[e] /= nn;
    }
    float* p = t.data<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        p[r * cols + c] = static_cast<float>(gain * (by_rows ? m[r * len + c] : m[c * len + r]));
  });
}

namespace {

status float_check(const char* op, std::initializer_list<const ag::var*> xs) {
  dtype t = (*xs.begin())->type();
  for (const ag::var* x : xs) {
    if (!x->defined()) return make_error(status_code::invalid_argument, "{}: an input is undefined", op);
    if (x->type() != t || (t != dtype::f32 && t != dtype::f64))
      return make_error(status_code::invalid_argument, "{}: inputs must share one dtype, f32 or f64", op);
    if (!x->value().dev().is_cpu()) return make_error(status_code::unsupported, "{}: CPU tensors only", op);
  }
  return {};
}

result<tensor> cont(const tensor& t) { return t.contiguous(); }

template <typename T>
result<ag::var> l2n_impl(const ag::var& xv, int64_t D) {
  LRNN_ASSIGN_OR_RETURN(tensor x, cont(xv.value()));
  const int64_t rows = x.numel() / D;
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));
  std::vector<T> nrm(static_cast<size_t>(rows));
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xp[r * D + i]) * xp[r * D + i];
    const double n = std::sqrt(ss);
    nrm[r] = static_cast<T>(n);
    const double inv = 1.0 / std::max(n, 1e-12);
    for (int64_t i = 0; i < D; ++i) yp[r * D + i] = static_cast<T>(xp[r * D + i] * inv);
  }
  return ag::make_result(y, {xv}, [y, nrm, D, rows](const tensor& g) -> result<std::vector<tensor>> {
    LRNN_ASSIGN_OR_RETURN(tensor gc, cont(g));
    LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::empty(y.shape(), y.type()));
    const T *gp = gc.data<T>(), *yp2 = y.data<T>();
    T* dp = dx.data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const double n = nrm[r];
      if (n > 1e-12) {
        double dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += static_cast<double>(yp2[r * D + i]) * gp[r * D + i];
        for (int64_t i = 0; i < D; ++i) dp[r * D + i] = static_cast<T>((gp[r * D + i] - yp2[r * D + i] * dot) / n);
      } else {
        for (int64_t i = 0; i < D; ++i) dp[r * D + i] = static_cast<T>(gp[r * D + i] / 1e-12);
      }
    }
    return std::vector<tensor>{dx};
  }, "l2_normalize_groups");
}

template <typename T>
result<ag::var> bonus_impl(const ag::var& rv, const ag::var& kv, const ag::var& rkv, const ag::var& vv) {
  const int64_t H = rkv.size(0), K = rkv.size(1), HK = H * K;
  const int64_t rows = rv.value().numel() / HK, V = vv.value().numel() / (rows * H);
  LRNN_ASSIGN_OR_RETURN(tensor r, cont(rv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor k, cont(kv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor rk, cont(rkv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor v, cont(vv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(v.shape(), v.type()));
  std::vector<T> s(static_cast<size_t>(rows * H));
  {
    const T *rp = r.data<T>(), *kp = k.data<T>(), *rkp = rk.data<T>(), *vp = v.data<T>();
    T* op = out.data<T>();
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t h = 0; h < H; ++h) {
        T acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += rp[n * HK + h * K + i] * kp[n * HK + h * K + i] * rkp[h * K + i];
        s[n * H + h] = acc;
        for (int64_t j = 0; j < V; ++j) op[(n * H + h) * V + j] = acc * vp[(n * H + h) * V + j];
      }
  }
  return ag::make_result(out, {rv, kv, rkv, vv}, [r, k, rk, v, s, rows, H, K, V](const tensor& g) -> result<std::vector<tensor>> {
    const int64_t HK = H * K;
    LRNN_ASSIGN_OR_RETURN(tensor gc, cont(g));
    LRNN_ASSIGN_OR_RETURN(tensor dr, tensor::empty(r.shape(), r.type()));
    LRNN_ASSIGN_OR_RETURN(tensor dk, tensor::empty(k.shape(), k.type()));
    LRNN_ASSIGN_OR_RETURN(tensor drk, tensor::zeros(rk.shape(), rk.type()));
    LRNN_ASSIGN_OR_RETURN(tensor dv, tensor::empty(v.shape(), v.type()));
    const T *rp = r.data<T>(), *kp = k.data<T>(), *rkp = rk.data<T>(), *vp = v.data<T>(), *gp = gc.data<T>();
    T *drp = dr.data<T>(), *dkp = dk.data<T>(), *drkp = drk.data<T>(), *dvp = dv.data<T>();
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = (n * H + h) * V;
        T ds = 0;
        for (int64_t j = 0; j < V; ++j) {
          ds += gp[o + j] * vp[o + j];
          dvp[o + j] = s[n * H + h] * gp[o + j];
        }
        for (int64_t i = 0; i < K; ++i) {
          const int64_t at = n * HK + h * K + i;
          drp[at] = ds * kp[at] * rkp[h * K + i];
          dkp[at] = ds * rp[at] * rkp[h * K + i];
          drkp[h * K + i] += ds * rp[at] * kp[at];
        }
      }
    return std::vector<tensor>{dr, dk, drk, dv};
  }, "rwkv7_bonus");
}

template <typename T>
result<ag::var> bdl_impl(const ag::var& xv, const ag::var& wv, const ag::var& bv) {
  const int64_t H = wv.size(0), W = wv.size(1), rows = xv.value().numel() / (H * W);
  LRNN_ASSIGN_OR_RETURN(tensor x, cont(xv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor w, cont(wv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor b, cont(bv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(x.shape(), x.type()));
  {
    const T *xp = x.data<T>(), *wp = w.data<T>(), *bp = b.data<T>();
    T* op = out.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < H; ++h) {
        const T* xr = xp + (r * H + h) * W;
        T* o = op + (r * H + h) * W;
        for (int64_t j = 0; j < W; ++j) o[j] = bp[h * W + j];
        for (int64_t i = 0; i < W; ++i)
          for (int64_t j = 0; j < W; ++j) o[j] += xr[i] * wp[(h * W + i) * W + j];
      }
  }
  return ag::make_result(out, {xv, wv, bv}, [x, w, b, rows, H, W](const tensor& g) -> result<std::vector<tensor>> {
    LRNN_ASSIGN_OR_RETURN(tensor gc, cont(g));
    LRNN_ASSIGN_OR_RETURN(tensor dx, tensor::zeros(x.shape(), x.type()));
    LRNN_ASSIGN_OR_RETURN(tensor dw, tensor::zeros(w.shape(), w.type()));
    LRNN_ASSIGN_OR_RETURN(tensor db, tensor::zeros(b.shape(), b.type()));
    const T *xp = x.data<T>(), *wp = w.data<T>(), *gp = gc.data<T>();
    T *dxp = dx.data<T>(), *dwp = dw.data<T>(), *dbp = db.data<T>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t o = (r * H + h) * W;
        for (int64_t j = 0; j < W; ++j) dbp[h * W + j] += gp[o + j];
        for (int64_t i = 0; i < W; ++i) {
          T acc = 0;
          for (int64_t j = 0; j < W; ++j) {
            acc += gp[o + j] * wp[(h * W + i) * W + j];
            dwp[(h * W + i) * W + j] += xp[o + i] * gp[o + j];
          }
          dxp[o + i] = acc;
        }
      }
    return std::vector<tensor>{dx, dw, db};
  }, "block_diag_linear");
}

template <typename T>
result<ag::var> addc_impl(const ag::var& xv, double c) {
  LRNN_ASSIGN_OR_RETURN(tensor x, cont(xv.value()));
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));
  for (int64_t i = 0; i < x.numel(); ++i) y.data<T>()[i] = static_cast<T>(x.data<T>()[i] + c);
  return ag::make_result(y, {xv}, [](const tensor& g) -> result<std::vector<tensor>> { return std::vector<tensor>{g}; }, "add_constant");
}

}  // namespace

result<ag::var> l2_normalize_groups(const ag::var& x, int64_t D) {
  LRNN_TRY(float_check("l2_normalize_groups", {&x}));
  if (D < 1 || x.size(x.dim() - 1) % D)
    return make_error(status_code::invalid_argument, "l2_normalize_groups: last dim {} is not a multiple of {}", x.size(x.dim() - 1), D);
  return x.type() == dtype::f64 ? l2n_impl<double>(x, D) : l2n_impl<float>(x, D);
}

result<ag::var> rwkv7_bonus(const ag::var& r, const ag::var& k, const ag::var& r_k, const ag::var& v) {
  LRNN_TRY(float_check("rwkv7_bonus", {&r, &k, &r_k, &v}));
  if (r.shape() != k.shape() || r_k.dim() != 2 || r.size(r.dim() - 1) != r_k.size(0) * r_k.size(1) ||
      v.value().numel() % (r.value().numel() / r_k.size(1)) != 0)
    return make_error(status_code::invalid_argument, "rwkv7_bonus: shapes r {} k {} r_k {} v {} disagree", shape_to_string(r.shape()),
                      shape_to_string(k.shape()), shape_to_string(r_k.shape()), shape_to_string(v.shape()));
  return r.type() == dtype::f64 ? bonus_impl<double>(r, k, r_k, v) : bonus_impl<float>(r, k, r_k, v);
}

result<ag::var> block_diag_linear(const ag::var& x, const ag::var& w, const ag::var& b) {
  LRNN_TRY(float_check("block_diag_linear", {&x, &w, &b}));
  if (w.dim() != 3 || w.size(1) != w.size(2) || b.shape() != shape_t{w.size(0), w.size(1)} ||
      x.size(x.dim() - 1) != w.size(0) * w.size(1))
    return make_error(status_code::invalid_argument, "block_diag_linear: shapes x {} w {} b {} disagree", shape_to_string(x.shape()),
                      shape_to_string(w.shape()), shape_to_string(b.shape()));
  return x.type() == dtype::f64 ? bdl_impl<double>(x, w, b) : bdl_impl<float>(x, w, b);
}

result<ag::var> add_constant(const ag::var& x, double c) {
  LRNN_TRY(float_check("add_constant", {&x}));
  return x.type() == dtype::f64 ? addc_impl<double>(x, c) : addc_impl<float>(x, c);
}

}  // namespace lrnn::train::arch
