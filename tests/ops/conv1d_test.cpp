// conv1d through the op harness: the CPU form in f64/f32/bf16/f16 against the f64 reference
// (output, final cache, dx, dweight, dbias, d_cache) with and without SiLU, document masks and
// caches; finite differences; odd T and C in {60, 64, 128}; widths 1-4; packed batches; plus
// cache carry across split sequences, packed = separate, the decoding step, errors and the
// cross-check against recurrentgemma's Conv1D (tests/data/conv1d).
#include "io/npy.h"
#include "ops/conv1d/conv1d.h"
#include "support/op_harness.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace lrnn::testing {
namespace {

using ops::conv1d_activation;
using ops::conv1d_form;

ops::conv1d_inputs inputs_of(const named_tensors& in) {
  ops::conv1d_inputs x;
  x.x = get_tensor(in, "x");
  x.weight = get_tensor(in, "weight");
  for (auto& [name, t] : {std::pair<const char*, tensor*>{"bias", &x.bias}, {"segment_pos", &x.segment_pos}, {"cu_seqlens", &x.cu_seqlens}})
    if (const tensor* f = find_tensor(in, name)) *t = *f;
  return x;
}

tensor optional(const named_tensors& in, const char* name) {
  const tensor* t = find_tensor(in, name);
  return t ? *t : tensor();
}

op_variant conv_variant(conv1d_form form, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = ops::conv1d_form_name(form);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& p, const named_tensors& in) -> result<named_tensors> {
    const auto& spec = std::any_cast<const ops::conv1d_spec&>(p);
    LRNN_ASSIGN_OR_RETURN(auto o, ops::conv1d_forward(spec, inputs_of(in), optional(in, "cache"), form));
    return named_tensors{{"y", o.y}, {"final_cache", o.final_cache}};
  };
  v.backward = [form](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& spec = std::any_cast<const ops::conv1d_spec&>(p);
    const tensor cache = optional(in, "cache");
    const ops::conv1d_inputs x = inputs_of(in);
    LRNN_ASSIGN_OR_RETURN(auto g, ops::conv1d_backward(spec, x, cache, get_tensor(d, "y"), optional(d, "final_cache"), form));
    named_tensors out{{"x", g.dx}, {"weight", g.dweight}};
    if (x.bias.defined()) out.emplace_back("bias", g.dbias);
    if (cache.defined()) out.emplace_back("cache", g.d_cache);
    return out;
  };
  return v;
}

op_family conv_family() {
  op_family f;
  f.name = "conv1d";
  f.reference = conv_variant(conv1d_form::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {conv_variant(conv1d_form::reference, {dtype::f64}),
                conv_variant(conv1d_form::cpu, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16})};
  f.policies = {{"cache", input_policy::f32_min}, {"segment_pos", input_policy::fixed}, {"cu_seqlens", input_policy::fixed}};
  return f;
}

struct case_opts {
  int64_t B = 2, T = 16, C = 8, W = 4;
  bool silu = false, bias = true, cache = false;
  std::vector<int64_t> resets;
  std::vector<int32_t> cu_seqlens;
  int fd_samples = 16;
  uint64_t seed = 5;
};

op_case conv_case(const case_opts& o) {
  op_case c;
  c.name = fmt::format("B{}_T{}_C{}_W{}", o.B, o.T, o.C, o.W);
  ops::conv1d_spec spec;
  spec.activation = o.silu ? conv1d_activation::silu : conv1d_activation::none;
  c.params = spec;
  const int64_t N = o.cu_seqlens.empty() ? o.B : static_cast<int64_t>(o.cu_seqlens.size()) - 1;
  c.inputs = {{"x", random_normal({o.B, o.T, o.C}, o.seed + 1)}, {"weight", random_normal({o.W, o.C}, o.seed + 2, 0.6)}};
  c.grad_inputs = {"x", "weight"};
  if (o.bias) {
    c.inputs.emplace_back("bias", random_normal({o.C}, o.seed + 3));
    c.grad_inputs.push_back("bias");
  }
  if (o.cache) {
    c.inputs.emplace_back("cache", random_normal({N, o.W - 1, o.C}, o.seed + 4));
    c.grad_inputs.push_back("cache");
  }
  if (!o.resets.empty()) {
    std::vector<int32_t> pos(o.B * o.T);
    for (int64_t b = 0; b < o.B; ++b) {
      int32_t p = 2;
      for (int64_t t = 0; t < o.T; ++t) {
        if (std::find(o.resets.begin(), o.resets.end(), t) != o.resets.end()) p = 0;
        pos[b * o.T + t] = p++;
      }
    }
    c.inputs.emplace_back("segment_pos", tensor::from_vector(pos, {o.B, o.T}, dtype::i32));
  }
  if (!o.cu_seqlens.empty())
    c.inputs.emplace_back("cu_seqlens", tensor::from_vector(o.cu_seqlens, {static_cast<int64_t>(o.cu_seqlens.size())}, dtype::i32));
  c.fd_samples = o.fd_samples;
  c.seed = o.seed;
  return c;
}

