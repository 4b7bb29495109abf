// delta_rule plain tests: splitting a sequence and carrying the state equals one pass (bit-exact
// for the recurrent form), packed batches equal separate sequences, the decode step equals the
// recurrent form, log decays of -50 stay finite, bad shapes are named, and the cross-check against
// fla's naive references (tests/data/delta_rule, tools/make_delta_local_fixtures.py).
#include "io/npy.h"
#include "ops/delta_rule_test_util.h"

#include <filesystem>

namespace lrnn::testing {
namespace {

using namespace lrnn::ops;

delta_rule_inputs f32_inputs(dr::variant v, int64_t T, int64_t H, int64_t K, int64_t V, double gmax = 1.0) {
  named_tensors in;
  dr::add_inputs(v, in, 1, T, H, K, V, 1, false, gmax, 3);
  for (auto& [n, t] : in) t = t.to(dtype::f32).value();
  return dr::inputs_of(in);
}

tensor slice_t(const tensor& t, int64_t a, int64_t b) { return t.defined() ? t.slice(1, a, b).value().contiguous().value() : t; }

delta_rule_inputs slice_inputs(const delta_rule_inputs& in, int64_t a, int64_t b) {
  delta_rule_inputs r;
  r.q = slice_t(in.q, a, b), r.k = slice_t(in.k, a, b), r.v = slice_t(in.v, a, b), r.beta = slice_t(in.beta, a, b);
  r.g = slice_t(in.g, a, b), r.w = slice_t(in.w, a, b), r.a = slice_t(in.a, a, b), r.b = slice_t(in.b, a, b);
  return r;
}

constexpr dr::variant all_variants[] = {dr::variant::delta, dr::variant::gated, dr::variant::gated_l2, dr::variant::dplr};

void check_split(dr::variant v, delta_rule_form form, double tol) {
  const delta_rule_spec spec = dr::spec_of(v);
  const int64_t T = 150;
  const auto in = f32_inputs(v, T, 2, 32, 24);
  auto whole = delta_rule_forward(spec, in, {}, form);
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  delta_rule_state st;
  std::vector<double> o;
  const std::vector<int64_t> cuts{0, 1, 37, 64, 65, 129, T};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    auto part = delta_rule_forward(spec, slice_inputs(in, cuts[c], cuts[c + 1]), st, form);
    ASSERT_TRUE(part.ok()) << part.error().message();
    const auto po = part->o.to_doubles();
    o.insert(o.end(), po.begin(), po.end());
    st = part->final_state;
  }
  const auto wo = whole->o.to_doubles();
  double err = 0;
  for (size_t i = 0; i < wo.size(); ++i) err = std::max(err, std::fabs(wo[i] - o[i]));
  EXPECT_LE(err, tol) << delta_rule_form_name(form);
  EXPECT_LE(max_abs_diff(st.s, whole->final_state.s), tol) << delta_rule_form_name(form);
}

TEST(delta_rule_split, recurrent_is_bit_exact) {
  for (auto v : all_variants) check_split(v, delta_rule_form::recurrent, 0.0);
}

TEST(delta_rule_split, chunk_carries_the_state) {
  for (auto v : all_variants) check_split(v, delta_rule_form::chunk, 2e-5);
}

TEST(delta_rule_varlen, packed_equals_separate_sequences) {
  for (auto v : all_variants) {
    const delta_rule_spec spec = dr::spec_of(v);
    const std::vector<int32_t> cu{0, 7, 7 + 64, 7 + 64 + 90};
    auto in = f32_inputs(v, cu.back(), 2, 16, 12);
    in.cu_seqlens = tensor::from_vector(cu, {4}, dtype::i32);
    for (auto form : {delta_rule_form::recurrent, delta_rule_form::chunk}) {
      auto packed = delta_rule_forward(spec, in, {}, form);
      ASSERT_TRUE(packed.ok()) << packed.error().message();
      for (int n = 0; n < 3; ++n) {
        auto sep = delta_rule_forward(spec, slice_inputs(in, cu[n], cu[n + 1]), {}, form);
        ASSERT_TRUE(sep.ok());
        EXPECT_LE(max_abs_diff(sep->o, slice_t(packed->o, cu[n], cu[n + 1])), 1e-5);
        EXPECT_LE(max_abs_diff(sep->final_state.s, packed->final_state.s.slice(0, n, n + 1).value()), 1e-5);
      }
    }
  }
}

TEST(delta_rule_step, equals_the_recurrent_form) {
  for (auto v : all_variants) {
    const delta_rule_spec spec = dr::spec_of(v);
    const auto in = f32_inputs(v, 5, 2, 8, 6);
    auto whole = delta_rule_forward(spec, in, {}, delta_rule_form::recurrent);
    ASSERT_TRUE(whole.ok());
    delta_rule_state st;
    for (int64_t t = 0; t < 5; ++t) {
      auto sel = [t](const tensor& x) { return x.defined() ? x.select(1, t).value() : x; };
      delta_rule_inputs tok;
      tok.q = sel(in.q), tok.k = sel(in.k), tok.v = sel(in.v), tok.beta = sel(in.beta), tok.g = sel(in.g);
      tok.w = sel(in.w), tok.a = sel(in.a), tok.b = sel(in.b);
      auto o = delta_rule_step(spec, tok, st);
      ASSERT_TRUE(o.ok()) << o.error().message();
      EXPECT_EQ(max_abs_diff(*o, whole->o.select(1, t).value()), 0.0);
    }
    EXPECT_EQ(max_abs_diff(st.s, whole->final_state.s), 0.0);
  }
}

TEST(delta_rule_extreme, decays_down_to_minus_50_stay_finite) {
  for (auto v : {dr::variant::gated, dr::variant::dplr})
    for (auto form : {delta_rule_form::chunk, delta_rule_form::recurrent}) {
      const delta_rule_spec spec = dr::spec_of(v);
      const auto in = f32_inputs(v, 200, 1, 16, 16, 50.0);
      auto out = delta_rule_forward(spec, in, {}, form);
      ASSERT_TRUE(out.ok());
      auto g = delta_rule_backward(spec, in, {}, out->o, out->final_state, form);
      ASSERT_TRUE(g.ok());
      for (const tensor* t : {&out->o, &out->final_state.s, &g->dq, &g->dk, &g->dv, &g->dg, &g->dw, &g->da, &g->db, &g->dbeta})
        if (t->defined()) {
          for (double x : t->to_doubles()) ASSERT_TRUE(std::isfinite(x)) << delta_rule_form_name(form);
        }
    }
}

TEST(delta_rule_errors, name_the_tensor_and_expected_shape) {
  const delta_rule_spec spec = dr::spec_of(dr::variant::gated);
  auto in = f32_inputs(dr::variant::gated, 4, 2, 8, 6);
  in.g = tensor::zeros({1, 4, 2, 8}, dtype::f32).value();
  auto r = delta_rule_forward(spec, in, {}, delta_rule_form::chunk);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("g is f32[1, 4, 2, 8] cpu, expected [1, 4, 2]"), std::string::npos) << r.error().message();
  auto in2 = f32_inputs(dr::variant::gated, 4, 2, 8, 6);
  delta_rule_state st;
  st.s = tensor::zeros({1, 2, 8, 5}, dtype::f32).value();
  auto r2 = delta_rule_forward(spec, in2, st, delta_rule_form::recurrent);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("initial state s is f32[1, 2, 8, 5] cpu, expected [1, 2, 8, 6]"), std::string::npos) << r2.error().message();
  auto in3 = f32_inputs(dr::variant::dplr, 4, 2, 8, 6);
  in3.b = tensor();
  auto r3 = delta_rule_forward(dr::spec_of(dr::variant::dplr), in3, {}, delta_rule_form::recurrent);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message().find("b is missing, expected [1, 4, 2, 8]"), std::string::npos) << r3.error().message();
  delta_rule_options opt;
  opt.chunk_size = 50;
  EXPECT_FALSE(delta_rule_forward(spec, in2, {}, delta_rule_form::chunk, opt).ok());
}

