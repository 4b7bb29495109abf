// Every differentiable dense op, decay_attn and conv1d (ag::*) against f64 central finite
// differences of a random linear functional of its output, and f32 against f64.
#include "ops/conv1d/autograd.h"
#include "ops/decay_attn/autograd.h"
#include "ops/dense/autograd.h"
#include "support/ag_gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lrnn::testing {
namespace {

using ag::var;
using vars = std::vector<var>;

struct ag_case {
  std::string name;
  ag_function f;
  std::vector<tensor> inputs;
  std::vector<bool> requires_grad;
  double f32_tol = 2e-5;
};

tensor rn(const shape_t& s, uint64_t seed, double std = 1.0, double mean = 0.0) { return random_normal(s, seed, std, mean); }
tensor ids_tensor(const std::vector<int64_t>& v, const shape_t& s) { return tensor::from_vector(v, s, dtype::i64); }

std::vector<ag_case> cases() {
  std::vector<ag_case> c;
  c.push_back({"linear_bias", [](const vars& in) { return ag::linear(in[0], in[1], in[2]); },
               {rn({2, 3, 5}, 1), rn({4, 5}, 2), rn({4}, 3)}, {}});
  c.push_back({"linear_no_bias_many_rows", [](const vars& in) { return ag::linear(in[0], in[1]); },
               {rn({40, 6}, 4), rn({3, 6}, 5)}, {}});
  c.push_back({"linear_weight_only", [](const vars& in) { return ag::linear(in[0], in[1]); },
               {rn({4, 6}, 4), rn({3, 6}, 5)}, {false, true}});
  const tensor ids = ids_tensor({0, 3, 3, 1, 4, 0}, {2, 3});
  c.push_back({"embedding", [ids](const vars& in) { return ag::embedding(ids, in[0]); }, {rn({5, 4}, 6)}, {}});
  c.push_back({"rms_norm", [](const vars& in) { return ag::rms_norm(in[0], in[1], 1e-6); }, {rn({3, 7}, 7), rn({7}, 8)}, {}});
  c.push_back({"rms_norm_offset", [](const vars& in) { return ag::rms_norm(in[0], in[1], 1e-5, 1.0); },
               {rn({3, 7}, 9), rn({7}, 10, 0.1)}, {}});
  c.push_back({"rms_norm_no_weight", [](const vars& in) { return ag::rms_norm(in[0], var(), 1e-6); }, {rn({2, 2, 6}, 11)}, {}});
  c.push_back({"group_rms_norm_shared", [](const vars& in) { return ag::group_rms_norm(in[0], 3, in[1], 1e-5); },
               {rn({2, 4, 12}, 12), rn({4}, 13)}, {}});
  c.push_back({"group_rms_norm_full", [](const vars& in) { return ag::group_rms_norm(in[0], 2, in[1], 1e-5); },
               {rn({3, 8}, 14), rn({8}, 15)}, {}});
  c.push_back({"group_rms_norm_no_weight", [](const vars& in) { return ag::group_rms_norm(in[0], 2, var(), 1e-5); },
               {rn({3, 8}, 16)}, {}});
  c.push_back({"layer_norm", [](const vars& in) { return ag::layer_norm(in[0], in[1], in[2], 1e-5); },
               {rn({3, 6}, 17, 2.0, 0.5), rn({6}, 18), rn({6}, 19)}, {}});
  c.push_back({"group_norm", [](const vars& in) { return ag::group_norm(in[0], 2, in[1], in[2], 1e-5); },
               {rn({2, 3, 8}, 20), rn({8}, 21), rn({8}, 22)}, {}});
  const std::pair<const char*, ops::activation> acts[] = {
      {"identity", ops::activation::identity}, {"silu", ops::activation::silu},       {"sigmoid", ops::activation::sigmoid},
      {"tanh", ops::activation::tanh},         {"relu", ops::activation::relu},       {"relu_squared", ops::activation::relu_squared},
      {"gelu_tanh", ops::activation::gelu_tanh}, {"gelu_erf", ops::activation::gelu_erf}, {"softplus", ops::activation::softplus},
      {"logsigmoid", ops::activation::logsigmoid}, {"exp", ops::activation::exp}};
  uint64_t s = 30;
  for (auto [n, a] : acts)
    c.push_back({std::string("activation_") + n, [a](const vars& in) { return ag::activation(in[0], a); }, {rn({4, 5}, s++, 2.0)}, {}});
  c.push_back({"add_broadcast", [](const vars& in) { return ag::add(in[0], in[1]); }, {rn({2, 3, 4}, 50), rn({3, 4}, 51)}, {}});
  c.push_back({"sub_broadcast", [](const vars& in) { return ag::sub(in[0], in[1]); }, {rn({2, 3, 4}, 52), rn({4}, 53)}, {}});
  c.push_back({"mul_broadcast", [](const vars& in) { return ag::mul(in[0], in[1]); }, {rn({2, 3, 4}, 54), rn({4}, 55)}, {}});
  c.push_back({"mul_same", [](const vars& in) { return ag::mul(in[0], in[1]); }, {rn({3, 4}, 56), rn({3, 4}, 57)}, {}});
  c.push_back({"mul_self", [](const vars& in) { return ag::mul(in[0], in[0]); }, {rn({3, 4}, 58)}, {}});
  c.push_back({"scale", [](const vars& in) { return ag::scale(in[0], -0.37); }, {rn({5}, 59)}, {}});
  c.push_back({"add_scaled", [](const vars& in) { return ag::add_scaled(in[0], in[1], 0.6); }, {rn({2, 5}, 60), rn({2, 5}, 61)}, {}});
  c.push_back({"softcap", [](const vars& in) { return ag::softcap(in[0], 3.0); }, {rn({4, 5}, 62, 4.0)}, {}});
  c.push_back({"clamp_min", [](const vars& in) { return ag::clamp_min(in[0], -0.3); }, {rn({4, 5}, 63)}, {}});
  c.push_back({"reshape_transpose", [](const vars& in) -> result<var> {
                 LRNN_ASSIGN_OR_RETURN(var r, ag::reshape(in[0], {3, 2, 4}));
                 LRNN_ASSIGN_OR_RETURN(var t, ag::transpose(r, 0, 2));
                 return ag::mul(t, t);
               }, {rn({6, 4}, 64)}, {}});
  c.push_back({"slice_concat", [](const vars& in) -> result<var> {
                 LRNN_ASSIGN_OR_RETURN(var a, ag::slice(in[0], 1, 1, 3));
                 LRNN_ASSIGN_OR_RETURN(var b, ag::concat({a, in[1], in[0]}, 1));
                 return ag::mul(b, b);
               }, {rn({2, 4, 3}, 65), rn({2, 1, 3}, 66)}, {}});
  c.push_back({"token_shift", [](const vars& in) -> result<var> {
                 LRNN_ASSIGN_OR_RETURN(var d, ag::token_shift(in[0]));
                 return ag::mul(d, in[0]);
               }, {rn({2, 5, 3}, 67)}, {}});
  const tensor targets = ids_tensor({1, 4, -100, 0, 2, 4}, {2, 3});
  c.push_back({"cross_entropy", [targets](const vars& in) { return ag::cross_entropy(in[0], targets); }, {rn({2, 3, 5}, 68, 3.0)}, {}});
  c.push_back({"cross_entropy_z_loss", [targets](const vars& in) {
                 ag::cross_entropy_options o;
                 o.z_loss = 1e-2;
                 return ag::cross_entropy(in[0], targets, o);
               }, {rn({2, 3, 5}, 69, 3.0)}, {}});
  const tensor flat_targets = ids_tensor({3, 7, 0}, {3});
  c.push_back({"cross_entropy_large_logits", [flat_targets](const vars& in) -> result<var> {
                 LRNN_ASSIGN_OR_RETURN(var sh, ag::add(in[0], var(tensor::full({8}, 500.0, in[0].type()).value())));
                 return ag::cross_entropy(sh, flat_targets);
               }, {rn({3, 8}, 70, 2.0)}, {}});
  // decay_attn: GLA (per-key gate, chunk and recurrent), RetNet (per-head constant decay, parallel),
  // RWKV-6 (bonus), mLSTM (exponential input gate + normaliser).
  const int64_t B = 2, T = 19, H = 2, K = 4, V = 3;
  auto gla_inputs = [&](uint64_t seed) {
    tensor g = random_uniform({B, T, H, K}, seed + 3, -0.9, -0.05);
    return std::vector<tensor>{rn({B, T, H, K}, seed), rn({B, T, H, K}, seed + 1), rn({B, T, H, V}, seed + 2), g};
  };
  for (auto form : {ops::decay_attn_form::chunk, ops::decay_attn_form::recurrent, ops::decay_attn_form::parallel}) {
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    ops::decay_attn_options opt;
    opt.chunk_size = 16;
    c.push_back({std::string("decay_attn_gla_") + ops::decay_attn_form_name(form),
                 [spec, form, opt](const vars& in) { return ag::decay_attn(spec, in[0], in[1], in[2], in[3], var(), var(), form, opt); },
                 gla_inputs(100), {}});
  }
  {
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_head_const;
    const tensor lg = tensor::from_doubles({std::log(1 - 1.0 / 32), std::log(1 - 1.0 / 64)}, {H}, dtype::f64);
    c.push_back({"decay_attn_retnet_chunk", [spec, lg](const vars& in) {
                   return ag::decay_attn(spec, in[0], in[1], in[2], var(lg.to(in[0].type()).value()), var(), var(),
                                         ops::decay_attn_form::chunk);
                 }, {rn({B, T, H, K}, 110), rn({B, T, H, K}, 111), rn({B, T, H, V}, 112)}, {}});
  }
  {
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_key;
    spec.bonus = true;
    std::vector<tensor> in = gla_inputs(120);
    in.push_back(rn({H, K}, 125));
    c.push_back({"decay_attn_rwkv6_chunk", [spec](const vars& v) {
                   return ag::decay_attn(spec, v[0], v[1], v[2], v[3], var(), v[4], ops::decay_attn_form::chunk);
                 }, in, {}});
  }
  {
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_token_scalar;
    spec.input_gate = ops::input_gate_kind::exponential;
    spec.normalizer = true;
    std::vector<tensor> in = {rn({B, T, H, K}, 130), rn({B, T, H, K}, 131), rn({B, T, H, V}, 132),
                              random_uniform({B, T, H}, 133, -0.5, -0.01), rn({B, T, H}, 134)};
    c.push_back({"decay_attn_mlstm_recurrent", [spec](const vars& v) {
                   return ag::decay_attn(spec, v[0], v[1], v[2], v[3], v[4], var(), ops::decay_attn_form::recurrent);
                 }, in, {}, 1e-4});
  }
  for (auto act : {ops::conv1d_activation::none, ops::conv1d_activation::silu}) {
    ops::conv1d_spec spec;
    spec.activation = act;
    c.push_back({act == ops::conv1d_activation::silu ? "conv1d_silu" : "conv1d",
                 [spec](const vars& in) { return ag::conv1d(spec, in[0], in[1], in[2]); },
                 {rn({2, 7, 5}, 140), rn({4, 5}, 141), rn({5}, 142)}, {}});
  }
  {
    ops::conv1d_spec spec;
    spec.activation = ops::conv1d_activation::silu;
    c.push_back({"conv1d_no_bias_reference", [spec](const vars& in) { return ag::conv1d(spec, in[0], in[1], var(), ops::conv1d_form::reference); },
                 {rn({1, 6, 3}, 143), rn({3, 3}, 144)}, {}});
  }
  return c;
}

class ag_ops : public ::testing::TestWithParam<ag_case> {};

TEST_P(ag_ops, gradients_match_finite_differences) {
  const ag_case& c = GetParam();
  ag_gradcheck_options o;
  o.requires_grad = c.requires_grad;
  o.rtol = 1e-6;
  o.atol = 1e-8;
  const auto rep = ag_gradcheck(c.f, c.inputs, o);
  EXPECT_TRUE(rep.pass) << c.name << "\n" << rep.summary;
  EXPECT_GT(rep.checked, 0);
}

TEST_P(ag_ops, f32_matches_f64) {
  const ag_case& c = GetParam();
  auto err = ag_f32_vs_f64(c.f, c.inputs, c.requires_grad);
  ASSERT_TRUE(err.ok()) << err.error().message();
  EXPECT_LE(*err, c.f32_tol) << c.name;
}

INSTANTIATE_TEST_SUITE_P(all, ag_ops, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<ag_case>& i) { return i.param.name; });

