// linear_scan through the op harness: recurrent and scan forms in f64/f32/bf16/f16 against the
// f64 reference (outputs, final state, every gradient incl. d_initial_state) for the RG-LRU and
// the plain log-gate scan; finite differences; odd T, C in {60, 64, 128}; document resets;
// extreme gates; packed batches; plus state carry, packed = separate, the decoding step, errors
// and the cross-check against recurrentgemma's RGLRU (tests/data/linear_scan).
#include "io/npy.h"
#include "ops/linear_scan/linear_scan.h"
#include "support/op_harness.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <tuple>

namespace lrnn::testing {
namespace {

using ops::linear_scan_form;
using ops::scan_gate;

struct scan_params {
  ops::linear_scan_spec spec;
  ops::linear_scan_options options;
};

ops::linear_scan_inputs inputs_of(const named_tensors& in) {
  ops::linear_scan_inputs x;
  x.x = get_tensor(in, "x");
  for (auto& [name, t] : {std::pair<const char*, tensor*>{"log_a", &x.log_a}, {"gate_x", &x.gate_x}, {"gate_a", &x.gate_a},
                          {"a_param", &x.a_param}, {"segment_pos", &x.segment_pos}, {"cu_seqlens", &x.cu_seqlens}})
    if (const tensor* f = find_tensor(in, name)) *t = *f;
  return x;
}

tensor optional(const named_tensors& in, const char* name) {
  const tensor* t = find_tensor(in, name);
  return t ? *t : tensor();
}

op_variant scan_variant(linear_scan_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::linear_scan_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& p, const named_tensors& in) -> result<named_tensors> {
    const auto& prm = std::any_cast<const scan_params&>(p);
    LRNN_ASSIGN_OR_RETURN(auto o, ops::linear_scan_forward(prm.spec, inputs_of(in), optional(in, "h0"), form, prm.options));
    return named_tensors{{"y", o.y}, {"h", o.final_state}};
  };
  v.backward = [form](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& prm = std::any_cast<const scan_params&>(p);
    const tensor h0 = optional(in, "h0");
    LRNN_ASSIGN_OR_RETURN(auto g, ops::linear_scan_backward(prm.spec, inputs_of(in), h0, get_tensor(d, "y"),
                                                            optional(d, "h"), form, prm.options));
    named_tensors out{{"x", g.dx}};
    if (prm.spec.gate == scan_gate::log_a) {
      out.emplace_back("log_a", g.dlog_a);
    } else {
      out.emplace_back("gate_x", g.dgate_x);
      out.emplace_back("gate_a", g.dgate_a);
      out.emplace_back("a_param", g.da_param);
    }
    if (h0.defined()) out.emplace_back("h0", g.d_initial_state);
    return out;
  };
  return v;
}

op_family scan_family() {
  op_family f;
  f.name = "linear_scan";
  f.reference = scan_variant(linear_scan_form::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {scan_variant(linear_scan_form::reference, {dtype::f64}),
                scan_variant(linear_scan_form::recurrent, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16}),
                scan_variant(linear_scan_form::scan, {dtype::f64, dtype::f32, dtype::bf16})};
  f.policies = {{"a_param", input_policy::f32_min}, {"h0", input_policy::f32_min},
                {"segment_pos", input_policy::fixed}, {"cu_seqlens", input_policy::fixed}};
  return f;
}

struct case_opts {
  scan_gate gate = scan_gate::rg_lru;
  int64_t B = 2, T = 16, C = 8;
  bool state = false;
  std::vector<int64_t> resets;          // token indices (every row) where segment_pos is 0
  bool segment_pos = false;             // give segment_pos even without resets
  double gate_scale = 1.5;              // gate pre-activations ~ N(0, scale)
  double lambda_lo = -3, lambda_hi = 4; // a_param uniform
  double log_a_lo = -3, log_a_hi = 0;   // log_a uniform
  int64_t chunk = 64;
  std::vector<int32_t> cu_seqlens;
  bool fd = true;
  int fd_samples = 12;
  uint64_t seed = 11;
};

op_case scan_case(const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_C{}", o.B, o.T, o.C);
  scan_params prm;
  prm.spec.gate = o.gate;
  prm.options.chunk_size = o.chunk;
  c.params = prm;
  const int64_t N = o.cu_seqlens.empty() ? o.B : static_cast<int64_t>(o.cu_seqlens.size()) - 1;
  c.inputs = {{"x", random_normal({o.B, o.T, o.C}, o.seed + 1)}};
  c.grad_inputs = {"x"};
  if (o.gate == scan_gate::log_a) {
    c.inputs.emplace_back("log_a", random_uniform({o.B, o.T, o.C}, o.seed + 2, o.log_a_lo, o.log_a_hi));
    c.grad_inputs.push_back("log_a");
  } else {
    c.inputs.emplace_back("gate_x", random_normal({o.B, o.T, o.C}, o.seed + 3, o.gate_scale));
    c.inputs.emplace_back("gate_a", random_normal({o.B, o.T, o.C}, o.seed + 4, o.gate_scale));
    c.inputs.emplace_back("a_param", random_uniform({o.C}, o.seed + 5, o.lambda_lo, o.lambda_hi));
    for (const char* n : {"gate_x", "gate_a", "a_param"}) c.grad_inputs.push_back(n);
  }
  if (o.state) {
    c.inputs.emplace_back("h0", random_normal({N, o.C}, o.seed + 6));
    c.grad_inputs.push_back("h0");
  }
  if (o.segment_pos || !o.resets.empty()) {
    std::vector<int32_t> pos(o.B * o.T);
    for (int64_t b = 0; b < o.B; ++b) {
      int32_t p = 3;
      for (int64_t t = 0; t < o.T; ++t) {
        if (std::find(o.resets.begin(), o.resets.end(), t) != o.resets.end()) p = 0;
        pos[b * o.T + t] = p++;
      }
    }
    c.inputs.emplace_back("segment_pos", tensor::from_vector(pos, {o.B, o.T}, dtype::i32));
  }
  if (!o.cu_seqlens.empty())
    c.inputs.emplace_back("cu_seqlens", tensor::from_vector(o.cu_seqlens, {static_cast<int64_t>(o.cu_seqlens.size())}, dtype::i32));
  if (!o.fd) c.grad_inputs.clear();
  c.fd_samples = o.fd_samples;
  c.seed = o.seed;
  return c;
}

case_opts with(std::function<void(case_opts&)> f) {
  case_opts o;
  f(o);
  return o;
}

LRNN_OP_CASE(linear_scan, rg_lru_tiny_fd_resets_state, scan_family(), scan_case(with([](case_opts& o) { o.T = 9, o.C = 5, o.state = true, o.resets = {4}, o.chunk = 2, o.fd_samples = 40; })))
LRNN_OP_CASE(linear_scan, log_a_tiny_fd_resets_state, scan_family(), scan_case(with([](case_opts& o) { o.gate = scan_gate::log_a, o.T = 9, o.C = 5, o.state = true, o.resets = {0, 6}, o.chunk = 4, o.fd_samples = 40; })))
LRNN_OP_CASE(linear_scan, t1_c64, scan_family(), scan_case(with([](case_opts& o) { o.T = 1, o.C = 64; })))
LRNN_OP_CASE(linear_scan, t1_c64_state_no_reset, scan_family(), scan_case(with([](case_opts& o) { o.T = 1, o.C = 64, o.state = true, o.segment_pos = true; })))
LRNN_OP_CASE(linear_scan, t1_c64_state_reset, scan_family(), scan_case(with([](case_opts& o) { o.T = 1, o.C = 64, o.state = true, o.resets = {0}; })))
LRNN_OP_CASE(linear_scan, t63_c60_state, scan_family(), scan_case(with([](case_opts& o) { o.T = 63, o.C = 60, o.state = true, o.chunk = 16; })))
LRNN_OP_CASE(linear_scan, t64_c64_resets, scan_family(), scan_case(with([](case_opts& o) { o.B = 1, o.T = 64, o.C = 64, o.resets = {0, 17, 32, 33}; })))
LRNN_OP_CASE(linear_scan, t65_c128_state, scan_family(), scan_case(with([](case_opts& o) { o.B = 1, o.T = 65, o.C = 128, o.state = true, o.chunk = 8; })))
LRNN_OP_CASE(linear_scan, t1000_c64, scan_family(), scan_case(with([](case_opts& o) { o.B = 1, o.T = 1000, o.C = 64, o.state = true, o.resets = {500}, o.fd_samples = 4; })))
LRNN_OP_CASE(linear_scan, log_a_t65_c60, scan_family(), scan_case(with([](case_opts& o) { o.gate = scan_gate::log_a, o.T = 65, o.C = 60, o.state = true, o.chunk = 16; })))
// a_t from e^-50-ish to 1 - 1e-8: the sqrt derivative is clipped (no finite differences there).
LRNN_OP_CASE(linear_scan, rg_lru_extreme_gates, scan_family(), scan_case(with([](case_opts& o) { o.T = 65, o.C = 64, o.state = true, o.gate_scale = 30, o.lambda_lo = -25, o.lambda_hi = 12, o.chunk = 16, o.fd = false; })))
LRNN_OP_CASE(linear_scan, log_a_down_to_minus_50, scan_family(), scan_case(with([](case_opts& o) { o.gate = scan_gate::log_a, o.T = 65, o.C = 64, o.state = true, o.log_a_lo = -50, o.log_a_hi = 0, o.chunk = 16; })))
LRNN_OP_CASE(linear_scan, log_a_near_zero, scan_family(), scan_case(with([](case_opts& o) { o.gate = scan_gate::log_a, o.B = 1, o.T = 200, o.C = 60, o.state = true, o.log_a_lo = -1e-4, o.log_a_hi = -2e-6, o.chunk = 32; })))
LRNN_OP_CASE(linear_scan, packed_batch, scan_family(), scan_case(with([](case_opts& o) { o.B = 1, o.T = 133, o.C = 64, o.state = true, o.cu_seqlens = {0, 5, 5, 70, 133}, o.resets = {40}, o.chunk = 16; })))

TEST(linear_scan, rg_lru_stays_finite_at_the_limits) {
  const int64_t T = 40, C = 16;
  std::vector<double> gx(T * C), ga(T * C), lam(C);
  for (int64_t i = 0; i < T * C; ++i) gx[i] = ga[i] = i % 3 == 0 ? 200.0 : i % 3 == 1 ? -200.0 : 0.0;
  for (int64_t c = 0; c < C; ++c) lam[c] = c % 3 == 0 ? -80.0 : c % 3 == 1 ? 80.0 : 0.0;
  for (dtype t : {dtype::f32, dtype::bf16})
    for (linear_scan_form form : {linear_scan_form::recurrent, linear_scan_form::scan}) {
      ops::linear_scan_inputs in;
      in.x = random_normal({1, T, C}, 3, 100.0).to(t).value();
      in.gate_x = tensor::from_doubles(gx, {1, T, C}, t);
      in.gate_a = tensor::from_doubles(ga, {1, T, C}, t);
      in.a_param = tensor::from_doubles(lam, {C}, dtype::f32);
      const tensor h0 = tensor::zeros({1, C}, dtype::f32).value();
      auto o = ops::linear_scan_forward({}, in, h0, form);
      ASSERT_TRUE(o.ok()) << o.error().to_string();
      auto g = ops::linear_scan_backward({}, in, h0, tensor::full({1, T, C}, 1.0, t).value(), tensor(), form);
      ASSERT_TRUE(g.ok()) << g.error().to_string();
      for (const tensor* x : {&o->y, &o->final_state, &g->dx, &g->dgate_x, &g->dgate_a, &g->da_param, &g->d_initial_state})
        for (double e : x->to_doubles()) ASSERT_TRUE(std::isfinite(e)) << ops::linear_scan_form_name(form) << " " << x->describe();
    }
}

// The derivative of sqrt(1 - a^2) is clipped at 1000 (recurrentgemma's SqrtBoundDerivative):
// with a = 1 - 1e-12 the gradient of the gate stays at the clipped value, not 1e6.
TEST(linear_scan, sqrt_derivative_is_bounded) {
  ops::linear_scan_inputs in;
  in.x = tensor::full({1, 2, 1}, 1.0, dtype::f64).value();
  in.gate_x = tensor::full({1, 2, 1}, 40.0, dtype::f64).value();  // input gate 1
  in.gate_a = tensor::full({1, 2, 1}, 0.0, dtype::f64).value();   // r = 1/2
  const double sp = 2.5e-13;                                      // log a = -8 * sp / 2 = -1e-12
  in.a_param = tensor::full({1}, std::log(std::expm1(sp)), dtype::f64).value();
  const tensor dy = tensor::from_doubles({0.0, 1.0}, {1, 2, 1}, dtype::f64);
  for (linear_scan_form form : {linear_scan_form::reference, linear_scan_form::recurrent, linear_scan_form::scan}) {
    auto g = ops::linear_scan_backward({}, in, tensor(), dy, tensor(), form).value();
    // Token 1: dloss/dlog_a = h_0 * a - 2 a^2 * dz, dz = x i / sqrt(max(4 z, 1e-6)) = 1000.
    const double h0 = std::sqrt(-std::expm1(-2e-12)), a = std::exp(-1e-12);
    const double dla = h0 * a - 2 * a * a * 1000.0;
    EXPECT_NEAR(g.dgate_a.at({0, 1, 0}), dla * (-8 * sp) * 0.25, 1e-12) << ops::linear_scan_form_name(form);
  }
}

TEST(linear_scan, state_carry_across_split_sequences_equals_one_pass) {
  const int64_t T = 100, C = 24;
  ops::linear_scan_inputs in;
  in.x = random_normal({1, T, C}, 1);
  in.gate_x = random_normal({1, T, C}, 2, 2.0);
  in.gate_a = random_normal({1, T, C}, 3, 2.0);
  in.a_param = random_uniform({C}, 4, -3, 4);
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t < 50 ? t + 7 : t - 50);
  in.segment_pos = tensor::from_vector(pos, {1, T}, dtype::i32);
  const tensor h0 = random_normal({1, C}, 5), dy = random_normal({1, T, C}, 6), dh = random_normal({1, C}, 7);
  const std::vector<int64_t> cuts{0, 1, 37, 50, 64, 99, T};
  for (linear_scan_form form : {linear_scan_form::reference, linear_scan_form::recurrent, linear_scan_form::scan}) {
    auto one = ops::linear_scan_forward({}, in, h0, form).value();
    auto gone = ops::linear_scan_backward({}, in, h0, dy, dh, form).value();
    std::vector<tensor> states{h0};
    std::vector<ops::linear_scan_inputs> parts;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      ops::linear_scan_inputs p = in;
      for (tensor* t : {&p.x, &p.gate_x, &p.gate_a, &p.segment_pos}) *t = t->slice(1, cuts[i], cuts[i + 1]).value();
      auto o = ops::linear_scan_forward({}, p, states.back(), form).value();
      EXPECT_LT(max_abs_diff(o.y, one.y.slice(1, cuts[i], cuts[i + 1]).value()), 1e-13) << i;
      states.push_back(o.final_state);
      parts.push_back(p);
    }
    EXPECT_LT(max_abs_diff(states.back(), one.final_state), 1e-13);
    tensor g = dh;
    std::vector<double> dlam(C, 0.0);
    for (size_t i = parts.size(); i-- > 0;) {
      auto gr = ops::linear_scan_backward({}, parts[i], states[i], dy.slice(1, cuts[i], cuts[i + 1]).value(), g, form).value();
      EXPECT_LT(max_abs_diff(gr.dx, gone.dx.slice(1, cuts[i], cuts[i + 1]).value()), 1e-12) << i;
      EXPECT_LT(max_abs_diff(gr.dgate_a, gone.dgate_a.slice(1, cuts[i], cuts[i + 1]).value()), 1e-12) << i;
      EXPECT_LT(max_abs_diff(gr.dgate_x, gone.dgate_x.slice(1, cuts[i], cuts[i + 1]).value()), 1e-12) << i;
      const auto d = gr.da_param.to_doubles();
      for (int64_t c = 0; c < C; ++c) dlam[c] += d[c];
      g = gr.d_initial_state;
    }
    EXPECT_LT(max_abs_diff(g, gone.d_initial_state), 1e-12);
    EXPECT_LT(max_abs_diff(tensor::from_doubles(dlam, {C}, dtype::f64), gone.da_param), 1e-10);
  }
}

