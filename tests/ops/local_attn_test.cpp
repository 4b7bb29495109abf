// local_attn: the parallel form against the f64 reference (outputs, final cache, gradients of q, k,
// v and the initial cache) through the harness for MQA / GQA, both RoPE kinds, partial rotation,
// document resets, a wrapped ring-buffer cache, T in {1, 63, 65, 1000}, D in {60, 64, 128}; finite
// differences on tiny sizes; decoding steps and split prefills equal one pass; packed batches;
// errors; the cross-check against recurrentgemma's torch LocalAttentionBlock (tests/data/local_attn).
#include "io/npy.h"
#include "ops/local_attn_test_util.h"

#include <filesystem>

namespace lrnn::testing {
namespace {

using namespace lrnn::ops;
using la::case_opts;
using la::make_case;

case_opts fd_opts() {
  case_opts o;
  o.T = 6, o.Hq = 2, o.Hkv = 1, o.D = 4, o.Dv = 3, o.W = 3, o.fd = true;
  return o;
}
case_opts fd_cache() {
  auto o = fd_opts();
  o.cache_count = 5;
  return o;
}
case_opts fd_gqa_interleaved() {
  auto o = fd_opts();
  o.Hq = 4, o.Hkv = 2, o.D = 6, o.W = 2, o.rope = rope_kind::interleaved, o.fraction = 1.0, o.resets = true;
  return o;
}
case_opts sized(int64_t B, int64_t T, int64_t D, int64_t W, int64_t Hq = 4, int64_t Hkv = 1) {
  case_opts o;
  o.B = B, o.T = T, o.D = D, o.Dv = D, o.W = W, o.Hq = Hq, o.Hkv = Hkv;
  return o;
}
template <typename F>
case_opts with(case_opts o, F f) {
  f(o);
  return o;
}

LRNN_OP_CASE(local_attn, fd_mqa_half, la::family(), make_case(fd_opts()))
LRNN_OP_CASE(local_attn, fd_wrapped_cache, la::family(), make_case(fd_cache()))
LRNN_OP_CASE(local_attn, fd_gqa_interleaved_resets, la::family(), make_case(fd_gqa_interleaved()))
LRNN_OP_CASE(local_attn, fd_no_rope, la::family(), make_case(with(fd_opts(), [](case_opts& o) { o.rope = rope_kind::none; })))
LRNN_OP_CASE(local_attn, t1_d60, la::family(), make_case(sized(2, 1, 60, 16)))
LRNN_OP_CASE(local_attn, t63_d64_w16, la::family(), make_case(sized(1, 63, 64, 16, 4, 2)))
LRNN_OP_CASE(local_attn, t65_d128_w64_cache, la::family(), make_case(with(sized(1, 65, 128, 64, 2, 1), [](case_opts& o) { o.cache_count = 100; })))
LRNN_OP_CASE(local_attn, t65_d60_resets, la::family(), make_case(with(sized(2, 65, 60, 8), [](case_opts& o) { o.resets = true; })))
LRNN_OP_CASE(local_attn, t1000_d64_w128, la::family(), make_case(with(sized(1, 1000, 64, 128, 2, 1), [](case_opts& o) { o.fraction = 1.0; })))

op_case varlen_case() {
  op_case c = make_case(sized(1, 90, 16, 8, 2, 1));
  c.inputs.emplace_back("cu_seqlens", tensor::from_vector(std::vector<int32_t>{0, 20, 20, 90}, {4}, dtype::i32));
  return c;
}
LRNN_OP_CASE(local_attn, varlen, la::family(), varlen_case())

local_attn_inputs f32_inputs(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, uint64_t seed = 3) {
  local_attn_inputs in;
  in.q = random_normal({B, T, Hq, D}, seed + 1).to(dtype::f32).value();
  in.k = random_normal({B, T, Hkv, D}, seed + 2).to(dtype::f32).value();
  in.v = random_normal({B, T, Hkv, D}, seed + 3).to(dtype::f32).value();
  return in;
}
tensor slice_t(const tensor& t, int64_t a, int64_t b) { return t.slice(1, a, b).value().contiguous().value(); }

TEST(local_attn_step, decoding_equals_one_pass) {
  local_attn_spec spec;
  spec.window = 5, spec.rotary_fraction = 0.5;
  const int64_t T = 17;
  const auto in = f32_inputs(2, T, 4, 2, 8);
  auto whole = local_attn_forward(spec, in, {}, local_attn_form::parallel);
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  // Prefill 3 tokens, then decode one token at a time.
  local_attn_inputs pre{slice_t(in.q, 0, 3), slice_t(in.k, 0, 3), slice_t(in.v, 0, 3), tensor(), tensor()};
  auto p = local_attn_forward(spec, pre, {}, local_attn_form::parallel);
  ASSERT_TRUE(p.ok());
  EXPECT_LE(max_abs_diff(p->o, slice_t(whole->o, 0, 3)), 1e-6);
  local_attn_state st = p->final_state;
  for (int64_t t = 3; t < T; ++t) {
    local_attn_inputs tok{in.q.select(1, t).value(), in.k.select(1, t).value(), in.v.select(1, t).value(), tensor(), tensor()};
    auto o = local_attn_step(spec, tok, st);
    ASSERT_TRUE(o.ok()) << o.error().message();
    EXPECT_LE(max_abs_diff(*o, whole->o.select(1, t).value()), 1e-6) << "t = " << t;
  }
  EXPECT_EQ(max_abs_diff(st.k_cache, whole->final_state.k_cache), 0.0);
  EXPECT_EQ(max_abs_diff(st.count, whole->final_state.count), 0.0);
}

TEST(local_attn_split, carrying_the_cache_equals_one_pass_with_resets) {
  local_attn_spec spec;
  spec.window = 6, spec.rope = rope_kind::interleaved;
  const int64_t T = 40;
  auto in = f32_inputs(1, T, 2, 1, 12);
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t < 23 ? t : t - 23);  // a document starts at 23
  in.positions = tensor::from_vector(pos, {1, T}, dtype::i32);
  auto whole = local_attn_forward(spec, in, {}, local_attn_form::parallel);
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  local_attn_state st;
  const std::vector<int64_t> cuts{0, 1, 9, 23, 24, 31, T};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    local_attn_inputs part{slice_t(in.q, cuts[c], cuts[c + 1]), slice_t(in.k, cuts[c], cuts[c + 1]),
                           slice_t(in.v, cuts[c], cuts[c + 1]), slice_t(in.positions, cuts[c], cuts[c + 1]), tensor()};
    for (auto form : {local_attn_form::parallel, local_attn_form::reference}) {
      auto r = local_attn_forward(spec, part, st, form);
      ASSERT_TRUE(r.ok()) << r.error().message();
      EXPECT_LE(max_abs_diff(r->o, slice_t(whole->o, cuts[c], cuts[c + 1])), 1e-6) << "cut " << c;
      if (form == local_attn_form::reference) st = r->final_state;
    }
  }
  EXPECT_EQ(st.start.at({0}), 23.0);
  EXPECT_LE(max_abs_diff(st.k_cache, whole->final_state.k_cache), 1e-6);
}