case_opts with(std::function<void(case_opts&)> f) {
  case_opts o;
  f(o);
  return o;
}

LRNN_OP_CASE(conv1d, tiny_fd_cache_resets, conv_family(), conv_case(with([](case_opts& o) { o.T = 7, o.C = 3, o.cache = true, o.resets = {2, 5}, o.fd_samples = 60; })))
LRNN_OP_CASE(conv1d, tiny_fd_silu_reset_in_cache_window, conv_family(), conv_case(with([](case_opts& o) { o.T = 7, o.C = 3, o.cache = true, o.silu = true, o.resets = {6}, o.fd_samples = 60; })))
LRNN_OP_CASE(conv1d, t1_c64_cache, conv_family(), conv_case(with([](case_opts& o) { o.T = 1, o.C = 64, o.cache = true; })))
LRNN_OP_CASE(conv1d, t2_shorter_than_cache, conv_family(), conv_case(with([](case_opts& o) { o.T = 2, o.C = 60, o.cache = true, o.silu = true; })))
LRNN_OP_CASE(conv1d, t63_c60_no_bias, conv_family(), conv_case(with([](case_opts& o) { o.T = 63, o.C = 60, o.bias = false; })))
LRNN_OP_CASE(conv1d, t65_c128_silu_cache, conv_family(), conv_case(with([](case_opts& o) { o.B = 1, o.T = 65, o.C = 128, o.silu = true, o.cache = true, o.resets = {0, 64}; })))
LRNN_OP_CASE(conv1d, t1000_c64, conv_family(), conv_case(with([](case_opts& o) { o.B = 1, o.T = 1000, o.C = 64, o.cache = true, o.resets = {300}, o.fd_samples = 4; })))
LRNN_OP_CASE(conv1d, width1, conv_family(), conv_case(with([](case_opts& o) { o.T = 9, o.C = 16, o.W = 1; })))
LRNN_OP_CASE(conv1d, width2_cache, conv_family(), conv_case(with([](case_opts& o) { o.T = 9, o.C = 16, o.W = 2, o.cache = true, o.resets = {4}; })))
LRNN_OP_CASE(conv1d, packed_batch, conv_family(), conv_case(with([](case_opts& o) { o.B = 1, o.T = 133, o.C = 64, o.cache = true, o.cu_seqlens = {0, 2, 2, 70, 133}, o.resets = {40, 131}; })))