TEST(linear_scan, packed_batch_equals_separate_sequences) {
  const std::vector<int32_t> cu{0, 7, 7, 40, 71};
  const int64_t T = 71, C = 32, N = 4;
  ops::linear_scan_inputs packed;
  packed.x = random_normal({1, T, C}, 21);
  packed.gate_x = random_normal({1, T, C}, 22);
  packed.gate_a = random_normal({1, T, C}, 23);
  packed.a_param = random_uniform({C}, 24, -3, 4);
  packed.cu_seqlens = tensor::from_vector(cu, {N + 1}, dtype::i32);
  const tensor h0 = random_normal({N, C}, 25), dy = random_normal({1, T, C}, 26);
  for (linear_scan_form form : {linear_scan_form::recurrent, linear_scan_form::scan}) {
    auto o = ops::linear_scan_forward({}, packed, h0, form).value();
    auto g = ops::linear_scan_backward({}, packed, h0, dy, tensor(), form).value();
    for (int64_t n = 0; n < N; ++n) {
      ops::linear_scan_inputs one = packed;
      one.cu_seqlens = tensor();
      for (tensor* t : {&one.x, &one.gate_x, &one.gate_a}) *t = t->slice(1, cu[n], cu[n + 1]).value();
      const tensor h0n = h0.slice(0, n, n + 1).value();
      auto os = ops::linear_scan_forward({}, one, h0n, form).value();
      auto gs = ops::linear_scan_backward({}, one, h0n, dy.slice(1, cu[n], cu[n + 1]).value(), tensor(), form).value();
      EXPECT_LT(max_abs_diff(os.y, o.y.slice(1, cu[n], cu[n + 1]).value()), 1e-14) << n;
      EXPECT_LT(max_abs_diff(os.final_state, o.final_state.slice(0, n, n + 1).value()), 1e-14) << n;
      EXPECT_LT(max_abs_diff(gs.dx, g.dx.slice(1, cu[n], cu[n + 1]).value()), 1e-14) << n;
      EXPECT_LT(max_abs_diff(gs.dgate_a, g.dgate_a.slice(1, cu[n], cu[n + 1]).value()), 1e-14) << n;
      EXPECT_LT(max_abs_diff(gs.d_initial_state, g.d_initial_state.slice(0, n, n + 1).value()), 1e-14) << n;
    }
  }
}

