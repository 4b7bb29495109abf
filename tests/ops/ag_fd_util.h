// Finite-difference check of ag::var ops in f64 (for the op-family autograd wrappers and the
// trainable models): loss = sum(out * R) with a fixed random R; the analytic gradient of every
// leaf (from ag::backward) against central differences on up to `samples` random elements per
// leaf (all elements when the leaf is smaller). Returns the worst error
// |analytic - numeric| / max(floor, max |numeric| of that leaf's checked elements), so tests
// assert on a number (a floor below 1 makes it relative for leaves with small gradients).
#pragma once

#include "lrnn/autograd.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace lrnn::testing {

inline tensor random_f64(const shape_t& shape, std::mt19937_64& rng, double lo, double hi) {
  tensor t = tensor::empty(shape, dtype::f64).value();
  std::uniform_real_distribution<double> u(lo, hi);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
  return t;
}

struct fd_report {
  double worst = 0;            // worst scaled error over all leaves
  std::string worst_leaf;      // its name
  int64_t checked = 0;         // elements checked
  bool ok = true;              // every evaluation succeeded
  std::string error;
};

// f builds the output from the leaves (they must be f64 requires_grad vars).
inline fd_report fd_check(std::vector<std::pair<std::string, ag::var>>& leaves,
                          const std::function<result<ag::var>()>& f, int64_t samples = 24, double eps = 1e-6,
                          uint64_t seed = 7, double floor = 1.0) {
  fd_report rep;
  for (auto& [n, v] : leaves) v.zero_grad();
  auto out = f();
  if (!out.ok()) {
    rep.ok = false;
    rep.error = out.error().message();
    return rep;
  }
  std::mt19937_64 rng(seed);
  const tensor R = random_f64(out->shape(), rng, -1, 1);
  auto loss_of = [&](const tensor& o) {
    tensor c = o.to(dtype::f64).value().contiguous().value();
    double s = 0;
    for (int64_t i = 0; i < c.numel(); ++i) s += c.data<double>()[i] * R.data<double>()[i];
    return s;
  };
  status st = ag::backward(*out, R);
  if (!st.ok()) {
    rep.ok = false;
    rep.error = st.message();
    return rep;
  }
  for (auto& [name, v] : leaves) {
    tensor& val = v.mutable_value();
    const int64_t n = val.numel();
    std::vector<int64_t> idx(n);
    for (int64_t i = 0; i < n; ++i) idx[i] = i;
    std::shuffle(idx.begin(), idx.end(), rng);
    if (n > samples) idx.resize(samples);
    const tensor g = v.grad().defined() ? v.grad().to(dtype::f64).value().contiguous().value() : tensor();
    std::vector<double> an, nu;
    for (int64_t i : idx) {
      double* p = val.data<double>() + i;
      const double keep = *p;
      ag::no_grad_guard ng;
      *p = keep + eps;
      auto op = f();
      *p = keep - eps;
      auto om = f();
      *p = keep;
      if (!op.ok() || !om.ok()) {
        rep.ok = false;
        rep.error = name + ": " + (!op.ok() ? op.error().message() : om.error().message());
        return rep;
      }
      nu.push_back((loss_of(op->value()) - loss_of(om->value())) / (2 * eps));
      an.push_back(g.defined() ? g.data<double>()[i] : 0.0);
    }
    double scale = floor;
    for (double x : nu) scale = std::max(scale, std::abs(x));
    for (size_t j = 0; j < nu.size(); ++j) {
      const double e = std::abs(an[j] - nu[j]) / scale;
      if (!(e <= rep.worst)) {
        rep.worst = std::isnan(e) ? INFINITY : e;
        rep.worst_leaf = name;
      }
    }
    rep.checked += static_cast<int64_t>(idx.size());
  }
  return rep;
}

}  // namespace lrnn::testing
