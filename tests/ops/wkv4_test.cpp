// wkv4 through the op harness: recurrent and chunk forms in f64/f32/bf16/f16 against the f64
// reference (outputs, final state, every gradient incl. d_initial_state), finite differences,
// odd T, C in {60, 64, 128}, extreme keys and decays, packed batches; plus state carry across
// split sequences, packed = separate, the decoding step, errors, and the cross-check against
// HF transformers' rwkv_linear_attention_cpu (tests/data/wkv4, tools/make_scan_op_fixtures.py).
#include "io/npy.h"
#include "ops/wkv4/wkv4.h"
#include "support/op_harness.h"

#include <cmath>
#include <filesystem>

namespace lrnn::testing {
namespace {

using ops::wkv4_form;

struct wkv4_params {
  ops::wkv4_options options;
};

ops::wkv4_inputs inputs_of(const named_tensors& in) {
  ops::wkv4_inputs x;
  x.k = get_tensor(in, "k");
  x.v = get_tensor(in, "v");
  x.time_decay = get_tensor(in, "time_decay");
  x.time_first = get_tensor(in, "time_first");
  if (const tensor* c = find_tensor(in, "cu_seqlens")) x.cu_seqlens = *c;
  return x;
}

ops::wkv4_state state_of(const named_tensors& in, const char* a, const char* b, const char* p) {
  ops::wkv4_state s;
  if (const tensor* t = find_tensor(in, a)) s.a = *t;
  if (const tensor* t = find_tensor(in, b)) s.b = *t;
  if (const tensor* t = find_tensor(in, p)) s.p = *t;
  return s;
}

op_variant wkv4_variant(wkv4_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::wkv4_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& p, const named_tensors& in) -> result<named_tensors> {
    const auto& prm = std::any_cast<const wkv4_params&>(p);
    LRNN_ASSIGN_OR_RETURN(auto o, ops::wkv4_forward(inputs_of(in), state_of(in, "a0", "b0", "p0"), form, prm.options));
    return named_tensors{{"y", o.y}, {"a", o.final_state.a}, {"b", o.final_state.b}, {"p", o.final_state.p}};
  };
  v.backward = [form](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& prm = std::any_cast<const wkv4_params&>(p);
    const ops::wkv4_state init = state_of(in, "a0", "b0", "p0");
    LRNN_ASSIGN_OR_RETURN(auto g, ops::wkv4_backward(inputs_of(in), init, get_tensor(d, "y"), state_of(d, "a", "b", "p"),
                                                     form, prm.options));
    named_tensors out{{"k", g.dk}, {"v", g.dv}, {"time_decay", g.dtime_decay}, {"time_first", g.dtime_first}};
    if (init.a.defined()) {
      out.emplace_back("a0", g.d_initial_state.a);
      out.emplace_back("b0", g.d_initial_state.b);
      out.emplace_back("p0", g.d_initial_state.p);
    }
    return out;
  };
  return v;
}

op_family wkv4_family() {
  op_family f;
  f.name = "wkv4";
  f.reference = wkv4_variant(wkv4_form::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {wkv4_variant(wkv4_form::reference, {dtype::f64}),
                wkv4_variant(wkv4_form::recurrent, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16}),
                wkv4_variant(wkv4_form::chunk, {dtype::f64, dtype::f32, dtype::bf16})};
  f.policies = {{"time_decay", input_policy::f32_min}, {"time_first", input_policy::f32_min},
                {"a0", input_policy::f32_min},         {"b0", input_policy::f32_min},
                {"p0", input_policy::f32_min},         {"cu_seqlens", input_policy::fixed}};
  return f;
}

struct case_opts {
  int64_t B = 2, T = 16, C = 8;
  bool state = false;
  double k_scale = 1.0, u_scale = 1.0;
  double decay_lo = -3.0, decay_hi = 1.5;  // time_decay uniform in [lo, hi]
  int64_t chunk = 64;
  std::vector<int32_t> cu_seqlens;  // packed: B must be 1
  bool fd = true;
  int fd_samples = 12;
  uint64_t seed = 7;
};

op_case wkv4_case(const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_C{}", o.B, o.T, o.C);
  wkv4_params prm;
  prm.options.chunk_size = o.chunk;
  c.params = prm;
  const int64_t N = o.cu_seqlens.empty() ? o.B : static_cast<int64_t>(o.cu_seqlens.size()) - 1;
  c.inputs = {{"k", random_normal({o.B, o.T, o.C}, o.seed + 1, o.k_scale)},
              {"v", random_normal({o.B, o.T, o.C}, o.seed + 2)},
              {"time_decay", random_uniform({o.C}, o.seed + 3, o.decay_lo, o.decay_hi)},
              {"time_first", random_normal({o.C}, o.seed + 4, o.u_scale)}};
  c.grad_inputs = {"k", "v", "time_decay", "time_first"};
  if (o.state) {
    // A state as a previous segment leaves it: b > 0, |a| <= b * max|v|, p a recent key.
    tensor b = random_uniform({N, o.C}, o.seed + 5, 0.5, 3.0);
    tensor a = random_normal({N, o.C}, o.seed + 6);
    for (int64_t i = 0; i < N * o.C; ++i) a.data<double>()[i] *= b.data<double>()[i];
    c.inputs.emplace_back("a0", a);
    c.inputs.emplace_back("b0", b);
    c.inputs.emplace_back("p0", random_normal({N, o.C}, o.seed + 7, o.k_scale));
    for (const char* n : {"a0", "b0", "p0"}) c.grad_inputs.push_back(n);
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

LRNN_OP_CASE(wkv4, tiny_fd_with_state, wkv4_family(), wkv4_case(with([](case_opts& o) { o.B = 2, o.T = 9, o.C = 5, o.state = true, o.chunk = 4, o.fd_samples = 40; })))
LRNN_OP_CASE(wkv4, t1_c64, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 1, o.C = 64; })))
LRNN_OP_CASE(wkv4, t1_c64_state, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 1, o.C = 64, o.state = true; })))
LRNN_OP_CASE(wkv4, t63_c60_state, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 63, o.C = 60, o.state = true, o.chunk = 16; })))
LRNN_OP_CASE(wkv4, t64_c64, wkv4_family(), wkv4_case(with([](case_opts& o) { o.B = 1, o.T = 64, o.C = 64; })))
LRNN_OP_CASE(wkv4, t65_c128_state, wkv4_family(), wkv4_case(with([](case_opts& o) { o.B = 1, o.T = 65, o.C = 128, o.state = true; })))
LRNN_OP_CASE(wkv4, t1000_c64, wkv4_family(), wkv4_case(with([](case_opts& o) { o.B = 1, o.T = 1000, o.C = 64, o.state = true, o.fd_samples = 4; })))
LRNN_OP_CASE(wkv4, chunk_is_whole_sequence, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 37, o.C = 24, o.chunk = 1000, o.state = true; })))
LRNN_OP_CASE(wkv4, keys_up_to_60, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 70, o.C = 64, o.k_scale = 25, o.u_scale = 20, o.state = true, o.chunk = 32; })))
LRNN_OP_CASE(wkv4, very_negative_time_decay, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 65, o.C = 60, o.decay_lo = -40, o.decay_hi = -20, o.k_scale = 10; })))
LRNN_OP_CASE(wkv4, very_strong_decay, wkv4_family(), wkv4_case(with([](case_opts& o) { o.T = 65, o.C = 60, o.decay_lo = 3, o.decay_hi = 9, o.state = true; })))
LRNN_OP_CASE(wkv4, packed_batch, wkv4_family(), wkv4_case(with([](case_opts& o) { o.B = 1, o.T = 133, o.C = 64, o.state = true, o.cu_seqlens = {0, 5, 5, 70, 133}, o.chunk = 16; })))

