// AdamW and gradient clipping (optimizer.h).
#include "train/optimizer.h"

#include <cmath>

namespace lrnn::train {

namespace {

template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, double lr, double decay, const adamw_options& o, double bc1, double bc2) {
  const double b1 = o.beta1, b2 = o.beta2, eps = o.eps;
  for (int64_t i = 0; i < n; ++i) {
    double pi = static_cast<double>(p[i]);
    const double gi = static_cast<double>(g[i]);
    pi *= 1.0 - lr * decay;
    const double mi = b1 * static_cast<double>(m[i]) + (1.0 - b1) * gi;
    const double vi = b2 * static_cast<double>(v[i]) + (1.0 - b2) * gi * gi;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    pi -= lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
    p[i] = static_cast<T>(pi);
  }
}

status check_param(const parameter& p) {
  const tensor& t = p.v.value();
  if (!t.is_contiguous() || !t.dev().is_cpu() || (t.type() != dtype::f32 && t.type() != dtype::f64))
    return make_error(status_code::unsupported, "optimizer: parameter '{}' is {}, expected a contiguous f32/f64 CPU tensor", p.name, t.describe());
  return {};
}

}  // namespace

status adamw::step(double lr) {
  auto& ps = *params_;
  if (m_.empty()) {
    for (const parameter& p : ps) {
      LRNN_TRY(check_param(p));
      LRNN_ASSIGN_OR_RETURN(tensor m, tensor::zeros(p.v.shape(), p.v.type()));
      LRNN_ASSIGN_OR_RETURN(tensor v, tensor::zeros(p.v.shape(), p.v.type()));
      m_.push_back(std::move(m));
      v_.push_back(std::move(v));
    }
  }
  if (m_.size() != ps.size())
    return make_error(status_code::internal, "optimizer: {} parameters, state for {}", ps.size(), m_.size());
  ++t_;
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(t_));
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const tensor& g0 = ps[i].v.grad();
    if (!g0.defined()) continue;
    tensor& p = ps[i].v.mutable_value();
    LRNN_ASSIGN_OR_RETURN(tensor g, g0.to(p.type()));
    LRNN_ASSIGN_OR_RETURN(g, g.contiguous());
    if (g.numel() != p.numel())
      return make_error(status_code::internal, "optimizer: gradient of '{}' is {}, parameter {}", ps[i].name, g.describe(), p.describe());
    const double decay = p.dim() >= 2 ? opt_.weight_decay : 0.0;
    if (p.type() == dtype::f32)
      adamw_update(p.data<float>(), g.data<float>(), m_[i].data<float>(), v_[i].data<float>(), p.numel(), lr, decay, opt_, bc1, bc2);
    else
      adamw_update(p.data<double>(), g.data<double>(), m_[i].data<double>(), v_[i].data<double>(), p.numel(), lr, decay, opt_, bc1, bc2);
  }
  return {};
}

void adamw::zero_grad() {
  for (parameter& p : *params_) p.v.zero_grad();
}

io::named_tensors adamw::state() const {
  io::named_tensors out;
  const auto& ps = *params_;
  for (std::size_t i = 0; i < m_.size() && i < ps.size(); ++i) {
    out.emplace_back("adamw.m." + ps[i].name, m_[i]);
    out.emplace_back("adamw.v." + ps[i].name, v_[i]);
  }
  out.emplace_back("adamw.step", tensor::from_vector(std::vector<int64_t>{t_}, {1}, dtype::i64));
  return out;
}

status adamw::load_state(const io::named_tensors& state) {
  auto find = [&](const std::string& name) -> const tensor* {
    for (const auto& [n, t] : state)
      if (n == name) return &t;
    return nullptr;
  };
  const tensor* st = find("adamw.step");
  if (!st || st->numel() != 1) return make_error(status_code::parse_error, "optimizer state: tensor 'adamw.step' is missing");
  const int64_t t = static_cast<int64_t>(st->to_doubles()[0]);
  std::vector<tensor> m, v;
  if (t > 0) {
    for (const parameter& p : *params_) {
      for (const char* kind : {"m", "v"}) {
        const std::string name = std::string("adamw.") + kind + "." + p.name;
        const tensor* s = find(name);
        if (!s) return make_error(status_code::parse_error, "optimizer state: tensor '{}' is missing", name);
        if (s->shape() != p.v.shape())
          return make_error(status_code::parse_error, "optimizer state: '{}' is {}, the parameter is {}", name, shape_to_string(s->shape()),
                            shape_to_string(p.v.shape()));
        LRNN_ASSIGN_OR_RETURN(tensor c, s->to(p.v.type()));
        LRNN_ASSIGN_OR_RETURN(c, c.clone());  // own memory (the source may be a file mapping)
        (kind[0] == 'm' ? m : v).push_back(std::move(c));
      }
    }
  }
  m_ = std::move(m);
  v_ = std::move(v);
  t_ = t;
  return {};
}

result<double> clip_grad_norm(std::vector<parameter>& params, double max_norm) {
  double sq = 0;
  for (const parameter& p : params) {
    const tensor& g = p.v.grad();
    if (!g.defined()) continue;
    LRNN_ASSIGN_OR_RETURN(tensor c, g.contiguous());
    if (c.type() == dtype::f32) {
      const float* d = c.data<float>();
      for (int64_t i = 0; i < c.numel(); ++i) sq += static_cast<double>(d[i]) * d[i];
    } else if (c.type() == dtype::f64) {
      const double* d = c.data<double>();
      for (int64_t i = 0; i < c.numel(); ++i) sq += d[i] * d[i];
    } else {
      return make_error(status_code::unsupported, "clip_grad_norm: gradient of '{}' is {}", p.name, c.describe());
    }
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const double s = max_norm / (norm + 1e-6);
    for (parameter& p : params) {
      if (!p.v.grad().defined()) continue;
      // The gradient may be shared with the graph's buffers: scale a private copy and put it back.
      tensor& g = p.v.impl()->grad;
      LRNN_ASSIGN_OR_RETURN(tensor c, g.clone());
      if (c.type() == dtype::f32) {
        float* d = c.data<float>();
        for (int64_t i = 0; i < c.numel(); ++i) d[i] = static_cast<float>(d[i] * s);
      } else {
        double* d = c.data<double>();
        for (int64_t i = 0; i < c.numel(); ++i) d[i] *= s;
      }
      g = std::move(c);
      p.v.impl()->grad_owned = true;
    }
  }
  return norm;
}

}  // namespace lrnn::train
