// The C ABI (lrnn.h): codes and messages for bad input, and results equal to the C++ entry points
// on host pointers (device -1, every build) and, where a GPU is visible, the CUDA step and the
// allocator statistics on device pointers.
#include "lrnn/lrnn.h"

#include "lrnn/tensor.h"
#include "ops/decay_attn/decay_attn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

namespace lrnn {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, double mu = 0, double sd = 1) {
  std::mt19937 g(seed);
  std::normal_distribution<double> nd(mu, sd);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(nd(g));
  return v;
}
std::vector<float> logsig(std::vector<float> v) {
  for (float& x : v) x = static_cast<float>(-std::log1p(std::exp(-static_cast<double>(x))));
  return v;
}
tensor host(const std::vector<float>& v, const shape_t& s) {
  return tensor::from_vector(v, s, dtype::f32);
}
double max_diff(const std::vector<float>& a, const tensor& b) {
  const auto r = b.to_doubles();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - r[i]));
  return a.size() == r.size() ? m : INFINITY;
}

TEST(capi, version_and_errors) {
  EXPECT_STREQ(lrnn_version(), LRNN_VERSION);
  EXPECT_EQ(lrnn_abi_version(), LRNN_ABI_VERSION);
  lrnn_decay_attn_spec spec;
  EXPECT_EQ(lrnn_decay_attn_spec_for(42, &spec), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("variant is 42"), std::string::npos) << lrnn_last_error();
  EXPECT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_MLSTM, &spec), LRNN_OK);
  EXPECT_STREQ(lrnn_last_error(), "");
  EXPECT_EQ(spec.input_gate, LRNN_INPUT_GATE_EXPONENTIAL);
  EXPECT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_GLA, nullptr), LRNN_ERROR_INVALID_ARGUMENT);

  lrnn_decay_attn_args a{};
  a.B = 1, a.T = 4, a.H = 1, a.K = 8, a.V = 8, a.dtype = LRNN_F32, a.gate_dtype = LRNN_F32, a.device = -1;
  std::vector<float> o(32);
  EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("q is a null pointer"), std::string::npos) << lrnn_last_error();
  a.dtype = 9;
  EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("args.dtype is 9"), std::string::npos) << lrnn_last_error();
  a.dtype = LRNN_F32, a.B = -3;
  EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(lrnn_decay_attn_forward(nullptr, &a, nullptr, o.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(lrnn_decay_attn_step(&spec, LRNN_F32, LRNN_F32, -1, 1, 1, 8, 8, o.data(), o.data(), o.data(), o.data(),
                                 o.data(), nullptr, nullptr, o.data()),
            LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("state.s"), std::string::npos) << lrnn_last_error();
  if (!cuda_built()) {
    lrnn_memory_stats st;
    EXPECT_EQ(lrnn_cuda_memory_stats(0, &st), LRNN_ERROR_UNSUPPORTED);
    a.B = 1, a.device = 0;
    EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_ERROR_UNSUPPORTED);
  }
}