// Keys of exactly +-60 and a sequence that starts from a state far below every key.
TEST(wkv4, stays_finite_at_the_limits) {
  const int64_t T = 50, C = 16;
  std::vector<double> k(T * C), v(T * C), td(C), tf(C);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      k[t * C + c] = (t + c) % 2 ? 60.0 : -60.0;
      v[t * C + c] = std::sin(0.1 * static_cast<double>(t * C + c));
    }
  for (int64_t c = 0; c < C; ++c) {
    td[c] = c % 3 == 0 ? -60.0 : c % 3 == 1 ? 10.0 : 0.0;
    tf[c] = c % 2 ? -60.0 : 60.0;
  }
  for (dtype t : {dtype::f32, dtype::bf16})
    for (wkv4_form form : {wkv4_form::recurrent, wkv4_form::chunk}) {
      ops::wkv4_inputs in;
      in.k = tensor::from_doubles(k, {1, T, C}, t);
      in.v = tensor::from_doubles(v, {1, T, C}, t);
      in.time_decay = tensor::from_doubles(td, {C}, dtype::f32);
      in.time_first = tensor::from_doubles(tf, {C}, dtype::f32);
      auto init = ops::wkv4_zero_state(1, C).value();
      auto o = ops::wkv4_forward(in, init, form);
      ASSERT_TRUE(o.ok()) << o.error().to_string();
      auto g = ops::wkv4_backward(in, init, tensor::full({1, T, C}, 1.0, t).value(), {}, form);
      ASSERT_TRUE(g.ok()) << g.error().to_string();
      for (const tensor* x : {&o->y, &o->final_state.a, &o->final_state.b, &g->dk, &g->dv, &g->dtime_decay, &g->dtime_first,
                              &g->d_initial_state.a, &g->d_initial_state.b, &g->d_initial_state.p})
        for (double e : x->to_doubles()) ASSERT_TRUE(std::isfinite(e)) << ops::wkv4_form_name(form) << " " << x->describe();
    }
}