TEST(conv1d, cache_carry_across_split_sequences_equals_one_pass) {
  const int64_t T = 50, C = 12, W = 4;
  ops::conv1d_inputs in;
  in.x = random_normal({1, T, C}, 1);
  in.weight = random_normal({W, C}, 2);
  in.bias = random_normal({C}, 3);
  std::vector<int32_t> pos(T);
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t < 20 ? t + 3 : t < 35 ? t - 20 : t - 35);
  in.segment_pos = tensor::from_vector(pos, {1, T}, dtype::i32);
  const tensor cache0 = random_normal({1, W - 1, C}, 4), dy = random_normal({1, T, C}, 5), dc = random_normal({1, W - 1, C}, 6);
  const ops::conv1d_spec spec{conv1d_activation::silu};
  const std::vector<int64_t> cuts{0, 1, 2, 21, 22, 36, 49, T};
  for (conv1d_form form : {conv1d_form::reference, conv1d_form::cpu}) {
    auto one = ops::conv1d_forward(spec, in, cache0, form).value();
    auto gone = ops::conv1d_backward(spec, in, cache0, dy, dc, form).value();
    std::vector<tensor> caches{cache0};
    std::vector<ops::conv1d_inputs> parts;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      ops::conv1d_inputs p = in;
      p.x = in.x.slice(1, cuts[i], cuts[i + 1]).value();
      p.segment_pos = in.segment_pos.slice(1, cuts[i], cuts[i + 1]).value();
      auto o = ops::conv1d_forward(spec, p, caches.back(), form).value();
      EXPECT_LT(max_abs_diff(o.y, one.y.slice(1, cuts[i], cuts[i + 1]).value()), 1e-14) << i;
      caches.push_back(o.final_cache);
      parts.push_back(p);
    }
    EXPECT_LT(max_abs_diff(caches.back(), one.final_cache), 1e-14);
    tensor g = dc;
    std::vector<double> dw(W * C, 0.0);
    for (size_t i = parts.size(); i-- > 0;) {
      auto gr = ops::conv1d_backward(spec, parts[i], caches[i], dy.slice(1, cuts[i], cuts[i + 1]).value(), g, form).value();
      EXPECT_LT(max_abs_diff(gr.dx, gone.dx.slice(1, cuts[i], cuts[i + 1]).value()), 1e-13) << i;
      const auto d = gr.dweight.to_doubles();
      for (int64_t j = 0; j < W * C; ++j) dw[j] += d[j];
      g = gr.d_cache;
    }
    EXPECT_LT(max_abs_diff(g, gone.d_cache), 1e-13);
    EXPECT_LT(max_abs_diff(tensor::from_doubles(dw, {W, C}, dtype::f64), gone.dweight), 1e-12);
  }
}

TEST(conv1d, packed_batch_equals_separate_sequences) {
  const std::vector<int32_t> cu{0, 2, 2, 40, 71};
  const int64_t T = 71, C = 32, N = 4, W = 4;
  ops::conv1d_inputs packed;
  packed.x = random_normal({1, T, C}, 21);
  packed.weight = random_normal({W, C}, 22);
  packed.bias = random_normal({C}, 23);
  packed.cu_seqlens = tensor::from_vector(cu, {N + 1}, dtype::i32);
  const tensor cache = random_normal({N, W - 1, C}, 24), dy = random_normal({1, T, C}, 25);
  const ops::conv1d_spec spec{conv1d_activation::silu};
  auto o = ops::conv1d_forward(spec, packed, cache, conv1d_form::cpu).value();
  auto g = ops::conv1d_backward(spec, packed, cache, dy, tensor(), conv1d_form::cpu).value();
  for (int64_t n = 0; n < N; ++n) {
    ops::conv1d_inputs one = packed;
    one.cu_seqlens = tensor();
    one.x = packed.x.slice(1, cu[n], cu[n + 1]).value();
    const tensor cn = cache.slice(0, n, n + 1).value();
    auto os = ops::conv1d_forward(spec, one, cn, conv1d_form::cpu).value();
    auto gs = ops::conv1d_backward(spec, one, cn, dy.slice(1, cu[n], cu[n + 1]).value(), tensor(), conv1d_form::cpu).value();
    EXPECT_EQ(max_abs_diff(os.y, o.y.slice(1, cu[n], cu[n + 1]).value()), 0.0) << n;
    EXPECT_EQ(max_abs_diff(os.final_cache, o.final_cache.slice(0, n, n + 1).value()), 0.0) << n;
    EXPECT_EQ(max_abs_diff(gs.dx, g.dx.slice(1, cu[n], cu[n + 1]).value()), 0.0) << n;
    EXPECT_EQ(max_abs_diff(gs.d_cache, g.d_cache.slice(0, n, n + 1).value()), 0.0) << n;
  }
}

