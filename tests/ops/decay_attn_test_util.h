// Shared by the decay_attn tests: the harness family (reference + recurrent, parallel, chunk)
// and input generators for each spec variant (RetNet, simple GLA, GLA, RWKV-6, mLSTM exp / sig).
#pragma once

#include "ops/decay_attn/decay_attn.h"
#include "support/op_harness.h"

#include <cmath>

namespace lrnn::testing::da {

// `none`: no decay, no gates (plain linear attention).
enum class variant { retnet, simple_gla, gla, rwkv6, mlstm, mlstm_sig, none };

inline const char* variant_name(variant v) {
  switch (v) {
    case variant::retnet: return "retnet";
    case variant::simple_gla: return "simple_gla";
    case variant::gla: return "gla";
    case variant::rwkv6: return "rwkv6";
    case variant::mlstm: return "mlstm";
    case variant::mlstm_sig: return "mlstm_sig";
    case variant::none: return "none";
  }
  return "?";
}

struct params {
  ops::decay_attn_spec spec;
  ops::decay_attn_options options;
};

inline ops::decay_attn_options chunk_options(int64_t chunk) {
  ops::decay_attn_options o;
  o.chunk_size = chunk;
  o.output_final_state = true;
  return o;
}

inline ops::decay_attn_spec spec_of(variant v) {
  ops::decay_attn_spec s;
  switch (v) {
    case variant::none: s.decay = ops::decay_kind::none; break;
    case variant::retnet: s.decay = ops::decay_kind::per_head_const; break;
    case variant::simple_gla: s.decay = ops::decay_kind::per_token_scalar; break;
    case variant::gla: s.decay = ops::decay_kind::per_token_key; break;
    case variant::rwkv6: s.decay = ops::decay_kind::per_token_key, s.bonus = true, s.scale = 1.0; break;
    case variant::mlstm:
      s.decay = ops::decay_kind::per_token_scalar, s.input_gate = ops::input_gate_kind::exponential, s.normalizer = true;
      break;
    case variant::mlstm_sig:
      s.decay = ops::decay_kind::per_token_scalar, s.input_gate = ops::input_gate_kind::sigmoid, s.normalizer = true;
      break;
  }
  return s;
}

inline ops::decay_attn_inputs inputs_of(const named_tensors& in) {
  ops::decay_attn_inputs r;
  auto get = [&](const char* n) {
    const tensor* t = find_tensor(in, n);
    return t ? *t : tensor();
  };
  r.q = get("q"), r.k = get("k"), r.v = get("v"), r.g = get("g"), r.i = get("i"), r.u = get("u");
  r.cu_seqlens = get("cu_seqlens");
  return r;
}

inline ops::decay_attn_state state_of(const named_tensors& in, const char* s, const char* n, const char* m) {
  ops::decay_attn_state st;
  if (const tensor* t = find_tensor(in, s)) st.s = *t;
  if (const tensor* t = find_tensor(in, n)) st.n = *t;
  if (const tensor* t = find_tensor(in, m)) st.m = *t;
  return st;
}

inline op_variant make_variant(ops::decay_attn_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::decay_attn_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& a, const named_tensors& in) -> result<named_tensors> {
    const auto& p = std::any_cast<const params&>(a);
    LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(p.spec, inputs_of(in), state_of(in, "s0", "n0", "m0"), form, p.options));
    named_tensors r{{"o", out.o}, {"s", out.final_state.s}};
    if (out.final_state.n.defined()) r.emplace_back("n", out.final_state.n);
    if (out.final_state.m.defined()) r.emplace_back("m", out.final_state.m);
    return r;
  };
  v.backward = [form](const std::any& a, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& p = std::any_cast<const params&>(a);
    LRNN_ASSIGN_OR_RETURN(auto g, ops::decay_attn_backward(p.spec, inputs_of(in), state_of(in, "s0", "n0", "m0"),
                                                           get_tensor(d, "o"), state_of(d, "s", "n", "m"), form, p.options));
    named_tensors r{{"q", g.dq}, {"k", g.dk}, {"v", g.dv}};
    auto add = [&](const char* n, const tensor& t) {
      if (t.defined()) r.emplace_back(n, t);
    };
    add("g", g.dg), add("i", g.di), add("u", g.du);
    add("s0", g.d_initial_state.s), add("n0", g.d_initial_state.n), add("m0", g.d_initial_state.m);
    return r;
  };
  return v;
}

// with_parallel: the O(T^2 K) parallel form joins (short sequences only).
inline op_family family(variant v, bool with_parallel = true) {
  (void)v;
  using F = ops::decay_attn_form;
  op_family f;
  f.name = "decay_attn";
  f.reference = make_variant(F::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {make_variant(F::recurrent, {dtype::f64, dtype::f32, dtype::bf16}),
                make_variant(F::chunk, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16})};
  if (with_parallel) f.variants.push_back(make_variant(F::parallel, {dtype::f64, dtype::f32}));
  for (const char* n : {"g", "i", "u", "s0", "n0", "m0"}) f.policies[n] = input_policy::f32_min;
  f.policies["cu_seqlens"] = input_policy::fixed;
  return f;
}