struct split_run {
  tensor y, dk, dv, dtd, dtf;
  ops::wkv4_state final_state, d_init;
};

// Runs [0, T) in pieces cut at `cuts`, carrying the state forward and its gradient backward.
split_run run_split(const ops::wkv4_inputs& full, const ops::wkv4_state& init, const tensor& dy,
                    const ops::wkv4_state& dfin, std::vector<int64_t> cuts, wkv4_form form) {
  const int64_t T = full.k.size(1);
  cuts.insert(cuts.begin(), 0);
  cuts.push_back(T);
  std::vector<ops::wkv4_inputs> parts;
  std::vector<ops::wkv4_state> inits{init};
  std::vector<tensor> ys;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    ops::wkv4_inputs p = full;
    p.k = full.k.slice(1, cuts[i], cuts[i + 1]).value();
    p.v = full.v.slice(1, cuts[i], cuts[i + 1]).value();
    auto o = ops::wkv4_forward(p, inits.back(), form).value();
    parts.push_back(p);
    inits.push_back(o.final_state);
    ys.push_back(o.y);
  }
  split_run r;
  r.final_state = inits.back();
  ops::wkv4_state g = dfin;
  std::vector<tensor> dks(parts.size()), dvs(parts.size());
  std::vector<double> dtd(full.k.size(2), 0.0), dtf(full.k.size(2), 0.0);
  for (size_t i = parts.size(); i-- > 0;) {
    auto gr = ops::wkv4_backward(parts[i], inits[i], dy.slice(1, cuts[i], cuts[i + 1]).value(), g, form).value();
    dks[i] = gr.dk, dvs[i] = gr.dv;
    const auto a = gr.dtime_decay.to_doubles(), b = gr.dtime_first.to_doubles();
    for (size_t c = 0; c < a.size(); ++c) dtd[c] += a[c], dtf[c] += b[c];
    g = gr.d_initial_state;
  }
  r.d_init = g;
  auto cat = [&](const std::vector<tensor>& xs) {
    std::vector<double> all;
    for (const tensor& x : xs)
      for (double e : x.to_doubles()) all.push_back(e);
    return all;
  };
  // Pieces are [1, Ti, C]: concatenating their rows gives [1, T, C].
  r.y = tensor::from_doubles(cat(ys), full.k.shape(), dtype::f64);
  r.dk = tensor::from_doubles(cat(dks), full.k.shape(), dtype::f64);
  r.dv = tensor::from_doubles(cat(dvs), full.k.shape(), dtype::f64);
  r.dtd = tensor::from_doubles(dtd, {full.k.size(2)}, dtype::f64);
  r.dtf = tensor::from_doubles(dtf, {full.k.size(2)}, dtype::f64);
  return r;
}