TEST(conv1d, decoding_step_matches_forward) {
  const int64_t B = 3, T = 9, C = 20, W = 4;
  const tensor x = random_normal({B, T, C}, 31).to(dtype::f32).value();
  const tensor w = random_normal({W, C}, 32).to(dtype::f32).value();
  const tensor b = random_normal({C}, 33).to(dtype::f32).value();
  const ops::conv1d_spec spec{conv1d_activation::silu};
  auto full = ops::conv1d_forward(spec, {x, w, b, tensor(), tensor()}, tensor(), conv1d_form::cpu).value();
  tensor cache = tensor::zeros({B, W - 1, C}, dtype::f32).value();
  for (int64_t t = 0; t < T; ++t) {
    auto y = ops::conv1d_step(spec, x.select(1, t).value(), w, b, cache);
    ASSERT_TRUE(y.ok()) << y.error().to_string();
    EXPECT_LT(max_abs_diff(*y, full.y.select(1, t).value()), 1e-6) << t;
  }
  EXPECT_EQ(max_abs_diff(cache, full.final_cache), 0.0);
}

TEST(conv1d, rejects_bad_input_with_named_errors) {
  ops::conv1d_inputs in{tensor::zeros({2, 5, 8}, dtype::f32).value(), tensor::zeros({4, 7}, dtype::f32).value(), tensor(),
                        tensor(), tensor()};
  auto r = ops::conv1d_forward({}, in, tensor(), conv1d_form::cpu);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("weight is f32[4, 7] cpu, expected [W, 8]"), std::string::npos) << r.error().message();
  in.weight = tensor::zeros({4, 8}, dtype::f32).value();
  r = ops::conv1d_forward({}, in, tensor::zeros({2, 4, 8}, dtype::f32).value(), conv1d_form::cpu);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("expected [2, 3, 8]"), std::string::npos) << r.error().message();
  in.bias = tensor::zeros({9}, dtype::f32).value();
  r = ops::conv1d_forward({}, in, tensor(), conv1d_form::cpu);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("bias"), std::string::npos) << r.error().message();
}

// recurrentgemma's torch Conv1D: a prompt with document starts (one inside the cache window),
// torch autograd through it, then three decoding steps from its cache.
TEST(conv1d, matches_recurrentgemma_conv1d) {
  const std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/conv1d/";
  ASSERT_TRUE(std::filesystem::exists(dir + "x.npy")) << "missing fixture " << dir << " (tools/make_scan_op_fixtures.py)";
  auto load = [&](const char* name, bool as_f64 = true) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? (as_f64 ? t->to(dtype::f64).value() : *t) : tensor();
  };
  ops::conv1d_inputs in{load("x"), load("weight"), load("bias"), load("segment_pos", false), tensor()};
  const tensor dy = load("dy"), x_steps = load("x_steps");
  auto check = [&](const char* name, const tensor& got, const char* form) {
    const tensor want = load(name);
    double scale = 1;
    for (double e : want.to_doubles()) scale = std::max(scale, std::fabs(e));
    const double err = max_abs_diff(got, want);
    EXPECT_LE(err, 1e-12 * scale) << form << " " << name << " max error " << err;
    if (harness_verbose()) std::printf("conv1d %s %s: max |ours - recurrentgemma| = %.3e (scale %.3g)\n", form, name, err, scale);
  };
  for (conv1d_form form : {conv1d_form::reference, conv1d_form::cpu}) {
    const char* fn = ops::conv1d_form_name(form);
    auto o = ops::conv1d_forward({}, in, tensor(), form).value();
    auto g = ops::conv1d_backward({}, in, tensor(), dy, tensor(), form).value();
    check("y", o.y, fn);
    check("cache", o.final_cache, fn);
    check("dx", g.dx, fn);
    check("dweight", g.dweight, fn);
    check("dbias", g.dbias, fn);
    tensor cache = o.final_cache;
    const int64_t B = x_steps.size(0), S = x_steps.size(1), C = x_steps.size(2);
    tensor ys = tensor::zeros({B, S, C}, dtype::f64).value();  // [B, steps, C]
    for (int64_t s = 0; s < S; ++s) {
      ops::conv1d_inputs step = in;
      step.x = x_steps.slice(1, s, s + 1).value();
      step.segment_pos = tensor();
      auto os = ops::conv1d_forward({}, step, cache, form).value();
      cache = os.final_cache;
      ASSERT_TRUE(ys.slice(1, s, s + 1).value().copy_from(os.y).ok());
    }
    check("y_steps", ys, fn);
    check("cache_after_steps", cache, fn);
  }
}

}  // namespace
}  // namespace lrnn::testing