// The helper itself must be able to fail: a wrong backward is caught.
TEST(ag_gradcheck_helper, catches_a_wrong_gradient) {
  auto wrong = [](const vars& in) -> result<var> {
    LRNN_ASSIGN_OR_RETURN(var y, ag::activation(in[0], ops::activation::tanh));
    // Forward tanh, but a backward that forgets the derivative.
    return ag::make_result(y.value(), {in[0]}, [](const tensor& g) -> result<std::vector<tensor>> { return std::vector<tensor>{g}; },
                           "wrong");
  };
  const auto rep = ag_gradcheck(wrong, {rn({6}, 200)});
  EXPECT_FALSE(rep.pass);
}

TEST(ag_cross_entropy, value_counts_and_ignore) {
  // Uniform logits: loss = log V for every counted token.
  const tensor targets = ids_tensor({1, -100, 2}, {3});
  int64_t counted = 0;
  auto l = ag::cross_entropy(var(tensor::zeros({3, 4}, dtype::f64).value()), targets, {}, &counted);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(counted, 2);
  EXPECT_NEAR(l->value().to_doubles()[0], std::log(4.0), 1e-12);
  // All ignored: loss 0, gradient 0, no NaN.
  var x(rn({2, 4}, 201), true);
  auto l2 = ag::cross_entropy(x, ids_tensor({-100, -100}, {2}), {}, &counted);
  ASSERT_TRUE(l2.ok());
  EXPECT_EQ(counted, 0);
  EXPECT_EQ(l2->value().to_doubles()[0], 0.0);
  ASSERT_TRUE(ag::backward(*l2).ok());
  for (double v : x.grad().to_doubles()) EXPECT_EQ(v, 0.0);
  // Out-of-vocabulary target is an error, not a crash.
  EXPECT_FALSE(ag::cross_entropy(var(rn({1, 4}, 202)), ids_tensor({4}, {1})).ok());
  // Huge logits stay finite (log-sum-exp).
  auto l3 = ag::cross_entropy(var(tensor::from_doubles({1e4, 0, -1e4}, {1, 3}, dtype::f32)), ids_tensor({1}, {1}));
  ASSERT_TRUE(l3.ok());
  EXPECT_NEAR(l3->value().to_doubles()[0], 1e4, 1e-2);
}

TEST(ag_ops_errors, mismatched_dtypes_and_shapes) {
  var a(rn({2, 3}, 1), true);
  var b(rn({3}, 2).to(dtype::f32).value(), true);
  EXPECT_FALSE(ag::add(a, b).ok());
  EXPECT_FALSE(ag::mul(a, var(rn({2}, 3), true)).ok());
  EXPECT_FALSE(ag::linear(a, var(rn({4, 2}, 4), true)).ok());
}

}  // namespace
}  // namespace lrnn::testing