TEST(linear_scan, decoding_step_matches_forward) {
  const int64_t B = 3, T = 12, C = 20;
  ops::linear_scan_inputs in;
  in.x = random_normal({B, T, C}, 31).to(dtype::f32).value();
  in.gate_x = random_normal({B, T, C}, 32).to(dtype::f32).value();
  in.gate_a = random_normal({B, T, C}, 33).to(dtype::f32).value();
  in.a_param = random_uniform({C}, 34, -3, 4).to(dtype::f32).value();
  std::vector<int32_t> pos(B * T);
  for (int64_t i = 0; i < B * T; ++i) pos[i] = static_cast<int32_t>((i % T) == 5 ? 0 : 1 + i % T);
  in.segment_pos = tensor::from_vector(pos, {B, T}, dtype::i32);
  auto full = ops::linear_scan_forward({}, in, tensor(), linear_scan_form::recurrent).value();
  tensor state = tensor::zeros({B, C}, dtype::f32).value();
  for (int64_t t = 0; t < T; ++t) {
    ops::linear_scan_inputs tok;
    tok.x = in.x.select(1, t).value();
    tok.gate_x = in.gate_x.select(1, t).value();
    tok.gate_a = in.gate_a.select(1, t).value();
    tok.a_param = in.a_param;
    tok.segment_pos = in.segment_pos.select(1, t).value();
    auto y = ops::linear_scan_step({}, tok, state);
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_EQ(max_abs_diff(*y, full.y.select(1, t).value()), 0.0) << t;
  }
  EXPECT_EQ(max_abs_diff(state, full.final_state), 0.0);
}

