// Shared by the delta_rule tests: the harness family (reference + recurrent, chunk) and input
// generators for DeltaNet, Gated DeltaNet (with and without in-kernel q/k L2 norm) and RWKV-7 DPLR.
#pragma once

#include "ops/delta_rule/delta_rule.h"
#include "support/op_harness.h"

#include <cmath>

namespace lrnn::testing::dr {

enum class variant { delta, gated, gated_l2, dplr };

struct params {
  ops::delta_rule_spec spec;
  ops::delta_rule_options options;
};

inline ops::delta_rule_spec spec_of(variant v) {
  ops::delta_rule_spec s;
  switch (v) {
    case variant::delta: s.kind = ops::delta_kind::delta; break;
    case variant::gated: s.kind = ops::delta_kind::gated; break;
    case variant::gated_l2: s.kind = ops::delta_kind::gated, s.qk_l2norm = true; break;
    case variant::dplr: s.kind = ops::delta_kind::dplr, s.scale = 1.0; break;
  }
  return s;
}

inline ops::delta_rule_inputs inputs_of(const named_tensors& in) {
  ops::delta_rule_inputs r;
  auto get = [&](const char* n) {
    const tensor* t = find_tensor(in, n);
    return t ? *t : tensor();
  };
  r.q = get("q"), r.k = get("k"), r.v = get("v"), r.beta = get("beta"), r.g = get("g");
  r.w = get("w"), r.a = get("a"), r.b = get("b"), r.cu_seqlens = get("cu_seqlens");
  return r;
}

inline op_variant make_variant(ops::delta_rule_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::delta_rule_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& a, const named_tensors& in) -> result<named_tensors> {
    const auto& p = std::any_cast<const params&>(a);
    ops::delta_rule_state s0;
    if (const tensor* t = find_tensor(in, "s0")) s0.s = *t;
    LRNN_ASSIGN_OR_RETURN(auto out, ops::delta_rule_forward(p.spec, inputs_of(in), s0, form, p.options));
    return named_tensors{{"o", out.o}, {"s", out.final_state.s}};
  };
  v.backward = [form](const std::any& a, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& p = std::any_cast<const params&>(a);
    ops::delta_rule_state s0, ds;
    if (const tensor* t = find_tensor(in, "s0")) s0.s = *t;
    if (const tensor* t = find_tensor(d, "s")) ds.s = *t;
    LRNN_ASSIGN_OR_RETURN(auto g, ops::delta_rule_backward(p.spec, inputs_of(in), s0, get_tensor(d, "o"), ds, form, p.options));
    named_tensors r;
    auto add = [&](const char* n, const tensor& t) {
      if (t.defined()) r.emplace_back(n, t);
    };
    add("q", g.dq), add("k", g.dk), add("v", g.dv), add("beta", g.dbeta), add("g", g.dg);
    add("w", g.dw), add("a", g.da), add("b", g.db), add("s0", g.d_initial_state.s);
    return r;
  };
  return v;
}

inline op_family family() {
  using F = ops::delta_rule_form;
  op_family f;
  f.name = "delta_rule";
  f.reference = make_variant(F::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {make_variant(F::recurrent, {dtype::f64, dtype::f32, dtype::bf16}),
                make_variant(F::chunk, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16})};
  for (const char* n : {"g", "w", "s0"}) f.policies[n] = input_policy::f32_min;
  f.policies["cu_seqlens"] = input_policy::fixed;
  return f;
}

// Rows of the last dimension scaled to unit norm (keys of a stable delta rule).
inline tensor unit_rows(const tensor& x) {
  auto v = x.to_doubles();
  const int64_t K = x.size(-1);
  for (size_t r = 0; r < v.size() / static_cast<size_t>(K); ++r) {
    double s = 0;
    for (int64_t d = 0; d < K; ++d) s += v[r * K + d] * v[r * K + d];
    for (int64_t d = 0; d < K; ++d) v[r * K + d] /= std::sqrt(s);
  }
  return tensor::from_doubles(v, x.shape(), dtype::f64);
}

inline tensor mul(const tensor& x, const tensor& y) {
  auto a = x.to_doubles(), b = y.to_doubles();
  for (size_t i = 0; i < a.size(); ++i) a[i] *= b[i];
  return tensor::from_doubles(a, x.shape(), dtype::f64);
}
inline tensor neg(const tensor& x) {
  auto a = x.to_doubles();
  for (auto& e : a) e = -e;
  return tensor::from_doubles(a, x.shape(), dtype::f64);
}

// Inputs for N sequences of total B x T tokens. gmax: log decays in [-gmax, 0).
inline void add_inputs(variant v, named_tensors& in, int64_t B, int64_t T, int64_t H, int64_t K, int64_t V, int64_t N,
                       bool init, double gmax, uint64_t s) {
  const shape_t bthk{B, T, H, K};
  if (v == variant::dplr) {
    in.emplace_back("q", random_normal(bthk, s + 1, 0.5));
    in.emplace_back("k", random_normal(bthk, s + 2, 0.3));
    in.emplace_back("v", random_normal({B, T, H, V}, s + 3));
    const tensor kappa = unit_rows(random_normal(bthk, s + 4));
    in.emplace_back("w", random_uniform(bthk, s + 5, -gmax, -1e-3));
    in.emplace_back("a", neg(kappa));
    in.emplace_back("b", mul(kappa, random_uniform(bthk, s + 6, 0.0, 1.0)));
  } else {
    in.emplace_back("q", v == variant::gated_l2 ? random_normal(bthk, s + 1) : unit_rows(random_normal(bthk, s + 1)));
    in.emplace_back("k", v == variant::gated_l2 ? random_normal(bthk, s + 2) : unit_rows(random_normal(bthk, s + 2)));
    in.emplace_back("v", random_normal({B, T, H, V}, s + 3));
    in.emplace_back("beta", random_uniform({B, T, H}, s + 4, 0.05, 1.0));
    if (v != variant::delta) in.emplace_back("g", random_uniform({B, T, H}, s + 5, -gmax, 0.0));
  }
  if (init) in.emplace_back("s0", random_normal({N, H, K, V}, s + 7, 0.5));
}

struct case_opts {
  int64_t B = 1, T = 8, H = 2, K = 8, V = 8;
  bool init = false, fd = false;
  double gmax = 1.0;
  int64_t chunk = 64;
  uint64_t seed = 11;
};

inline op_case make_case(variant v, const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_H{}_K{}_V{}", o.B, o.T, o.H, o.K, o.V);
  c.params = params{spec_of(v), {o.chunk, true}};
  add_inputs(v, c.inputs, o.B, o.T, o.H, o.K, o.V, o.B, o.init, o.gmax, o.seed);
  if (o.fd) {
    for (const auto& [n, t] : c.inputs) c.grad_inputs.push_back(n);
    c.fd_samples = 12;
  }
  c.seed = o.seed * 31 + 5;
  return c;
}

inline op_case varlen_case(variant v, const std::vector<int32_t>& cu) {
  op_case c;
  const int64_t N = static_cast<int64_t>(cu.size()) - 1, T = cu.back(), H = 2, K = 32, V = 24;
  c.name = fmt::format("varlen_N{}_T{}", N, T);
  c.params = params{spec_of(v), {32, true}};
  add_inputs(v, c.inputs, 1, T, H, K, V, N, true, 1.0, 99);
  c.inputs.emplace_back("cu_seqlens", tensor::from_vector(cu, {N + 1}, dtype::i32));
  return c;
}

}  // namespace lrnn::testing::dr