TEST(wkv4, state_carry_across_split_sequences_equals_one_pass) {
  const int64_t T = 100, C = 24;
  ops::wkv4_inputs in;
  in.k = random_normal({1, T, C}, 1, 2.0);
  in.v = random_normal({1, T, C}, 2);
  in.time_decay = random_uniform({C}, 3, -3, 1);
  in.time_first = random_normal({C}, 4);
  ops::wkv4_state init;
  init.a = random_normal({1, C}, 5);
  init.b = random_uniform({1, C}, 6, 1.0, 2.0);
  init.p = random_normal({1, C}, 7);
  const tensor dy = random_normal({1, T, C}, 8);
  ops::wkv4_state dfin{random_normal({1, C}, 9), random_normal({1, C}, 10), random_normal({1, C}, 11)};
  for (wkv4_form form : {wkv4_form::reference, wkv4_form::recurrent, wkv4_form::chunk}) {
    const split_run one = run_split(in, init, dy, dfin, {}, form);
    const split_run many = run_split(in, init, dy, dfin, {1, 37, 64, 99}, form);
    const double tol = 1e-11;
    EXPECT_LT(max_abs_diff(one.y, many.y), tol) << ops::wkv4_form_name(form);
    EXPECT_LT(max_abs_diff(one.final_state.a, many.final_state.a), tol);
    EXPECT_LT(max_abs_diff(one.final_state.b, many.final_state.b), tol);
    EXPECT_LT(max_abs_diff(one.final_state.p, many.final_state.p), tol);
    EXPECT_LT(max_abs_diff(one.dk, many.dk), tol) << ops::wkv4_form_name(form);
    EXPECT_LT(max_abs_diff(one.dv, many.dv), tol);
    EXPECT_LT(max_abs_diff(one.dtd, many.dtd), 1e-9);
    EXPECT_LT(max_abs_diff(one.dtf, many.dtf), 1e-9);
    EXPECT_LT(max_abs_diff(one.d_init.a, many.d_init.a), tol);
    EXPECT_LT(max_abs_diff(one.d_init.b, many.d_init.b), tol);
    EXPECT_LT(max_abs_diff(one.d_init.p, many.d_init.p), tol);
  }
}

TEST(wkv4, packed_batch_equals_separate_sequences) {
  const std::vector<int32_t> cu{0, 7, 7, 40, 71};
  const int64_t T = 71, C = 32, N = 4;
  ops::wkv4_inputs packed;
  packed.k = random_normal({1, T, C}, 21, 2.0);
  packed.v = random_normal({1, T, C}, 22);
  packed.time_decay = random_uniform({C}, 23, -2, 1);
  packed.time_first = random_normal({C}, 24);
  packed.cu_seqlens = tensor::from_vector(cu, {N + 1}, dtype::i32);
  const tensor dy = random_normal({1, T, C}, 25);
  for (wkv4_form form : {wkv4_form::recurrent, wkv4_form::chunk}) {
    auto o = ops::wkv4_forward(packed, {}, form).value();
    auto g = ops::wkv4_backward(packed, {}, dy, {}, form).value();
    std::vector<double> dtd(C, 0.0);
    for (int64_t n = 0; n < N; ++n) {
      ops::wkv4_inputs one = packed;
      one.cu_seqlens = tensor();
      one.k = packed.k.slice(1, cu[n], cu[n + 1]).value();
      one.v = packed.v.slice(1, cu[n], cu[n + 1]).value();
      auto os = ops::wkv4_forward(one, {}, form).value();
      auto gs = ops::wkv4_backward(one, {}, dy.slice(1, cu[n], cu[n + 1]).value(), {}, form).value();
      EXPECT_EQ(max_abs_diff(os.y, o.y.slice(1, cu[n], cu[n + 1]).value()), 0.0) << n;
      EXPECT_EQ(max_abs_diff(os.final_state.a, o.final_state.a.slice(0, n, n + 1).value()), 0.0) << n;
      EXPECT_EQ(max_abs_diff(os.final_state.p, o.final_state.p.slice(0, n, n + 1).value()), 0.0) << n;
      EXPECT_EQ(max_abs_diff(gs.dk, g.dk.slice(1, cu[n], cu[n + 1]).value()), 0.0) << n;
      EXPECT_EQ(max_abs_diff(gs.dv, g.dv.slice(1, cu[n], cu[n + 1]).value()), 0.0) << n;
      const auto d = gs.dtime_decay.to_doubles();
      for (int64_t c = 0; c < C; ++c) dtd[c] += d[c];
    }
    EXPECT_LT(max_abs_diff(g.dtime_decay, tensor::from_doubles(dtd, {C}, dtype::f64)), 1e-4);
  }
}

TEST(wkv4, decoding_step_matches_forward) {
  const int64_t B = 3, T = 12, C = 20;
  const tensor k = random_normal({B, T, C}, 31, 2.0).to(dtype::f32).value();
  const tensor v = random_normal({B, T, C}, 32).to(dtype::f32).value();
  const tensor td = random_uniform({C}, 33, -2, 1).to(dtype::f32).value();
  const tensor tf = random_normal({C}, 34).to(dtype::f32).value();
  ops::wkv4_inputs in{k, v, td, tf, tensor()};
  auto full = ops::wkv4_forward(in, {}, wkv4_form::recurrent).value();
  auto state = ops::wkv4_zero_state(B, C).value();
  for (int64_t t = 0; t < T; ++t) {
    auto y = ops::wkv4_step(k.select(1, t).value(), v.select(1, t).value(), td, tf, state);
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_EQ(max_abs_diff(*y, full.y.select(1, t).value()), 0.0) << t;
  }
  EXPECT_EQ(max_abs_diff(state.a, full.final_state.a), 0.0);
  EXPECT_EQ(max_abs_diff(state.p, full.final_state.p), 0.0);
}