// GLA with an initial state, forward and backward on host pointers vs ops:: directly.
TEST(capi, host_forward_backward_match_the_op) {
  const int64_t B = 2, T = 37, H = 2, K = 16, V = 8, N = B;
  const size_t nq = B * T * H * K, nv = B * T * H * V, ns = N * H * K * V;
  auto q = randn(nq, 1), k = randn(nq, 2), v = randn(nv, 3), g = logsig(randn(nq, 4, 2.0)), s0 = randn(ns, 5);
  auto d_o = randn(nv, 6), dsT = randn(ns, 7);
  lrnn_decay_attn_spec spec;
  ASSERT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_GLA, &spec), LRNN_OK);
  lrnn_decay_attn_args a{};
  a.B = B, a.T = T, a.H = H, a.K = K, a.V = V, a.dtype = LRNN_F32, a.gate_dtype = LRNN_F32, a.device = -1;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.g = g.data(), a.chunk_size = 16;
  lrnn_decay_attn_state init{s0.data(), nullptr, nullptr};
  std::vector<float> o(nv), sT(ns);
  lrnn_decay_attn_state fin{sT.data(), nullptr, nullptr};
  ASSERT_EQ(lrnn_decay_attn_forward(&spec, &a, &init, o.data(), &fin), LRNN_OK) << lrnn_last_error();

  ops::decay_attn_spec cs;
  cs.decay = ops::decay_kind::per_token_key;
  ops::decay_attn_inputs in;
  in.q = host(q, {B, T, H, K}), in.k = host(k, {B, T, H, K}), in.v = host(v, {B, T, H, V}), in.g = host(g, {B, T, H, K});
  ops::decay_attn_state ci;
  ci.s = host(s0, {N, H, K, V});
  ops::decay_attn_options opt;
  opt.chunk_size = 16;
  auto ref = ops::decay_attn_forward(cs, in, ci, ops::decay_attn_form::chunk, opt).value();
  EXPECT_LE(max_diff(o, ref.o), 1e-5);
  EXPECT_LE(max_diff(sT, ref.final_state.s), 1e-5);

  std::vector<float> dq(nq), dk(nq), dv(nv), dg(nq), ds0(ns);
  lrnn_decay_attn_state dfin{dsT.data(), nullptr, nullptr}, dinit{ds0.data(), nullptr, nullptr};
  ASSERT_EQ(lrnn_decay_attn_backward(&spec, &a, &init, d_o.data(), &dfin, dq.data(), dk.data(), dv.data(), dg.data(),
                                     nullptr, nullptr, &dinit),
            LRNN_OK)
      << lrnn_last_error();
  ops::decay_attn_state cdf;
  cdf.s = host(dsT, {N, H, K, V});
  auto gr = ops::decay_attn_backward(cs, in, ci, host(d_o, {B, T, H, V}), cdf, ops::decay_attn_form::chunk, opt).value();
  EXPECT_LE(max_diff(dq, gr.dq), 1e-5);
  EXPECT_LE(max_diff(dk, gr.dk), 1e-5);
  EXPECT_LE(max_diff(dv, gr.dv), 1e-5);
  EXPECT_LE(max_diff(dg, gr.dg), 1e-5);
  EXPECT_LE(max_diff(ds0, gr.d_initial_state.s), 1e-5);
}

// The normaliser's saved forward through the ABI (host; the CUDA path in decay_attn_cuda_test.cpp):
// the forward writes den = s n.q per token, the backward with den and fwd_o gives the gradients it
// gives without them; den without the normaliser, or only one of the two, is an error.
TEST(capi, mlstm_saved_forward) {
  const int64_t B = 2, T = 21, H = 2, K = 16, V = 8;
  const size_t nq = B * T * H * K, nv = B * T * H * V, nt = B * T * H;
  auto q = randn(nq, 1), k = randn(nq, 2), v = randn(nv, 3), g = logsig(randn(nt, 4, 2.0)), i = randn(nt, 5), d_o = randn(nv, 6);
  lrnn_decay_attn_spec spec;
  ASSERT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_MLSTM, &spec), LRNN_OK);
  lrnn_decay_attn_args a{};
  a.B = B, a.T = T, a.H = H, a.K = K, a.V = V, a.dtype = LRNN_F32, a.gate_dtype = LRNN_F32, a.device = -1;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.g = g.data(), a.i = i.data(), a.chunk_size = 16;
  std::vector<float> o(nv), den(nt, std::nanf(""));
  a.den = den.data();
  ASSERT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_OK) << lrnn_last_error();
  // The ABI's den (chunk form) against the recurrent form's.
  ops::decay_attn_spec cs;
  cs.decay = ops::decay_kind::per_token_scalar, cs.input_gate = ops::input_gate_kind::exponential, cs.normalizer = true;
  ops::decay_attn_inputs in;
  in.q = host(q, {B, T, H, K}), in.k = host(k, {B, T, H, K}), in.v = host(v, {B, T, H, V});
  in.g = host(g, {B, T, H}), in.i = host(i, {B, T, H});
  ops::decay_attn_options opt;
  opt.chunk_size = 16, opt.output_den = true;
  auto ref = ops::decay_attn_forward(cs, in, {}, ops::decay_attn_form::recurrent, opt).value();
  ASSERT_TRUE(ref.den.defined());
  EXPECT_EQ(ref.den.shape(), (shape_t{B, T, H}));
  EXPECT_LE(max_diff(den, ref.den), 1e-5);
  EXPECT_LE(max_diff(o, ref.o), 1e-5);

  std::vector<float> dq0(nq), dk0(nq), dv0(nv), dg0(nt), di0(nt), dq1(nq), dk1(nq), dv1(nv), dg1(nt), di1(nt);
  lrnn_decay_attn_args plain = a;
  plain.den = nullptr;
  ASSERT_EQ(lrnn_decay_attn_backward(&spec, &plain, nullptr, d_o.data(), nullptr, dq0.data(), dk0.data(), dv0.data(),
                                     dg0.data(), di0.data(), nullptr, nullptr),
            LRNN_OK)
      << lrnn_last_error();
  a.fwd_o = o.data();
  ASSERT_EQ(lrnn_decay_attn_backward(&spec, &a, nullptr, d_o.data(), nullptr, dq1.data(), dk1.data(), dv1.data(),
                                     dg1.data(), di1.data(), nullptr, nullptr),
            LRNN_OK)
      << lrnn_last_error();
  EXPECT_EQ(dq0, dq1);
  EXPECT_EQ(dk0, dk1);
  EXPECT_EQ(dv0, dv1);
  EXPECT_EQ(dg0, dg1);
  EXPECT_EQ(di0, di1);

  lrnn_decay_attn_args half = a;
  half.fwd_o = nullptr;
  EXPECT_EQ(lrnn_decay_attn_backward(&spec, &half, nullptr, d_o.data(), nullptr, dq1.data(), dk1.data(), dv1.data(),
                                     dg1.data(), di1.data(), nullptr, nullptr),
            LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("saved_o and saved_den go together"), std::string::npos) << lrnn_last_error();
  lrnn_decay_attn_spec gla;
  ASSERT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_SIMPLE_GLA, &gla), LRNN_OK);
  lrnn_decay_attn_args ga = a;
  ga.i = nullptr;
  EXPECT_EQ(lrnn_decay_attn_forward(&gla, &ga, nullptr, o.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("args.den"), std::string::npos) << lrnn_last_error();
}

