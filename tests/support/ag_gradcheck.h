// Gradient check for autograd ops and models: L = sum(R * f(inputs)) with a fixed random R
// (a random linear functional of the output); the autograd gradient of L with respect to every
// input that requires one is compared with f64 central finite differences
//   (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)
// on all elements (or a random sample of `samples` per input). An element passes when
// |analytic - fd| <= atol + rtol * max(|analytic|, |fd|). Inputs must be f64. Optionally with
// Richardson extrapolation (see the option).
//
//   auto rep = lrnn::testing::ag_gradcheck([](const std::vector<ag::var>& in) { return ag::mul(in[0], in[1]); },
//                                          {a, b});
//   EXPECT_TRUE(rep.pass) << rep.summary;
#pragma once

#include "lrnn/autograd.h"
#include "support/op_harness.h"

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace lrnn::testing {

using ag_function = std::function<result<ag::var>(const std::vector<ag::var>& inputs)>;

struct ag_gradcheck_options {
  double eps = 1e-6;
  double rtol = 1e-6;
  double atol = 1e-9;
  int samples = -1;                 // elements checked per input; -1: all
  std::vector<bool> requires_grad;  // per input; empty: every input
  std::vector<std::string> names;   // per input, for the report; empty: "input i"
  uint64_t seed = 77;
  // Richardson extrapolation (4 D(eps/2) - D(eps)) / 3 of the central difference D: error
  // O(eps^4) instead of O(eps^2), for strongly nonlinear functions (whole models).
  bool richardson = false;
};

struct ag_gradcheck_report {
  bool pass = true;
  double max_rel_err = 0;    // max over checked elements of |a - fd| / max(|a|, |fd|, atol / rtol)
  int64_t checked = 0;
  std::string summary;       // one line per input, plus the failing elements (first few)
};

// Sum of w * y over elements (both f64-convertible, same shape).
inline double ag_dot(const tensor& y, const tensor& w) {
  const auto a = y.to_doubles(), b = w.to_doubles();
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks the autograd gradient `an` of one input (or leaf) against central differences at
// sampled elements (all of them when opt.samples < 0 or >= n) and appends to `rep`.
// central(j, e): (loss(x_j + e) - loss(x_j - e)) / (2 e) with every other element unchanged.
inline void ag_check_elements(ag_gradcheck_report& rep, const std::string& label, const shape_t& shape,
                              const std::vector<double>& an, const std::function<double(int64_t, double)>& central,
                              std::mt19937_64& rng, const ag_gradcheck_options& opt) {
  const int64_t n = static_cast<int64_t>(an.size());
  std::vector<int64_t> elems;
  if (opt.samples < 0 || opt.samples >= n) {
    for (int64_t j = 0; j < n; ++j) elems.push_back(j);
  } else {
    for (int k = 0; k < opt.samples; ++k) elems.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(n)));
  }
  double worst = 0;
  int fails = 0;
  std::string fail_lines;
  for (int64_t j : elems) {
    const double fd = opt.richardson ? (4 * central(j, opt.eps / 2) - central(j, opt.eps)) / 3 : central(j, opt.eps);
    const double a = an[static_cast<size_t>(j)];
    const double diff = std::fabs(a - fd);
    const double rel = diff / std::max({std::fabs(a), std::fabs(fd), opt.atol / opt.rtol});
    worst = std::max(worst, std::isnan(rel) ? INFINITY : rel);
    ++rep.checked;
    if (!(diff <= opt.atol + opt.rtol * std::max(std::fabs(a), std::fabs(fd)))) {
      if (++fails <= 5) fail_lines += fmt::format("    element {}: autograd {:.10g}, finite difference {:.10g}\n", j, a, fd);
    }
  }
  rep.max_rel_err = std::max(rep.max_rel_err, worst);
  rep.summary += fmt::format("{} {}: {} elements, max rel err {:.3g}{}\n", label, shape_to_string(shape), elems.size(), worst,
                             fails ? fmt::format(", {} FAIL", fails) : "");
  rep.summary += fail_lines;
  if (fails) rep.pass = false;
}

inline ag_gradcheck_report ag_gradcheck(const ag_function& f, const std::vector<tensor>& inputs,
                                        const ag_gradcheck_options& opt = {}) {
  ag_gradcheck_report rep;
  auto needs = [&](size_t i) { return opt.requires_grad.empty() || opt.requires_grad[i]; };
  auto name = [&](size_t i) { return i < opt.names.size() ? opt.names[i] : fmt::format("input {}", i); };
  std::vector<ag::var> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.emplace_back(inputs[i], needs(i) && inputs[i].defined());
  auto out = f(vars);
  if (!out.ok()) {
    rep.pass = false;
    rep.summary = "forward failed: " + out.error().message();
    return rep;
  }
  const tensor R = random_normal(out->shape(), opt.seed);  // [out shape] f64
  tensor seed = R.to(out->type()).value();
  status s = ag::backward(*out, seed);
  if (!s.ok()) {
    rep.pass = false;
    rep.summary = "backward failed: " + s.message();
    return rep;
  }
  auto loss_at = [&](size_t which, int64_t elem, double delta) -> double {
    std::vector<ag::var> in;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (i != which) {
        in.emplace_back(inputs[i], false);
        continue;
      }
      tensor c = inputs[i].clone().value();
      double* p = c.data<double>();
      p[elem] += delta;
      in.emplace_back(c, false);
    }
    ag::no_grad_guard ng;
    auto y = f(in);
    if (!y.ok()) return NAN;
    return ag_dot(y->value(), R);
  };
  std::mt19937_64 rng(opt.seed + 1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!needs(i) || !inputs[i].defined()) continue;
    if (inputs[i].type() != dtype::f64 || !inputs[i].is_contiguous()) {
      rep.pass = false;
      rep.summary += fmt::format("{}: gradcheck inputs must be contiguous f64, got {}\n", name(i), inputs[i].describe());
      continue;
    }
    const tensor& g = vars[i].grad();
    std::vector<double> an(static_cast<size_t>(inputs[i].numel()), 0.0);
    if (g.defined()) an = g.to_doubles();
    ag_check_elements(rep, name(i), inputs[i].shape(), an,
                      [&](int64_t j, double e) { return (loss_at(i, j, e) - loss_at(i, j, -e)) / (2 * e); }, rng, opt);
  }
  return rep;
}

