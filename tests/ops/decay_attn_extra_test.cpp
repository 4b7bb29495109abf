// decay_attn plain tests: splitting a sequence and carrying the state equals one pass (bit-exact
// for the recurrent form), packed variable-length batches equal separate sequences, the decode
// step equals the recurrent form, very strong gates stay finite, and bad shapes are named.
#include "ops/decay_attn_test_util.h"

namespace lrnn::testing {
namespace {

using namespace lrnn::ops;

decay_attn_inputs f32_inputs(da::variant v, int64_t T, int64_t H, int64_t K, int64_t V, double gmax = 1.0) {
  named_tensors in;
  da::add_inputs(v, in, 1, T, H, K, V, 1, false, gmax, 3);
  for (auto& [n, t] : in) t = t.to(dtype::f32).value();
  return da::inputs_of(in);
}

tensor slice_t(const tensor& t, int64_t a, int64_t b) { return t.slice(1, a, b).value().contiguous().value(); }

decay_attn_inputs slice_inputs(const decay_attn_spec& spec, const decay_attn_inputs& in, int64_t a, int64_t b) {
  decay_attn_inputs r = in;
  r.q = slice_t(in.q, a, b), r.k = slice_t(in.k, a, b), r.v = slice_t(in.v, a, b);
  if (spec.decay == decay_kind::per_token_key || spec.decay == decay_kind::per_token_scalar) r.g = slice_t(in.g, a, b);
  if (in.i.defined()) r.i = slice_t(in.i, a, b);
  return r;
}

void check_split(da::variant v, decay_attn_form form, double tol) {
  const decay_attn_spec spec = da::spec_of(v);
  const int64_t T = 150;
  const auto in = f32_inputs(v, T, 2, 32, 24);
  auto whole = decay_attn_forward(spec, in, {}, form);
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  decay_attn_state st;
  std::vector<double> o;
  const std::vector<int64_t> cuts{0, 1, 37, 64, 65, 129, T};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    auto part = decay_attn_forward(spec, slice_inputs(spec, in, cuts[c], cuts[c + 1]), st, form);
    ASSERT_TRUE(part.ok()) << part.error().message();
    const auto po = part->o.to_doubles();
    o.insert(o.end(), po.begin(), po.end());
    st = part->final_state;
  }
  const auto wo = whole->o.to_doubles();
  double err = 0;
  for (size_t i = 0; i < wo.size(); ++i) err = std::max(err, std::fabs(wo[i] - o[i]));
  EXPECT_LE(err, tol) << decay_attn_form_name(form);
  EXPECT_LE(max_abs_diff(st.s, whole->final_state.s), tol) << decay_attn_form_name(form);
}

TEST(decay_attn_split, recurrent_is_bit_exact) {
  for (auto v : {da::variant::retnet, da::variant::simple_gla, da::variant::gla, da::variant::rwkv6, da::variant::mlstm,
                 da::variant::mlstm_sig})
    check_split(v, decay_attn_form::recurrent, 0.0);
}

TEST(decay_attn_split, chunk_and_parallel_carry_the_state) {
  for (auto v : {da::variant::retnet, da::variant::gla, da::variant::rwkv6, da::variant::mlstm}) {
    check_split(v, decay_attn_form::chunk, 2e-4);
    check_split(v, decay_attn_form::parallel, 2e-4);
  }
}

TEST(decay_attn_varlen, packed_equals_separate_sequences) {
  for (auto v : {da::variant::gla, da::variant::mlstm, da::variant::rwkv6}) {
    const decay_attn_spec spec = da::spec_of(v);
    const std::vector<int32_t> cu{0, 7, 7 + 64, 7 + 64 + 90};
    auto in = f32_inputs(v, cu.back(), 2, 16, 12);
    in.cu_seqlens = tensor::from_vector(cu, {4}, dtype::i32);
    for (auto form : {decay_attn_form::recurrent, decay_attn_form::chunk, decay_attn_form::parallel}) {
      auto packed = decay_attn_forward(spec, in, {}, form);
      ASSERT_TRUE(packed.ok()) << packed.error().message();
      for (int n = 0; n < 3; ++n) {
        decay_attn_inputs one = slice_inputs(spec, in, cu[n], cu[n + 1]);
        one.cu_seqlens = tensor();
        auto sep = decay_attn_forward(spec, one, {}, form);
        ASSERT_TRUE(sep.ok());
        EXPECT_LE(max_abs_diff(sep->o, slice_t(packed->o, cu[n], cu[n + 1])), 1e-5);
        EXPECT_LE(max_abs_diff(sep->final_state.s, packed->final_state.s.slice(0, n, n + 1).value()), 1e-5);
      }
    }
  }
}

TEST(decay_attn_step, equals_the_recurrent_form) {
  const auto v = da::variant::mlstm;
  const decay_attn_spec spec = da::spec_of(v);
  const auto in = f32_inputs(v, 5, 2, 8, 6);
  auto whole = decay_attn_forward(spec, in, {}, decay_attn_form::recurrent);
  ASSERT_TRUE(whole.ok());
  decay_attn_state st;
  for (int64_t t = 0; t < 5; ++t) {
    decay_attn_inputs tok;
    tok.q = in.q.select(1, t).value(), tok.k = in.k.select(1, t).value(), tok.v = in.v.select(1, t).value();
    tok.g = in.g.select(1, t).value(), tok.i = in.i.select(1, t).value();
    auto o = decay_attn_step(spec, tok, st);
    ASSERT_TRUE(o.ok()) << o.error().message();
    EXPECT_EQ(max_abs_diff(*o, whole->o.select(1, t).value()), 0.0);
  }
  EXPECT_EQ(max_abs_diff(st.s, whole->final_state.s), 0.0);
}

TEST(decay_attn_extreme, gates_down_to_minus_50_stay_finite) {
  for (auto v : {da::variant::gla, da::variant::simple_gla, da::variant::rwkv6})
    for (auto form : {decay_attn_form::chunk, decay_attn_form::recurrent}) {
      const decay_attn_spec spec = da::spec_of(v);
      const auto in = f32_inputs(v, 200, 1, 16, 16, 50.0);
      auto out = decay_attn_forward(spec, in, {}, form);
      ASSERT_TRUE(out.ok());
      auto g = decay_attn_backward(spec, in, {}, out->o, {}, form);
      ASSERT_TRUE(g.ok());
      for (const tensor* t : {&out->o, &out->final_state.s, &g->dq, &g->dk, &g->dv, &g->dg})
        for (double x : t->to_doubles()) ASSERT_TRUE(std::isfinite(x)) << decay_attn_form_name(form);
    }
}

TEST(decay_attn_errors, name_the_tensor_and_expected_shape) {
  const decay_attn_spec spec = da::spec_of(da::variant::gla);
  auto in = f32_inputs(da::variant::gla, 4, 2, 8, 6);
  in.g = tensor::zeros({1, 4, 2}, dtype::f32).value();
  auto r = decay_attn_forward(spec, in, {}, decay_attn_form::chunk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("g is f32[1, 4, 2]"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("expected [1, 4, 2, 8]"), std::string::npos) << r.error().message();
  auto in2 = f32_inputs(da::variant::gla, 4, 2, 8, 6);
  decay_attn_state st;
  st.s = tensor::zeros({1, 2, 8, 5}, dtype::f32).value();
  auto r2 = decay_attn_forward(spec, in2, st, decay_attn_form::recurrent);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("initial state s"), std::string::npos) << r2.error().message();
  decay_attn_options opt;
  opt.chunk_size = 50;
  EXPECT_FALSE(decay_attn_forward(spec, in2, {}, decay_attn_form::chunk, opt).ok());
}

}  // namespace
}  // namespace lrnn::testing