// fla's naive references ported to NumPy float64: DeltaNet (delta_rule_recurrence), Gated DeltaNet
// (naive_recurrent_gated_delta_rule, and its chunked naive_chunk_gated_delta_rule with C = 16) and
// the DPLR recurrence (dplr_recurrence, scale K^-0.5), all with an initial state.
TEST(delta_rule, matches_fla_naive_references) {
  const std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/delta_rule/";
  ASSERT_TRUE(std::filesystem::exists(dir + "q.npy")) << "missing fixture " << dir << " (tools/make_delta_local_fixtures.py)";
  auto load = [&](const std::string& name) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? *t : tensor();
  };
  const delta_rule_state s0{load("s0")};
  struct item {
    delta_kind kind;
    const char* prefix;
    delta_rule_inputs in;
  };
  delta_rule_inputs base;
  base.q = load("q"), base.k = load("k"), base.v = load("v"), base.beta = load("beta");
  delta_rule_inputs gated = base;
  gated.g = load("g");
  delta_rule_inputs dplr;
  dplr.q = base.q, dplr.k = load("dplr_k"), dplr.v = base.v, dplr.w = load("dplr_w"), dplr.a = load("dplr_a"), dplr.b = load("dplr_b");
  const item items[] = {{delta_kind::delta, "delta", base}, {delta_kind::gated, "gated", gated}, {delta_kind::gated, "gated_chunk", gated},
                        {delta_kind::dplr, "dplr", dplr}};
  for (const item& it : items)
    for (auto form : {delta_rule_form::reference, delta_rule_form::recurrent, delta_rule_form::chunk}) {
      delta_rule_spec spec;
      spec.kind = it.kind;
      delta_rule_options opt;
      opt.chunk_size = 16;
      auto out = delta_rule_forward(spec, it.in, s0, form, opt);
      ASSERT_TRUE(out.ok()) << out.error().message();
      const std::string p = it.prefix;
      EXPECT_LE(max_abs_diff(out->o, load(p + "_o")), 1e-12) << p << " " << delta_rule_form_name(form);
      EXPECT_LE(max_abs_diff(out->final_state.s, load(p + "_s")), 1e-12) << p << " " << delta_rule_form_name(form);
    }
}

}  // namespace
}  // namespace lrnn::testing