// The same check for leaves held elsewhere (a model's parameters): `loss` recomputes a
// one-element loss from the current values of `leaves` (requires_grad f64 vars whose values
// are perturbed in place and restored). Gradients are computed here (leaves zeroed first).
inline ag_gradcheck_report ag_gradcheck_leaves(const std::function<result<ag::var>()>& loss,
                                               std::vector<std::pair<std::string, ag::var>> leaves,
                                               const ag_gradcheck_options& opt = {}) {
  ag_gradcheck_report rep;
  for (auto& [n, v] : leaves) v.zero_grad();
  auto out = loss();
  if (!out.ok()) {
    rep.pass = false;
    rep.summary = "forward failed: " + out.error().message();
    return rep;
  }
  if (status s = ag::backward(*out); !s.ok()) {
    rep.pass = false;
    rep.summary = "backward failed: " + s.message();
    return rep;
  }
  auto eval = [&]() -> double {
    ag::no_grad_guard ng;
    auto y = loss();
    return y.ok() ? y->value().to_doubles()[0] : NAN;
  };
  std::mt19937_64 rng(opt.seed + 1);
  for (auto& [leaf_name, v] : leaves) {
    tensor& val = v.mutable_value();
    if (val.type() != dtype::f64 || !val.is_contiguous()) {
      rep.pass = false;
      rep.summary += fmt::format("{}: gradcheck leaves must be contiguous f64, got {}\n", leaf_name, val.describe());
      continue;
    }
    const int64_t n = val.numel();
    std::vector<double> an(static_cast<size_t>(n), 0.0);
    if (v.grad().defined()) an = v.grad().to_doubles();
    double* p = val.data<double>();
    ag_check_elements(rep, leaf_name, val.shape(), an, [&](int64_t j, double e) {
      const double keep = p[j];
      p[j] = keep + e;
      const double up = eval();
      p[j] = keep - e;
      const double down = eval();
      p[j] = keep;
      return (up - down) / (2 * e);
    }, rng, opt);
  }
  return rep;
}

// f32 against f64: runs f on the inputs converted to f32 and as given (f64), seeds both
// backward passes with the same random R and returns the largest of
// max|y32 - y64| / max(max|y64|, 1) and the same for every input gradient.
inline result<double> ag_f32_vs_f64(const ag_function& f, const std::vector<tensor>& inputs,
                                    const std::vector<bool>& requires_grad = {}, uint64_t seed = 78) {
  auto needs = [&](size_t i) { return (requires_grad.empty() || requires_grad[i]) && inputs[i].defined(); };
  auto run = [&](dtype dt) -> result<std::pair<tensor, std::vector<tensor>>> {
    std::vector<ag::var> vars;
    for (size_t i = 0; i < inputs.size(); ++i) {
      tensor t = inputs[i];
      if (t.defined() && is_floating(t.type())) {
        LRNN_ASSIGN_OR_RETURN(t, t.to(dt));
      }
      vars.emplace_back(t, needs(i));
    }
    LRNN_ASSIGN_OR_RETURN(ag::var y, f(vars));
    LRNN_ASSIGN_OR_RETURN(tensor R, random_normal(y.shape(), seed).to(y.type()));
    LRNN_TRY(ag::backward(y, R));
    std::vector<tensor> gs;
    for (size_t i = 0; i < inputs.size(); ++i) gs.push_back(needs(i) ? vars[i].grad() : tensor());
    return std::make_pair(y.value(), gs);
  };
  LRNN_ASSIGN_OR_RETURN(auto lo, run(dtype::f32));
  LRNN_ASSIGN_OR_RETURN(auto hi, run(dtype::f64));
  auto rel = [](const tensor& a, const tensor& b) {
    double m = 1;
    for (double v : b.to_doubles()) m = std::max(m, std::fabs(v));
    return max_abs_diff(a, b) / m;
  };
  double worst = rel(lo.first, hi.first);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!needs(i)) continue;
    if (!lo.second[i].defined() || !hi.second[i].defined()) {
      if (lo.second[i].defined() != hi.second[i].defined()) return INFINITY;
      continue;
    }
    worst = std::max(worst, rel(lo.second[i], hi.second[i]));
  }
  return worst;
}

}  // namespace lrnn::testing