TEST(linear_scan, rejects_bad_input_with_named_errors) {
  ops::linear_scan_inputs in;
  in.x = tensor::zeros({2, 5, 8}, dtype::f32).value();
  in.gate_x = tensor::zeros({2, 5, 8}, dtype::f32).value();
  in.gate_a = tensor::zeros({2, 5, 7}, dtype::f32).value();
  in.a_param = tensor::zeros({8}, dtype::f32).value();
  auto r = ops::linear_scan_forward({}, in, tensor(), linear_scan_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("gate_a is f32[2, 5, 7]"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("expected [2, 5, 8]"), std::string::npos) << r.error().message();
  in.gate_a = in.gate_x;
  r = ops::linear_scan_forward({}, in, tensor::zeros({3, 8}, dtype::f32).value(), linear_scan_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("initial state"), std::string::npos) << r.error().message();
  in.segment_pos = tensor::zeros({2, 5}, dtype::f32).value();
  r = ops::linear_scan_forward({}, in, tensor(), linear_scan_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("segment_pos"), std::string::npos) << r.error().message();
  ops::linear_scan_spec plain;
  plain.gate = scan_gate::log_a;
  in.segment_pos = tensor();
  r = ops::linear_scan_forward(plain, in, tensor(), linear_scan_form::scan);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("log_a is missing"), std::string::npos) << r.error().message();
}