struct case_opts {
  int64_t B = 1, T = 8, H = 2, K = 8, V = 8;
  bool init = false, fd = false;
  double gmax = 1.0;  // log-gate magnitude: per-token gates in [-gmax, 0)
  int64_t chunk = 64;
  uint64_t seed = 7;
};

inline tensor logsigmoid(const tensor& x) {
  auto v = x.to_doubles();
  for (auto& e : v) e = e > 0 ? -std::log1p(std::exp(-e)) : e - std::log1p(std::exp(e));
  return tensor::from_doubles(v, x.shape(), dtype::f64);
}
inline tensor scaled(const tensor& x, double s) {
  auto v = x.to_doubles();
  for (auto& e : v) e *= s;
  return tensor::from_doubles(v, x.shape(), dtype::f64);
}

// Inputs for N sequences of total length `tokens` (B x T or packed).
inline void add_inputs(variant v, named_tensors& in, int64_t B, int64_t T, int64_t H, int64_t K, int64_t V, int64_t N,
                       bool init, double gmax, uint64_t s) {
  in.emplace_back("q", random_normal({B, T, H, K}, s + 1));
  in.emplace_back("k", random_normal({B, T, H, K}, s + 2));
  in.emplace_back("v", random_normal({B, T, H, V}, s + 3));
  switch (v) {
    case variant::none: break;
    case variant::retnet: {
      std::vector<double> a(H);
      for (int64_t h = 0; h < H; ++h) a[h] = std::log(1.0 - std::pow(2.0, -5.0 - static_cast<double>(h)));
      in.emplace_back("g", tensor::from_doubles(a, {H}, dtype::f64));
      break;
    }
    case variant::simple_gla: in.emplace_back("g", random_uniform({B, T, H}, s + 4, -gmax, 0.0)); break;
    case variant::gla: in.emplace_back("g", random_uniform({B, T, H, K}, s + 4, -gmax, 0.0)); break;
    case variant::rwkv6:
      in.emplace_back("g", random_uniform({B, T, H, K}, s + 4, -gmax, 0.0));
      in.emplace_back("u", random_normal({H, K}, s + 5, 0.5));
      break;
    case variant::mlstm:
      in.emplace_back("g", gmax > 5 ? random_uniform({B, T, H}, s + 4, -gmax, 0.0) : logsigmoid(random_normal({B, T, H}, s + 4, 1.0, 2.0)));
      in.emplace_back("i", random_normal({B, T, H}, s + 5, 2.0));
      break;
    case variant::mlstm_sig:
      in.emplace_back("g", gmax > 5 ? random_uniform({B, T, H}, s + 4, -gmax, 0.0) : logsigmoid(random_normal({B, T, H}, s + 4, 1.0, 2.0)));
      in.emplace_back("i", logsigmoid(random_normal({B, T, H}, s + 5)));
      break;
  }
  if (init) {
    in.emplace_back("s0", random_normal({N, H, K, V}, s + 6, 0.5));
    if (v == variant::mlstm || v == variant::mlstm_sig) in.emplace_back("n0", random_normal({N, H, K}, s + 7, 0.5));
    if (v == variant::mlstm) in.emplace_back("m0", random_normal({N, H}, s + 8));
  }
}

inline std::vector<std::string> all_grad_inputs(const named_tensors& in) {
  std::vector<std::string> r;
  for (const auto& [n, t] : in)
    if (n != "cu_seqlens") r.push_back(n);
  return r;
}

inline op_case make_case(variant v, const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_H{}_K{}_V{}", o.B, o.T, o.H, o.K, o.V);
  c.params = params{spec_of(v), chunk_options(o.chunk)};
  add_inputs(v, c.inputs, o.B, o.T, o.H, o.K, o.V, o.B, o.init, o.gmax, o.seed);
  if (o.fd) {
    c.grad_inputs = all_grad_inputs(c.inputs);
    c.fd_samples = 12;
  }
  c.seed = o.seed * 31 + 5;
  return c;
}

inline op_case varlen_case(variant v, const std::vector<int32_t>& cu, int64_t K = 32, int64_t V = 24) {
  op_case c;
  const int64_t N = static_cast<int64_t>(cu.size()) - 1, T = cu.back(), H = 2;
  c.name = fmt::format("varlen_N{}_T{}", N, T);
  c.params = params{spec_of(v), chunk_options(32)};
  add_inputs(v, c.inputs, 1, T, H, K, V, N, true, 1.0, 99);
  c.inputs.emplace_back("cu_seqlens", tensor::from_vector(cu, {N + 1}, dtype::i32));
  return c;
}

}  // namespace lrnn::testing::da