// args.ctx, the forward's context for the backward: nothing to keep on the host (0 bytes; a null ctx
// with 0 bytes is accepted and changes nothing), a ctx of another size is an error naming it; the
// CUDA path (where it holds the stabiliser and segment states) in decay_attn_cuda_test.cpp.
TEST(capi, forward_context_on_host) {
  const int64_t B = 1, T = 9, H = 2, K = 8, V = 8;
  const size_t nq = B * T * H * K, nv = B * T * H * V, nt = B * T * H;
  auto q = randn(nq, 1), k = randn(nq, 2), v = randn(nv, 3), g = logsig(randn(nt, 4, 2.0)), i = randn(nt, 5);
  lrnn_decay_attn_spec spec;
  ASSERT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_MLSTM, &spec), LRNN_OK);
  lrnn_decay_attn_args a{};
  a.B = B, a.T = T, a.H = H, a.K = K, a.V = V, a.dtype = LRNN_F32, a.gate_dtype = LRNN_F32, a.device = -1;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.g = g.data(), a.i = i.data();
  int64_t bytes = -1;
  ASSERT_EQ(lrnn_decay_attn_ctx_bytes(&spec, &a, &bytes), LRNN_OK) << lrnn_last_error();
  EXPECT_EQ(bytes, 0);
  EXPECT_EQ(lrnn_decay_attn_ctx_bytes(&spec, &a, nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  std::vector<float> o(nv), o2(nv), ctx(16);
  ASSERT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o.data(), nullptr), LRNN_OK) << lrnn_last_error();
  a.ctx = ctx.data(), a.ctx_bytes = 64;
  EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o2.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("args.ctx"), std::string::npos) << lrnn_last_error();
  EXPECT_NE(std::string(lrnn_last_error()).find("expected 0 bytes"), std::string::npos) << lrnn_last_error();
  a.ctx = nullptr, a.ctx_bytes = 4;
  EXPECT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o2.data(), nullptr), LRNN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrnn_last_error()).find("args.ctx is null with ctx_bytes 4"), std::string::npos) << lrnn_last_error();
  for (float* c : {ctx.data(), static_cast<float*>(nullptr)}) {  // (0 bytes: a pointer or none)
    a.ctx = c, a.ctx_bytes = 0;
    ASSERT_EQ(lrnn_decay_attn_forward(&spec, &a, nullptr, o2.data(), nullptr), LRNN_OK) << lrnn_last_error();
    EXPECT_EQ(o, o2);
  }
  // The C++ API: options.ctx of the wrong size names itself and the size it needs.
  ops::decay_attn_spec cs;
  cs.decay = ops::decay_kind::per_token_scalar, cs.input_gate = ops::input_gate_kind::exponential, cs.normalizer = true;
  ops::decay_attn_inputs in;
  in.q = host(q, {B, T, H, K}), in.k = host(k, {B, T, H, K}), in.v = host(v, {B, T, H, V});
  in.g = host(g, {B, T, H}), in.i = host(i, {B, T, H});
  auto n = ops::decay_attn_ctx_floats(cs, in);
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 0);
  ops::decay_attn_options opt;
  opt.ctx = tensor::zeros({3}, dtype::f32).value();
  auto bad = ops::decay_attn_forward(cs, in, {}, ops::decay_attn_form::chunk, opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("options.ctx"), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("f32[0]"), std::string::npos) << bad.error().message();
}