// recurrentgemma's torch RGLRU (its scan accumulating in float64, the gates fed with the
// pre-activations) and torch autograd through it, SqrtBoundDerivative included: channels 0-1
// have a within 1e-7 of 1, where the clip is active.
TEST(linear_scan, matches_recurrentgemma_rglru) {
  const std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/linear_scan/";
  ASSERT_TRUE(std::filesystem::exists(dir + "x.npy")) << "missing fixture " << dir << " (tools/make_scan_op_fixtures.py)";
  auto load = [&](const char* name, bool as_f64 = true) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? (as_f64 ? t->to(dtype::f64).value() : *t) : tensor();
  };
  ops::linear_scan_inputs in;
  in.x = load("x");
  in.gate_x = load("gate_x");
  in.gate_a = load("gate_a");
  in.a_param = load("a_param");
  in.segment_pos = load("segment_pos", false);
  const tensor h0 = load("h0"), dy = load("dy"), dh = load("dh");
  for (linear_scan_form form : {linear_scan_form::reference, linear_scan_form::recurrent, linear_scan_form::scan}) {
    auto o = ops::linear_scan_forward({}, in, h0, form).value();
    auto g = ops::linear_scan_backward({}, in, h0, dy, dh, form).value();
    const std::pair<const char*, const tensor*> items[] = {{"y", &o.y},           {"h", &o.final_state},
                                                           {"dx", &g.dx},         {"dgate_x", &g.dgate_x},
                                                           {"dgate_a", &g.dgate_a}, {"da_param", &g.da_param},
                                                           {"dh0", &g.d_initial_state}};
    for (const auto& [name, got] : items) {
      const tensor want = load(name);
      // recurrentgemma forms 1 - a^2 directly: where a is within 1e-7 of 1 (channels 0 and 1) its
      // cancellation error is about 1e-16 / (1 - a^2), ~1e-9 relative; lrnn takes -expm1(2 log a).
      const int64_t C = want.size(-1);
      for (const auto& [c0, c1, tol] : {std::tuple<int64_t, int64_t, double>{0, 2, 1e-8}, {2, C, 1e-12}}) {
        const tensor w = want.slice(-1, c0, c1).value(), g = got->slice(-1, c0, c1).value();
        double scale = 1;
        for (double e : w.to_doubles()) scale = std::max(scale, std::fabs(e));
        const double err = max_abs_diff(g, w);
        EXPECT_LE(err, tol * scale) << ops::linear_scan_form_name(form) << " " << name << " channels " << c0 << ".." << c1 << " max error " << err;
        if (harness_verbose())
          std::printf("linear_scan %s %s channels [%lld, %lld): max |ours - recurrentgemma| = %.3e (scale %.3g)\n",
                      ops::linear_scan_form_name(form), name, static_cast<long long>(c0), static_cast<long long>(c1), err, scale);
      }
    }
  }
}

}  // namespace
}  // namespace lrnn::testing