TEST(local_attn_varlen, packed_equals_separate_sequences) {
  local_attn_spec spec;
  spec.window = 7;
  const std::vector<int32_t> cu{0, 9, 9, 30};
  auto in = f32_inputs(1, 30, 4, 2, 16);
  in.cu_seqlens = tensor::from_vector(cu, {4}, dtype::i32);
  auto packed = local_attn_forward(spec, in, {}, local_attn_form::parallel);
  ASSERT_TRUE(packed.ok());
  for (int n = 0; n < 3; ++n) {
    if (cu[n] == cu[n + 1]) continue;
    local_attn_inputs one{slice_t(in.q, cu[n], cu[n + 1]), slice_t(in.k, cu[n], cu[n + 1]), slice_t(in.v, cu[n], cu[n + 1]), tensor(), tensor()};
    auto sep = local_attn_forward(spec, one, {}, local_attn_form::parallel);
    ASSERT_TRUE(sep.ok());
    EXPECT_LE(max_abs_diff(sep->o, slice_t(packed->o, cu[n], cu[n + 1])), 1e-6);
    EXPECT_LE(max_abs_diff(sep->final_state.k_cache, packed->final_state.k_cache.slice(0, n, n + 1).value()), 0.0);
  }
}

TEST(local_attn_errors, name_the_tensor_and_expected_shape) {
  local_attn_spec spec;
  auto in = f32_inputs(1, 4, 3, 2, 8);
  auto r = local_attn_forward(spec, in, {}, local_attn_form::parallel);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("divisor of the 3 query heads"), std::string::npos) << r.error().message();
  auto in2 = f32_inputs(1, 4, 2, 1, 8);
  local_attn_state st;
  st.k_cache = tensor::zeros({1, 5, 1, 8}, dtype::f32).value();
  st.v_cache = st.k_cache;
  st.count = tensor::from_vector(std::vector<int64_t>{0}, {1}, dtype::i64);
  auto r2 = local_attn_forward(spec, in2, st, local_attn_form::parallel);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("initial state k_cache is f32[1, 5, 1, 8] cpu, expected [1, 2048, 1, 8]"), std::string::npos)
      << r2.error().message();
  in2.positions = tensor::zeros({1, 3}, dtype::i32).value();
  auto r3 = local_attn_forward(spec, in2, {}, local_attn_form::parallel);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message().find("positions is i32[1, 3]"), std::string::npos) << r3.error().message();
}

// recurrentgemma's LocalAttentionBlock attention core (tools/make_delta_local_fixtures.py ports it to
// NumPy float64): prefill with document resets, then decoding steps through its cache.
TEST(local_attn, matches_recurrentgemma_local_attention) {
  const std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/local_attn/";
  ASSERT_TRUE(std::filesystem::exists(dir + "q.npy")) << "missing fixture " << dir << " (tools/make_delta_local_fixtures.py)";
  auto load = [&](const char* name) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? *t : tensor();
  };
  local_attn_spec spec;
  spec.window = static_cast<int64_t>(load("window").at({0}));
  spec.rope = rope_kind::half, spec.rotary_fraction = 0.5;
  local_attn_inputs in{load("q"), load("k"), load("v"), load("segment_pos"), tensor()};
  for (auto form : {local_attn_form::reference, local_attn_form::parallel}) {
    auto out = local_attn_forward(spec, in, {}, form);
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_LE(max_abs_diff(out->o, load("o")), 1e-12) << local_attn_form_name(form);
    // Decoding continues from the prefill cache.
    local_attn_state st = out->final_state;
    const tensor dq = load("step_q"), dk = load("step_k"), dv = load("step_v"), dpos = load("step_pos"), dout = load("step_o");
    for (int64_t s = 0; s < dq.size(1); ++s) {
      local_attn_inputs tok{dq.select(1, s).value(), dk.select(1, s).value(), dv.select(1, s).value(), dpos.select(1, s).value(), tensor()};
      auto o = local_attn_step(spec, tok, st);
      ASSERT_TRUE(o.ok()) << o.error().message();
      EXPECT_LE(max_abs_diff(*o, dout.select(1, s).value()), 1e-12) << "step " << s;
    }
  }
}

}  // namespace
}  // namespace lrnn::testing
