// decay_attn_step on CUDA against the CPU step, for every spec variant, several steps in a row
// (state carried on the device, updated in place), f32 / bf16 / f16 tokens, K and V that take the
// 16-byte path (V % 4 == 0) and the scalar one; skipped where no CUDA device is visible.
#include "ops/decay_attn/decay_attn.h"
#include "ops/decay_attn_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace lrnn {
namespace {

#define LRNN_REQUIRE_CUDA() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

using testing::da::variant;
using testing::da::spec_of;

struct rng_t {
  std::mt19937 g;
  std::normal_distribution<double> nd;
  explicit rng_t(uint32_t seed) : g(seed) {}
  tensor normal(const shape_t& s, dtype t, double mu = 0, double sd = 1) {
    std::vector<double> v(static_cast<size_t>(shape_numel(s)));
    for (double& x : v) x = mu + sd * nd(g);
    return tensor::from_doubles(v, s, t);
  }
  tensor logsigmoid(const shape_t& s, double shift) {
    std::vector<double> v(static_cast<size_t>(shape_numel(s)));
    for (double& x : v) {
      const double z = nd(g) + shift;
      x = -std::log1p(std::exp(-z));
    }
    return tensor::from_doubles(v, s, dtype::f32);
  }
};

double rel_err(const tensor& a, const tensor& ref) {
  const auto x = a.to(device::cpu()).value().to_doubles(), r = ref.to(device::cpu()).value().to_doubles();
  double m = 0, e = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) return INFINITY;
    m = std::max(m, std::fabs(r[i]));
    e = std::max(e, std::fabs(x[i] - r[i]));
  }
  return e / std::max(m, 1e-30);
}

void run_case(variant var, dtype t, int64_t B, int64_t H, int64_t K, int64_t V, int steps, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << testing::da::variant_name(var) << " " << dtype_name(t) << " B=" << B << " H=" << H << " K=" << K << " V=" << V);
  const ops::decay_attn_spec spec = spec_of(var);
  rng_t rng(seed);
  ops::decay_attn_state cpu_state, gpu_state;  // both start absent (zeros)
  const auto cuda = [](const tensor& x) { return x.defined() ? x.to(device::cuda()).value() : tensor(); };
  tensor u = spec.bonus ? rng.normal({H, K}, dtype::f32, 0, 0.5) : tensor();
  tensor g_head = spec.decay == ops::decay_kind::per_head_const ? rng.logsigmoid({H}, 3.0) : tensor();
  for (int s = 0; s < steps; ++s) {
    ops::decay_attn_inputs tok;
    tok.q = rng.normal({B, H, K}, t);
    tok.k = rng.normal({B, H, K}, t);
    tok.v = rng.normal({B, H, V}, t);
    switch (spec.decay) {
      case ops::decay_kind::none: break;
      case ops::decay_kind::per_head_const: tok.g = g_head; break;
      case ops::decay_kind::per_token_scalar: tok.g = rng.logsigmoid({B, H}, 2.0); break;
      case ops::decay_kind::per_token_key: tok.g = rng.logsigmoid({B, H, K}, 2.0); break;
    }
    if (spec.input_gate == ops::input_gate_kind::exponential) tok.i = rng.normal({B, H}, dtype::f32, 0, 2.0);
    if (spec.input_gate == ops::input_gate_kind::sigmoid) tok.i = rng.logsigmoid({B, H}, 0.0);
    tok.u = u;
    ops::decay_attn_inputs dtok{cuda(tok.q), cuda(tok.k), cuda(tok.v), cuda(tok.g), cuda(tok.i), cuda(tok.u), tensor()};
    tensor o_cpu = ops::decay_attn_step(spec, tok, cpu_state).value();
    auto r = ops::decay_attn_step(spec, dtok, gpu_state);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_TRUE(r->dev().is_cuda());
    ASSERT_EQ(r->type(), t);
    // Same inputs in both; the difference is fp32 summation order, then the output rounding.
    const double tol_o = t == dtype::f32 ? 2e-5 : t == dtype::bf16 ? 1e-2 : 2e-3;
    EXPECT_LE(rel_err(*r, o_cpu), tol_o) << "o at step " << s;
    EXPECT_LE(rel_err(gpu_state.s, cpu_state.s), 2e-5) << "state s at step " << s;
    if (spec.normalizer) {
      EXPECT_LE(rel_err(gpu_state.n, cpu_state.n), 2e-5) << "state n at step " << s;
    }
    if (spec.input_gate == ops::input_gate_kind::exponential) {
      EXPECT_LE(rel_err(gpu_state.m, cpu_state.m), 1e-6) << "state m at step " << s;
    }
  }
}

