// Shared by the local_attn tests: the harness family (reference + parallel) and input generators
// (MQA / GQA heads, RoPE kinds, document resets through positions, a wrapped ring-buffer cache).
#pragma once

#include "ops/local_attn/local_attn.h"
#include "support/op_harness.h"

namespace lrnn::testing::la {

inline ops::local_attn_inputs inputs_of(const named_tensors& in) {
  ops::local_attn_inputs r;
  auto get = [&](const char* n) {
    const tensor* t = find_tensor(in, n);
    return t ? *t : tensor();
  };
  r.q = get("q"), r.k = get("k"), r.v = get("v"), r.positions = get("positions"), r.cu_seqlens = get("cu_seqlens");
  return r;
}

inline ops::local_attn_state state_of(const named_tensors& in, const char* k, const char* v, const char* c, const char* s) {
  ops::local_attn_state st;
  if (const tensor* t = find_tensor(in, k)) st.k_cache = *t;
  if (const tensor* t = find_tensor(in, v)) st.v_cache = *t;
  if (const tensor* t = find_tensor(in, c)) st.count = *t;
  if (const tensor* t = find_tensor(in, s)) st.start = *t;
  return st;
}

inline op_variant make_variant(ops::local_attn_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::local_attn_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& a, const named_tensors& in) -> result<named_tensors> {
    const auto& spec = std::any_cast<const ops::local_attn_spec&>(a);
    LRNN_ASSIGN_OR_RETURN(auto out, ops::local_attn_forward(spec, inputs_of(in), state_of(in, "k_cache0", "v_cache0", "count0", "start0"), form));
    return named_tensors{{"o", out.o},
                         {"k_cache", out.final_state.k_cache},
                         {"v_cache", out.final_state.v_cache},
                         {"count", out.final_state.count},
                         {"start", out.final_state.start}};
  };
  v.backward = [form](const std::any& a, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& spec = std::any_cast<const ops::local_attn_spec&>(a);
    LRNN_ASSIGN_OR_RETURN(auto g, ops::local_attn_backward(spec, inputs_of(in), state_of(in, "k_cache0", "v_cache0", "count0", "start0"),
                                                           get_tensor(d, "o"), state_of(d, "k_cache", "v_cache", "", ""), form));
    named_tensors r{{"q", g.dq}, {"k", g.dk}, {"v", g.dv}};
    if (g.d_initial_state.k_cache.defined()) {
      r.emplace_back("k_cache0", g.d_initial_state.k_cache);
      r.emplace_back("v_cache0", g.d_initial_state.v_cache);
    }
    return r;
  };
  return v;
}

inline op_family family() {
  using F = ops::local_attn_form;
  op_family f;
  f.name = "local_attn";
  f.reference = make_variant(F::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {make_variant(F::parallel, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16})};
  for (const char* n : {"positions", "cu_seqlens", "count0", "start0"}) f.policies[n] = input_policy::fixed;
  return f;
}

struct case_opts {
  int64_t B = 1, T = 8, Hq = 2, Hkv = 1, D = 8, Dv = 8, W = 4;
  ops::rope_kind rope = ops::rope_kind::half;
  double fraction = 0.5;
  int64_t cache_count = -1;  // >= 0: an initial cache that has seen this many tokens (start 1)
  bool resets = false;       // positions restart at 0 inside the sequence
  bool fd = false;
  uint64_t seed = 5;
};

inline ops::local_attn_spec spec_of(const case_opts& o) {
  ops::local_attn_spec s;
  s.window = o.W, s.rope = o.rope, s.rotary_fraction = o.fraction;
  return s;
}

inline op_case make_case(const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_Hq{}_Hkv{}_D{}_W{}", o.B, o.T, o.Hq, o.Hkv, o.D, o.W);
  c.params = spec_of(o);
  c.inputs.emplace_back("q", random_normal({o.B, o.T, o.Hq, o.D}, o.seed + 1));
  c.inputs.emplace_back("k", random_normal({o.B, o.T, o.Hkv, o.D}, o.seed + 2));
  c.inputs.emplace_back("v", random_normal({o.B, o.T, o.Hkv, o.Dv}, o.seed + 3));
  const int64_t c0 = std::max<int64_t>(o.cache_count, 0);
  std::vector<int32_t> pos(o.B * o.T);
  for (int64_t b = 0; b < o.B; ++b)
    for (int64_t t = 0; t < o.T; ++t) pos[b * o.T + t] = static_cast<int32_t>(o.resets ? (t + 3 * b) % 7 : c0 + t);
  c.inputs.emplace_back("positions", tensor::from_vector(pos, {o.B, o.T}, dtype::i32));
  if (o.cache_count >= 0) {
    c.inputs.emplace_back("k_cache0", random_normal({o.B, o.W, o.Hkv, o.D}, o.seed + 4));
    c.inputs.emplace_back("v_cache0", random_normal({o.B, o.W, o.Hkv, o.Dv}, o.seed + 5));
    c.inputs.emplace_back("count0", tensor::from_vector(std::vector<int64_t>(o.B, o.cache_count), {o.B}, dtype::i64));
    c.inputs.emplace_back("start0", tensor::from_vector(std::vector<int64_t>(o.B, o.cache_count > 0 ? 1 : 0), {o.B}, dtype::i64));
  }
  if (o.fd) {
    for (const char* n : {"q", "k", "v", "k_cache0", "v_cache0"})
      if (find_tensor(c.inputs, n)) c.grad_inputs.push_back(n);
    c.fd_samples = 16;
  }
  c.seed = o.seed * 17 + 3;
  return c;
}

}  // namespace lrnn::testing::la
