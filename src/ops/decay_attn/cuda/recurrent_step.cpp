// Host side of the CUDA decoding step (recurrent_step.cu): validation of the token's tensors and
// of the state (created as zeros when absent, then updated in place), gates as fp32, the launch.
#include "ops/decay_attn/decay_attn.h"

#include <cmath>
#include <cstdint>

#ifdef LRNN_WITH_CUDA
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/stream.h"
#include "ops/decay_attn/cuda/recurrent_step.h"
#endif

namespace lrnn::ops::detail {

#ifdef LRNN_WITH_CUDA
namespace {

status expect(const char* name, const tensor& t, const shape_t& want, device dev, const char* why) {
  if (!t.defined())
    return make_error(status_code::invalid_argument, "decay_attn_step: {} is missing, expected {} ({})", name,
                      shape_to_string(want), why);
  if (t.shape() != want)
    return make_error(status_code::invalid_argument, "decay_attn_step: {} is {}, expected {} ({})", name, t.describe(),
                      shape_to_string(want), why);
  if (t.dev() != dev)
    return make_error(status_code::invalid_argument, "decay_attn_step: {} is on {}, expected {} like q", name,
                      t.dev().to_string(), dev.to_string());
  if (!t.is_contiguous())
    return make_error(status_code::invalid_argument, "decay_attn_step: {} ({}) must be contiguous on CUDA", name, t.describe());
  return {};
}

// Gates in fp32 (a conversion copy when given in another float dtype).
result<tensor> gate_f32(const char* name, const tensor& t) {
  if (!is_floating(t.type()) || t.type() == dtype::f64)
    return make_error(status_code::invalid_argument, "decay_attn_step: {} is {}, expected f32, bf16 or f16", name, t.describe());
  return t.to(dtype::f32);
}

}  // namespace

result<tensor> decay_attn_step_cuda(const decay_attn_spec& spec, const decay_attn_inputs& token, decay_attn_state& state) {
  const tensor& q = token.q;
  if (!q.defined() || q.dim() != 3)
    return make_error(status_code::invalid_argument, "decay_attn_step: q is {}, expected [B, H, K]", q.defined() ? q.describe() : "missing");
  const device dev = q.dev();
  const int64_t B = q.size(0), H = q.size(1), K = q.size(2);
  cuda_step::elem et;
  switch (q.type()) {
    case dtype::f32: et = cuda_step::elem::f32; break;
    case dtype::bf16: et = cuda_step::elem::bf16; break;
    case dtype::f16: et = cuda_step::elem::f16; break;
    default:
      return make_error(status_code::unsupported, "decay_attn_step on CUDA: q is {}, expected f32, bf16 or f16", q.describe());
  }
  LRNN_TRY(expect("q", q, {B, H, K}, dev, "[B, H, K]"));
  LRNN_TRY(expect("k", token.k, {B, H, K}, dev, "the shape of q"));
  if (!token.v.defined() || token.v.dim() != 3 || token.v.size(0) != B || token.v.size(1) != H)
    return make_error(status_code::invalid_argument, "decay_attn_step: v is {}, expected [{}, {}, V] (B, H of q)",
                      token.v.defined() ? token.v.describe() : "missing", B, H);
  const int64_t V = token.v.size(2);
  LRNN_TRY(expect("v", token.v, {B, H, V}, dev, "[B, H, V]"));
  if (token.k.type() != q.type() || token.v.type() != q.type())
    return make_error(status_code::invalid_argument, "decay_attn_step: q, k, v have dtypes {}, {}, {}; expected one dtype",
                      dtype_name(q.type()), dtype_name(token.k.type()), dtype_name(token.v.type()));
  if (spec.bonus && (spec.input_gate != input_gate_kind::none || spec.normalizer))
    return make_error(status_code::unsupported, "decay_attn_step: the bonus (RWKV) cannot be combined with an input gate or the normaliser");
  if (spec.input_gate == input_gate_kind::exponential && spec.decay == decay_kind::per_token_key)
    return make_error(status_code::unsupported, "decay_attn_step: the exponential input gate needs a scalar decay (the stabiliser m is per head)");
  if (spec.input_gate == input_gate_kind::exponential && !spec.normalizer)
    return make_error(status_code::invalid_argument, "decay_attn_step: the exponential input gate needs normalizer = true (mLSTM)");
  if (B * H > INT32_MAX || K > 4096 || V > (int64_t(1) << 20))
    return make_error(status_code::unsupported, "decay_attn_step on CUDA: B*H = {}, K = {}, V = {} outside the kernel's limits (B*H < 2^31, K <= 4096)", B * H, K, V);

  cuda_step::step_params p;
  p.N = B, p.H = H, p.K = K, p.V = V, p.type = et;
  p.q = q.raw_data(), p.k = token.k.raw_data(), p.v = token.v.raw_data();
  tensor g, i, u;
  switch (spec.decay) {
    case decay_kind::none: p.decay = 0; break;
    case decay_kind::per_head_const: LRNN_TRY(expect("g", token.g, {H}, dev, "per_head_const decay: [H]")); p.decay = 1; break;
    case decay_kind::per_token_scalar: LRNN_TRY(expect("g", token.g, {B, H}, dev, "per_token_scalar decay: [B, H]")); p.decay = 2; break;
    case decay_kind::per_token_key: LRNN_TRY(expect("g", token.g, {B, H, K}, dev, "per_token_key decay: [B, H, K]")); p.decay = 3; break;
  }
  if (p.decay != 0) {
    LRNN_ASSIGN_OR_RETURN(g, gate_f32("g", token.g));
    p.g = static_cast<const float*>(g.raw_data());
  }
  if (spec.input_gate != input_gate_kind::none) {
    LRNN_TRY(expect("i", token.i, {B, H}, dev, "input gate: [B, H]"));
    LRNN_ASSIGN_OR_RETURN(i, gate_f32("i", token.i));
    p.i = static_cast<const float*>(i.raw_data());
    p.gate = spec.input_gate == input_gate_kind::exponential ? 1 : 2;
  }
  if (spec.bonus) {
    LRNN_TRY(expect("u", token.u, {H, K}, dev, "bonus: [H, K]"));
    LRNN_ASSIGN_OR_RETURN(u, gate_f32("u", token.u));
    p.u = static_cast<const float*>(u.raw_data());
    p.bonus = true;
  }
  p.normalizer = spec.normalizer;
  // The state: zeros when absent (as the CPU step), else fp32 on q's device, updated in place.
  const bool exp_gate = spec.input_gate == input_gate_kind::exponential;
  if (!state.s.defined()) {
    if (state.n.defined() || state.m.defined())
      return make_error(status_code::invalid_argument, "decay_attn_step: state n or m given without s");
    LRNN_ASSIGN_OR_RETURN(state.s, tensor::zeros({B, H, K, V}, dtype::f32, dev));
    if (spec.normalizer) {
      LRNN_ASSIGN_OR_RETURN(state.n, tensor::zeros({B, H, K}, dtype::f32, dev));
    }
    if (exp_gate) {
      LRNN_ASSIGN_OR_RETURN(state.m, tensor::zeros({B, H}, dtype::f32, dev));
    }
  }
  auto expect_state = [&](const char* name, const tensor& t, const shape_t& want, const char* why) -> status {
    LRNN_TRY(expect(name, t, want, dev, why));
    if (t.type() != dtype::f32)
      return make_error(status_code::invalid_argument, "decay_attn_step: {} is {}, expected f32 (states are fp32)", name, t.describe());
    return {};
  };
  LRNN_TRY(expect_state("state s", state.s, {B, H, K, V}, "[N, H, K, V]"));
  p.s = static_cast<float*>(state.s.raw_data());
  if (spec.normalizer) {
    LRNN_TRY(expect_state("state n", state.n, {B, H, K}, "[N, H, K], the normaliser travels with s"));
    p.n = static_cast<float*>(state.n.raw_data());
  }
  if (exp_gate) {
    LRNN_TRY(expect_state("state m", state.m, {B, H}, "[N, H], the stabiliser travels with s"));
    p.m = static_cast<float*>(state.m.raw_data());
  }
  p.scale = static_cast<float>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(K)));
  p.eps = static_cast<float>(spec.eps);
  LRNN_ASSIGN_OR_RETURN(tensor o, tensor::empty({B, H, V}, q.type(), dev));  // [B, H, V]
  p.o = o.raw_data();
  LRNN_CUDA_CHECK(cudaSetDevice(dev.index));
  LRNN_CUDA_TRY(cuda_step::launch_decay_attn_step(p, cuda::current_cuda_stream(dev.index)));
  return o;
}

#else

result<tensor> decay_attn_step_cuda(const decay_attn_spec&, const decay_attn_inputs&, decay_attn_state&) {
  return make_error(status_code::unsupported,
                    "decay_attn_step: the tensors are on CUDA but this lrnn was built without CUDA");
}

#endif

}  // namespace lrnn::ops::detail