TEST(wkv4, rejects_bad_input_with_named_errors) {
  ops::wkv4_inputs in{tensor::zeros({2, 5, 8}, dtype::f32).value(), tensor::zeros({2, 5, 8}, dtype::f32).value(),
                      tensor::zeros({7}, dtype::f32).value(), tensor::zeros({8}, dtype::f32).value(), tensor()};
  auto r = ops::wkv4_forward(in, {}, wkv4_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("time_decay"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("expected [8]"), std::string::npos) << r.error().message();
  in.time_decay = tensor::zeros({8}, dtype::f32).value();
  ops::wkv4_state half;
  half.a = tensor::zeros({2, 8}, dtype::f32).value();
  r = ops::wkv4_forward(in, half, wkv4_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("a, b, p"), std::string::npos) << r.error().message();
  in.cu_seqlens = tensor::from_vector(std::vector<int32_t>{0, 3, 5}, {3}, dtype::i32);
  r = ops::wkv4_forward(in, {}, wkv4_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("packed"), std::string::npos) << r.error().message();
  in.k = tensor::zeros({1, 5, 8}, dtype::f32).value();
  in.v = in.k;
  in.cu_seqlens = tensor::from_vector(std::vector<int32_t>{0, 3, 4}, {3}, dtype::i32);
  r = ops::wkv4_forward(in, {}, wkv4_form::recurrent);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("total_T = 5"), std::string::npos) << r.error().message();
}

// The fixture holds inputs, HF's outputs and final state (float64; keys exact in float32, which
// HF casts them to), the output from a fresh state, and torch autograd gradients through that
// same function with time_decay, time_first and the initial state as leaves.
TEST(wkv4, matches_hf_transformers_rwkv_linear_attention_cpu) {
  const std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/wkv4/";
  ASSERT_TRUE(std::filesystem::exists(dir + "k.npy")) << "missing fixture " << dir << " (tools/make_scan_op_fixtures.py)";
  auto load = [&](const char* name) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? t->to(dtype::f64).value() : tensor();
  };
  ops::wkv4_inputs in{load("k"), load("v"), load("time_decay"), load("time_first"), tensor()};
  const ops::wkv4_state init{load("a0"), load("b0"), load("p0")};
  const tensor dy = load("dy");
  const ops::wkv4_state dfin{load("da"), load("db"), load("dp")};
  for (wkv4_form form : {wkv4_form::reference, wkv4_form::recurrent, wkv4_form::chunk}) {
    auto o = ops::wkv4_forward(in, init, form).value();
    auto g = ops::wkv4_backward(in, init, dy, dfin, form).value();
    struct item {
      const char* name;
      const tensor& got;
      double tol;
    };
    // HF rounds k to float32 (exact here) and takes dk through that cast: dk has float32 accuracy.
    auto o_fresh = ops::wkv4_forward(in, {}, form).value();
    const item items[] = {{"y", o.y, 1e-12},           {"a", o.final_state.a, 1e-12},
                          {"b", o.final_state.b, 1e-12}, {"p", o.final_state.p, 1e-12},
                          {"y_fresh", o_fresh.y, 1e-12},
                          {"dk", g.dk, 1e-6},            {"dv", g.dv, 1e-12},
                          {"dtime_decay", g.dtime_decay, 1e-12}, {"dtime_first", g.dtime_first, 1e-12},
                          {"da0", g.d_initial_state.a, 1e-12},   {"db0", g.d_initial_state.b, 1e-12},
                          {"dp0", g.d_initial_state.p, 1e-12}};
    for (const item& it : items) {
      const tensor want = load(it.name);
      double scale = 1;
      for (double e : want.to_doubles()) scale = std::max(scale, std::fabs(e));
      const double err = max_abs_diff(it.got, want);
      EXPECT_LE(err, it.tol * scale) << ops::wkv4_form_name(form) << " " << it.name << " max error " << err;
      if (harness_verbose()) std::printf("wkv4 %s %s: max |ours - hf| = %.3e (scale %.3g)\n", ops::wkv4_form_name(form), it.name, err, scale);
    }
  }
}

}  // namespace
}  // namespace lrnn::testing