TEST(decay_attn_step_cuda, matches_cpu_every_variant) {
  LRNN_REQUIRE_CUDA();
  uint32_t seed = 1;
  for (variant v : {variant::none, variant::retnet, variant::simple_gla, variant::gla, variant::rwkv6, variant::mlstm,
                    variant::mlstm_sig}) {
    run_case(v, dtype::f32, 3, 4, 64, 64, 4, seed++);
    run_case(v, dtype::bf16, 2, 3, 128, 128, 3, seed++);
    run_case(v, dtype::f32, 2, 2, 60, 33, 3, seed++);  // scalar column path, K not a multiple of 8
  }
  run_case(variant::gla, dtype::f16, 2, 2, 128, 256, 3, seed++);  // several column tiles
  run_case(variant::mlstm, dtype::f16, 1, 1, 16, 8, 5, seed++);
}

TEST(decay_attn_step_cuda, state_is_updated_in_place) {
  LRNN_REQUIRE_CUDA();
  const ops::decay_attn_spec spec = spec_of(variant::simple_gla);
  rng_t rng(7);
  ops::decay_attn_state st;
  st.s = tensor::zeros({2, 2, 8, 8}, dtype::f32, device::cuda()).value();
  void* before = st.s.raw_data();
  ops::decay_attn_inputs tok{rng.normal({2, 2, 8}, dtype::f32).to(device::cuda()).value(),
                             rng.normal({2, 2, 8}, dtype::f32).to(device::cuda()).value(),
                             rng.normal({2, 2, 8}, dtype::f32).to(device::cuda()).value(),
                             rng.logsigmoid({2, 2}, 1.0).to(device::cuda()).value(), tensor(), tensor(), tensor()};
  ASSERT_TRUE(ops::decay_attn_step(spec, tok, st).ok());
  EXPECT_EQ(st.s.raw_data(), before);
  double sum = 0;
  for (double x : st.s.to(device::cpu()).value().to_doubles()) sum += std::fabs(x);
  EXPECT_GT(sum, 0.0);
}

TEST(decay_attn_step_cuda, bad_inputs_are_errors) {
  LRNN_REQUIRE_CUDA();
  const ops::decay_attn_spec spec = spec_of(variant::gla);
  auto z = [](const shape_t& s, dtype t = dtype::f32) { return tensor::zeros(s, t, device::cuda()).value(); };
  ops::decay_attn_state st;
  ops::decay_attn_inputs tok{z({2, 2, 8}), z({2, 2, 8}), z({2, 2, 8}), z({2, 2, 7}), tensor(), tensor(), tensor()};
  auto r = ops::decay_attn_step(spec, tok, st);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("g is"), std::string::npos) << r.error().message();
  tok.g = z({2, 2, 8});
  tok.k = z({2, 2, 8}, dtype::bf16);
  EXPECT_EQ(ops::decay_attn_step(spec, tok, st).error().code(), status_code::invalid_argument);
  tok.k = z({2, 2, 8});
  st.s = z({2, 2, 8, 9});
  EXPECT_EQ(ops::decay_attn_step(spec, tok, st).error().code(), status_code::invalid_argument);
  st.s = tensor::zeros({2, 2, 8, 8}, dtype::f32).value();  // state on the host
  EXPECT_EQ(ops::decay_attn_step(spec, tok, st).error().code(), status_code::invalid_argument);
}

}  // namespace
}  // namespace lrnn