// mLSTM steps through the ABI (host) vs ops::decay_attn_step; then, with a GPU, the CUDA step.
TEST(capi, step_matches_the_op_on_host_and_cuda) {
  const int64_t B = 2, H = 3, K = 16, V = 12;
  lrnn_decay_attn_spec spec;
  ASSERT_EQ(lrnn_decay_attn_spec_for(LRNN_VARIANT_MLSTM, &spec), LRNN_OK);
  ops::decay_attn_spec cs;
  cs.decay = ops::decay_kind::per_token_scalar, cs.input_gate = ops::input_gate_kind::exponential, cs.normalizer = true;
  std::vector<float> s(B * H * K * V, 0.0f), n(B * H * K, 0.0f), m(B * H, 0.0f);
  lrnn_decay_attn_state st{s.data(), n.data(), m.data()};
  ops::decay_attn_state ref;
  const bool gpu = cuda_device_count() > 0;
  tensor ds, dn, dm;
  if (gpu) {
    ds = tensor::zeros({B, H, K, V}, dtype::f32, device::cuda()).value();
    dn = tensor::zeros({B, H, K}, dtype::f32, device::cuda()).value();
    dm = tensor::zeros({B, H}, dtype::f32, device::cuda()).value();
  }
  for (int t = 0; t < 3; ++t) {
    auto q = randn(B * H * K, 10 + t), k = randn(B * H * K, 20 + t), v = randn(B * H * V, 30 + t);
    auto g = logsig(randn(B * H, 40 + t, 2.0)), i = randn(B * H, 50 + t, 0, 2.0);
    std::vector<float> o(B * H * V);
    ASSERT_EQ(lrnn_decay_attn_step(&spec, LRNN_F32, LRNN_F32, -1, B, H, K, V, q.data(), k.data(), v.data(), g.data(),
                                   i.data(), nullptr, &st, o.data()),
              LRNN_OK)
        << lrnn_last_error();
    ops::decay_attn_inputs tok;
    tok.q = host(q, {B, H, K}), tok.k = host(k, {B, H, K}), tok.v = host(v, {B, H, V});
    tok.g = host(g, {B, H}), tok.i = host(i, {B, H});
    tensor ro = ops::decay_attn_step(cs, tok, ref).value();
    EXPECT_LE(max_diff(o, ro), 1e-5);
    EXPECT_LE(max_diff(s, ref.s), 1e-5);
    EXPECT_LE(max_diff(m, ref.m), 1e-5);
    if (gpu) {
      auto dev = [](const tensor& x) { return x.to(device::cuda()).value(); };
      tensor dq = dev(tok.q), dk = dev(tok.k), dv = dev(tok.v), dg = dev(tok.g), di = dev(tok.i);
      tensor dO = tensor::empty({B, H, V}, dtype::f32, device::cuda()).value();
      lrnn_decay_attn_state dst{static_cast<float*>(ds.raw_data()), static_cast<float*>(dn.raw_data()),
                                static_cast<float*>(dm.raw_data())};
      ASSERT_EQ(lrnn_decay_attn_step(&spec, LRNN_F32, LRNN_F32, 0, B, H, K, V, dq.raw_data(), dk.raw_data(),
                                     dv.raw_data(), dg.raw_data(), di.raw_data(), nullptr, &dst, dO.raw_data()),
                LRNN_OK)
          << lrnn_last_error();
      const tensor oh = dO.to(device::cpu()).value();
      EXPECT_LE(max_abs_diff(oh, ro), 1e-4);
      EXPECT_LE(max_abs_diff(ds.to(device::cpu()).value(), ref.s), 1e-4);
    }
  }
  if (gpu) {
    lrnn_memory_stats ms{};
    ASSERT_EQ(lrnn_cuda_memory_stats(0, &ms), LRNN_OK);
    EXPECT_GT(ms.bytes_reserved, 0u);
    EXPECT_GE(ms.peak_bytes_in_use, ms.bytes_in_use);
    EXPECT_EQ(lrnn_cuda_empty_cache(0), LRNN_OK);
    EXPECT_EQ(lrnn_cuda_memory_stats(0, &ms), LRNN_OK);
    EXPECT_EQ(ms.bytes_cached, 0u);
    EXPECT_EQ(lrnn_cuda_memory_stats(99, &ms), LRNN_ERROR_INVALID_ARGUMENT);
  }
}

}  // namespace
}  // namespace lrnn
