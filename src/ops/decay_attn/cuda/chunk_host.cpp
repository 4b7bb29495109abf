// Host glue of the CUDA chunk kernels: contiguous / fp32 views of the inputs on the device, the
// mapping of every spec onto the core (as decay_attn.cpp does on the CPU: mLSTM's stabiliser as a
// scan over scalar gates, the normaliser as a value column of ones), kernel error codes as status.
#include "ops/decay_attn/cuda/chunk_host.h"

#ifdef LRNN_WITH_CUDA

#include "backend/cuda/cuda_backend.h"
#include "ops/decay_attn/cuda/chunk_api.h"
#include "ops/decay_attn/cuda/chunk_tc.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <mutex>

namespace lrnn::ops::detail {

namespace {

namespace cc = cuda_chunk;

status check(int e, const char* what) {
  if (e == 0) return {};
  if (e == static_cast<int>(cudaErrorNotSupported))
    return make_error(status_code::unsupported,
                      "decay_attn (CUDA chunk): the {} needs more shared memory per block than this GPU offers ({} KB); "
                      "per-key gates (GLA, RWKV-6) at K = 128 need ~200 KB (Hopper), K <= 64 fits",
                      what, cc::shared_memory_limit() / 1024);
  return make_error(e == static_cast<int>(cudaErrorMemoryAllocation) ? status_code::out_of_memory : status_code::internal,
                    "decay_attn (CUDA chunk): {} failed: {}", what, cudaGetErrorString(static_cast<cudaError_t>(e)));
}

result<tensor> f32c(const tensor& t) {
  if (!t.defined()) return tensor();
  LRNN_ASSIGN_OR_RETURN(tensor f, t.to(dtype::f32));
  return f.contiguous();
}
const float* fp(const tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
float* fpm(const tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Everything the kernels read, kept alive for the launches.
struct prepared {
  cc::core_args a;
  device dev;
  int64_t B = 0, T = 0, H = 0, K = 0, Vin = 0, Vp = 0, N = 0, tokens = 0;
  bool stabilised = false;
  int gs_mode = cc::g_none;
  tensor q, k, v, offsets, g, i, u, s0, n0, m0;
  tensor m, gt, bt;  // stabiliser: m per token, core gates
  tensor gate_tab;   // the tensor-core path's per-token gate table
  tensor stab_scratch;  // the stabiliser's block maps and entry values
  float* seg_ctx = nullptr;  // the context's segment states (fwd_out / bwd_io::seg_ctx), or null
  bool seg_ready = false;
};

// The kernels' gate mode of the spec's decay (before the stabiliser, which turns an exponential input
// gate's decay into its scalar g~).
int decay_gate_mode(const decay_attn_spec& spec) {
  switch (spec.decay) {
    case decay_kind::per_head_const: return cc::g_head;
    case decay_kind::per_token_scalar: return cc::g_scalar;
    case decay_kind::per_token_key: return cc::g_key;
    default: return cc::g_none;
  }
}

// The shape fields of the core's arguments (no pointers but a placeholder for the bonus, whose
// presence decides the path), on the inputs' device, which becomes the current one.
status shape_args(const decay_attn_spec& spec, const decay_attn_inputs& in, const std::vector<int64_t>& offsets,
                  cc::core_args& a) {
  // The kernels launch on the current device (and its current stream: chunk_common.cuh).
  LRNN_TRY(check(static_cast<int>(cudaSetDevice(in.q.dev().index)), "cudaSetDevice"));
  switch (in.q.type()) {
    case dtype::f32: a.type = cc::t_f32; break;
    case dtype::bf16: a.type = cc::t_bf16; break;
    case dtype::f16: a.type = cc::t_f16; break;
    default:
      return make_error(status_code::unsupported, "decay_attn: CUDA inputs of dtype {} are not supported (f32, bf16, f16)",
                        dtype_name(in.q.type()));
  }
  const int64_t K = in.q.size(3);
  if (K > 128) return make_error(status_code::unsupported, "decay_attn: the CUDA chunk kernels take K <= 128, got K = {}", K);
  a.N = static_cast<int>(offsets.size()) - 1, a.H = static_cast<int>(in.q.size(2)), a.K = static_cast<int>(K);
  a.Vin = static_cast<int>(in.v.size(3)), a.V = a.Vin + (spec.normalizer ? 1 : 0);
  a.tokens = in.q.size(0) * in.q.size(1);
  for (size_t n = 0; n + 1 < offsets.size(); ++n) a.max_len = std::max<int64_t>(a.max_len, offsets[n + 1] - offsets[n]);
  // (an exponential input gate: the stabiliser's scalar g~)
  a.gmode = spec.input_gate == input_gate_kind::exponential ? cc::g_scalar : decay_gate_mode(spec);
  static const float placeholder = 0.f;
  a.u = spec.bonus ? &placeholder : nullptr;
  return {};
}

// The forward's context for the backward (decay_attn_options::ctx), in floats: the stabiliser's m,
// g~, b~ [tokens, H] each (exponential input gate), then the tensor-core forward's segment-boundary
// states (cc::tc_ctx_floats).
struct ctx_layout {
  int64_t stab = 0, seg = 0;
  int64_t total() const { return stab + seg; }
};
ctx_layout ctx_layout_of(const decay_attn_spec& spec, const cc::core_args& a) {
  ctx_layout c;
  if (spec.input_gate == input_gate_kind::exponential) c.stab = 3 * a.tokens * a.H;
  c.seg = cc::tc_ctx_floats(a);
  return c;
}

// The sequence offsets on the device. Equal lengths (every dense [B, T] call) take a copy made once per
// (device, N, length) and kept: uploading them from pageable memory on every call left the GPU idle
// while the host caught up (H100, simple GLA forward+backward at B=8, T=4096: ~13 us after each of the
// call's two uploads, `--profile`'s timeline). Mixed lengths (packed sequences) are uploaded per call
// into hold.
result<const int32_t*> device_offsets(const std::vector<int32_t>& off, const device& dev, tensor& hold) {
  const int64_t N = static_cast<int64_t>(off.size()) - 1;
  bool uniform = N >= 1 && off[0] == 0 && off[1] > 0;
  for (int64_t n = 2; uniform && n <= N; ++n) uniform = off[n] - off[n - 1] == off[1];
  if (uniform) {
    struct entry {
      int dev;
      int64_t N;
      int32_t len;
      tensor t;
    };
    static std::mutex mu;
    static auto* cache = new std::vector<entry>();  // (never destroyed: nothing is freed after the CUDA context's teardown)
    const std::lock_guard<std::mutex> lock(mu);
    for (const entry& e : *cache)
      if (e.dev == dev.index && e.N == N && e.len == off[1]) return e.t.data<int32_t>();
    if (cache->size() < 64) {  // (a bounded number of shapes; beyond them, uploads per call)
      LRNN_ASSIGN_OR_RETURN(tensor t, tensor::from_vector(off, {N + 1}, dtype::i32).to(dev));
      LRNN_TRY(cuda::synchronize(dev.index));  // (later calls may run on other streams)
      cache->push_back({dev.index, N, off[1], t});
      return t.data<int32_t>();
    }
  }
  LRNN_ASSIGN_OR_RETURN(hold, tensor::from_vector(off, {N + 1}, dtype::i32).to(dev));
  return hold.data<int32_t>();
}

// final_m (stabilised specs): also m_T [N, H] from the stabiliser's scan. ctx (decay_attn_options::ctx,
// ctx_layout_of's size, or undefined): the stabiliser's outputs and the segment states go there
// (ctx_ready: they are there already, from the forward: no scan).
status prepare(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init,
               const std::vector<int64_t>& offsets, prepared& p, tensor* final_m = nullptr, const tensor* ctx = nullptr,
               bool ctx_ready = false) {
  p.dev = in.q.dev();
  LRNN_TRY(shape_args(spec, in, offsets, p.a));
  p.B = in.q.size(0), p.T = in.q.size(1), p.H = in.q.size(2), p.K = in.q.size(3), p.Vin = in.v.size(3);
  p.Vp = p.Vin + (spec.normalizer ? 1 : 0);
  p.N = static_cast<int64_t>(offsets.size()) - 1;
  p.tokens = p.B * p.T;
  LRNN_ASSIGN_OR_RETURN(p.q, in.q.contiguous());
  LRNN_ASSIGN_OR_RETURN(p.k, in.k.contiguous());
  LRNN_ASSIGN_OR_RETURN(p.v, in.v.contiguous());
  std::vector<int32_t> off32(offsets.begin(), offsets.end());
  LRNN_ASSIGN_OR_RETURN(const int32_t* dev_off, device_offsets(off32, p.dev, p.offsets));
  if (spec.decay != decay_kind::none) { LRNN_ASSIGN_OR_RETURN(p.g, f32c(in.g)); }
  if (spec.input_gate != input_gate_kind::none) { LRNN_ASSIGN_OR_RETURN(p.i, f32c(in.i)); }
  if (spec.bonus) { LRNN_ASSIGN_OR_RETURN(p.u, f32c(in.u)); }
  if (init.s.defined()) {
    LRNN_ASSIGN_OR_RETURN(p.s0, f32c(init.s));
    if (spec.normalizer) { LRNN_ASSIGN_OR_RETURN(p.n0, f32c(init.n)); }
    if (spec.input_gate == input_gate_kind::exponential) { LRNN_ASSIGN_OR_RETURN(p.m0, f32c(init.m)); }
  }
  cc::core_args& a = p.a;
  a.offsets = dev_off;
  a.q = p.q.raw_data(), a.k = p.k.raw_data(), a.v = p.v.raw_data();
  a.scale = static_cast<float>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(p.K)));
  a.u = fp(p.u), a.s0 = fp(p.s0), a.n0 = fp(p.n0);
  p.gs_mode = decay_gate_mode(spec);
  p.stabilised = spec.input_gate == input_gate_kind::exponential;
  const ctx_layout cl = ctx && ctx->defined() ? ctx_layout_of(spec, a) : ctx_layout{};
  if (cl.seg > 0) {
    LRNN_ASSIGN_OR_RETURN(tensor seg, ctx->slice(0, cl.stab, cl.total()));
    p.seg_ctx = seg.data<float>(), p.seg_ready = ctx_ready;
  }
  if (p.stabilised) {
    const int64_t th = p.tokens * p.H;
    if (cl.stab > 0) {  // (m, g~, b~ in the context)
      LRNN_ASSIGN_OR_RETURN(p.m, ctx->slice(0, 0, th));
      LRNN_ASSIGN_OR_RETURN(p.gt, ctx->slice(0, th, 2 * th));
      LRNN_ASSIGN_OR_RETURN(p.bt, ctx->slice(0, 2 * th, 3 * th));
    } else {
      LRNN_ASSIGN_OR_RETURN(p.m, tensor::empty({p.tokens, p.H}, dtype::f32, p.dev));
      LRNN_ASSIGN_OR_RETURN(p.gt, tensor::empty({p.tokens, p.H}, dtype::f32, p.dev));
      LRNN_ASSIGN_OR_RETURN(p.bt, tensor::empty({p.tokens, p.H}, dtype::f32, p.dev));
    }
    if (final_m) { LRNN_ASSIGN_OR_RETURN(*final_m, tensor::empty({p.N, p.H}, dtype::f32, p.dev)); }
    LRNN_ASSIGN_OR_RETURN(p.stab_scratch, tensor::empty({cc::stabiliser_scratch_floats(a.N, a.H, a.max_len)}, dtype::f32, p.dev));
    // (The scan also gives m_T: a forward that wants the final state runs it even with a ready context.)
    if (!(cl.stab > 0 && ctx_ready) || final_m)
      LRNN_TRY(check(cc::stabiliser_scan(a.N, a.H, a.max_len, a.offsets, fp(p.g), p.gs_mode, fp(p.i), fp(p.m0), fpm(p.m),
                                         fpm(p.gt), fpm(p.bt), final_m ? fpm(*final_m) : nullptr, fpm(p.stab_scratch)),
                     "stabiliser scan"));
    a.g = fp(p.gt), a.gmode = cc::g_scalar, a.b = fp(p.bt);
  } else {
    a.g = fp(p.g), a.gmode = p.gs_mode;
    a.b = fp(p.i);
  }
  if (a.type != cc::t_f32 && a.gmode != cc::g_key) {
    LRNN_ASSIGN_OR_RETURN(p.gate_tab, tensor::empty({std::max<int64_t>(1, cc::tc_table_bytes(a) / 4)}, dtype::f32, p.dev));
    a.gate_tab = p.gate_tab.raw_data();
  }
  return {};
}

// A result tensor: `into` where it fits exactly (decay_attn_options::into_*), else a fresh one.
result<tensor> result_tensor(const tensor& into, const shape_t& shape, dtype t, device dev) {
  if (into.defined() && into.shape() == shape && into.type() == t && into.dev() == dev && into.is_contiguous()) return into;
  return tensor::empty(shape, t, dev);
}

}  // namespace

result<int64_t> decay_attn_ctx_floats_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                           const std::vector<int64_t>& offsets) {
  cc::core_args a;
  LRNN_TRY(shape_args(spec, in, offsets, a));
  return ctx_layout_of(spec, a).total();
}

result<decay_attn_output> decay_attn_forward_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                  const decay_attn_state& init, const std::vector<int64_t>& offsets,
                                                  const decay_attn_options& opt) {
  prepared p;
  decay_attn_output out;
  LRNN_TRY(prepare(spec, in, init, offsets, p, opt.output_final_state ? &out.final_state.m : nullptr, &opt.ctx));
  LRNN_ASSIGN_OR_RETURN(out.o, result_tensor(opt.into_o, in.v.shape(), in.q.type(), p.dev));
  cc::fwd_out fo;
  tensor op, den;
  // The normaliser in the core (tensor cores, one V tile), else o' in fp32 for normalise_forward.
  const bool fused = spec.normalizer && cc::tc_forward_fused_norm(p.a);
  if (fused) {
    LRNN_ASSIGN_OR_RETURN(den, tensor::empty({p.tokens, p.H}, dtype::f32, p.dev));
    fo.o = out.o.raw_data(), fo.den = fpm(den), fo.m = p.stabilised ? fp(p.m) : nullptr, fo.eps = static_cast<float>(spec.eps);
  } else if (spec.normalizer) {
    LRNN_ASSIGN_OR_RETURN(op, tensor::empty({p.tokens, p.H, p.Vp}, dtype::f32, p.dev));
    fo.o = op.raw_data(), fo.o_f32 = true;
  } else {
    fo.o = out.o.raw_data();
  }
  fo.seg_ctx = p.seg_ctx;
  if (opt.output_final_state) {
    LRNN_ASSIGN_OR_RETURN(out.final_state.s, tensor::empty({p.N, p.H, p.K, p.Vin}, dtype::f32, p.dev));
    fo.sf = fpm(out.final_state.s);
    if (spec.normalizer) {
      LRNN_ASSIGN_OR_RETURN(out.final_state.n, tensor::empty({p.N, p.H, p.K}, dtype::f32, p.dev));
      fo.nf = fpm(out.final_state.n);
    }
  }
  LRNN_TRY(check(cc::core_forward(p.a, fo), "forward kernel"));
  if (spec.normalizer && !fused)
    LRNN_TRY(check(cc::normalise_forward(p.tokens * p.H, static_cast<int>(p.Vin), fp(op), p.stabilised ? fp(p.m) : nullptr,
                                         static_cast<float>(spec.eps), out.o.raw_data(), p.a.type),
                   "normaliser"));
  if (spec.normalizer && opt.output_den) {
    if (fused) {
      out.den = den;
    } else {
      LRNN_ASSIGN_OR_RETURN(out.den, tensor::empty({p.tokens, p.H}, dtype::f32, p.dev));
      LRNN_TRY(check(cc::copy_column(p.tokens * p.H, static_cast<int>(p.Vp), static_cast<int>(p.Vin), fp(op), fpm(out.den)),
                     "normaliser column"));
    }
    LRNN_ASSIGN_OR_RETURN(out.den, out.den.reshape({in.q.size(0), in.q.size(1), p.H}));
  }
  return out;
}

result<decay_attn_grads> decay_attn_backward_cuda(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                  const decay_attn_state& init, const tensor& d_o_in,
                                                  const decay_attn_state& d_final, const std::vector<int64_t>& offsets,
                                                  const decay_attn_options& opt) {
  prepared p;
  LRNN_TRY(prepare(spec, in, init, offsets, p, nullptr, &opt.ctx, true));
  cc::core_args& a = p.a;
  const device dev = p.dev;
  LRNN_ASSIGN_OR_RETURN(tensor d_o_t, d_o_in.to(in.q.type()));
  LRNN_ASSIGN_OR_RETURN(tensor d_o, d_o_t.contiguous());
  cc::bwd_io io;
  tensor op, dop, dn_col, dm_local, o_re, den, rs;
  if (spec.normalizer && cc::tc_backward_normaliser(a) && cc::tc_forward_fused_norm(a)) {
    if (opt.saved_o.defined()) {
      // The forward's o and den (decay_attn_options::saved_o / saved_den, checked by the caller).
      LRNN_ASSIGN_OR_RETURN(o_re, opt.saved_o.contiguous());
      LRNN_ASSIGN_OR_RETURN(den, opt.saved_den.contiguous());
    } else {
      // The forward again with the normaliser in the core: o in the input dtype and den per row.
      LRNN_ASSIGN_OR_RETURN(o_re, tensor::empty({p.tokens, p.H, p.Vin}, in.q.type(), dev));
      LRNN_ASSIGN_OR_RETURN(den, tensor::empty({p.tokens, p.H}, dtype::f32, dev));
      cc::fwd_out fo;
      fo.o = o_re.raw_data(), fo.den = fpm(den), fo.m = p.stabilised ? fp(p.m) : nullptr, fo.eps = static_cast<float>(spec.eps);
      fo.seg_ctx = p.seg_ctx, fo.seg_ready = true;
      LRNN_TRY(check(cc::core_forward(a, fo), "forward kernel (recompute)"));
    }
    if (p.stabilised) { LRNN_ASSIGN_OR_RETURN(dm_local, tensor::empty({p.tokens, p.H}, dtype::f32, dev)); }
    // Folded into the kernels: they read d_o itself, with per-row factors (bwd_io::rs), which the core
    // computes from o and den (in its dq sweep where it can, else a pass of their own: bwd_io::rows).
    LRNN_ASSIGN_OR_RETURN(rs, tensor::empty({p.tokens, p.H}, dtype::f32, dev));
    LRNN_ASSIGN_OR_RETURN(dn_col, tensor::empty({p.tokens, p.H}, dtype::f32, dev));
    io.d_o = d_o.raw_data(), io.dn = fp(dn_col), io.rs = fp(rs);
    io.rows.o = o_re.raw_data(), io.rows.den = fp(den), io.rows.m = p.stabilised ? fp(p.m) : nullptr;
    io.rows.eps = static_cast<float>(spec.eps), io.rows.rs_out = fpm(rs), io.rows.dn_out = fpm(dn_col);
    io.rows.dm_local = fpm(dm_local);
  } else if (spec.normalizer) {
    LRNN_ASSIGN_OR_RETURN(op, tensor::empty({p.tokens, p.H, p.Vp}, dtype::f32, dev));
    cc::fwd_out fo;
    fo.o = op.raw_data(), fo.o_f32 = true;
    fo.seg_ctx = p.seg_ctx, fo.seg_ready = true;
    LRNN_TRY(check(cc::core_forward(a, fo), "forward kernel (recompute)"));
    if (p.stabilised) { LRNN_ASSIGN_OR_RETURN(dm_local, tensor::empty({p.tokens, p.H}, dtype::f32, dev)); }
    if (cc::tc_backward_normaliser(a)) {
      // Tensor cores: folded into the kernels as above, from o' in fp32.
      LRNN_ASSIGN_OR_RETURN(rs, tensor::empty({p.tokens, p.H}, dtype::f32, dev));
      LRNN_ASSIGN_OR_RETURN(dn_col, tensor::empty({p.tokens, p.H}, dtype::f32, dev));
      LRNN_TRY(check(cc::normalise_backward_rows(p.tokens * p.H, static_cast<int>(p.Vin), fp(op), nullptr,
                                                 p.stabilised ? fp(p.m) : nullptr, static_cast<float>(spec.eps), d_o.raw_data(),
                                                 a.type, fpm(rs), fpm(dn_col), fpm(dm_local)),
                     "normaliser backward"));
      io.d_o = d_o.raw_data(), io.dn = fp(dn_col), io.rs = fp(rs), a.eq_scale = fp(rs);
    } else {
      LRNN_ASSIGN_OR_RETURN(dop, tensor::empty({p.tokens, p.H, p.Vp}, dtype::f32, dev));
      LRNN_TRY(check(cc::normalise_backward(p.tokens * p.H, static_cast<int>(p.Vin), fp(op), p.stabilised ? fp(p.m) : nullptr,
                                            static_cast<float>(spec.eps), d_o.raw_data(), a.type, fpm(dop), fpm(dm_local)),
                     "normaliser backward"));
      io.d_o = dop.raw_data(), io.do_f32 = true;
    }
  } else {
    io.d_o = d_o.raw_data();
  }
  tensor dsf, dnf, dmT;
  LRNN_ASSIGN_OR_RETURN(dsf, f32c(d_final.s));
  if (spec.normalizer) { LRNN_ASSIGN_OR_RETURN(dnf, f32c(d_final.n)); }
  if (p.stabilised) { LRNN_ASSIGN_OR_RETURN(dmT, f32c(d_final.m)); }
  io.dsf = fp(dsf), io.dnf = fp(dnf);
  io.seg_ctx = p.seg_ctx;
  tensor dqa, dka, xy, F, F0, rho, ds0, dn0;
  decay_attn_grads gr;
  LRNN_ASSIGN_OR_RETURN(gr.dq, result_tensor(opt.into_dq, in.q.shape(), in.q.type(), dev));
  LRNN_ASSIGN_OR_RETURN(gr.dk, result_tensor(opt.into_dk, in.k.shape(), in.q.type(), dev));
  // The tensor-core backward with one V tile writes dq, dk itself (and per-token q.dq, k.dk); with
  // per-key gates it finishes every gradient itself (fp32 dq, dk are its scratch); otherwise fp32
  // accumulators, converted by finish_backward.
  const bool direct = cc::tc_backward_direct(a, io);
  const bool key_core = cc::tc_backward_key(a, io);
  // A per-head decay (without the bonus): its gradient from the core (bwd_io::dgh), no per-token sums.
  const bool head_core = cc::head_gradient_in_core(a);
  if (direct) {
    // (per-token sums: for the scalar gate's gradient, and db = k . dk with an input scale)
    if (!head_core || a.b) {  // (X, Y) per token and head, and the finish's scan totals after them
      LRNN_ASSIGN_OR_RETURN(xy, tensor::zeros({std::max<int64_t>(p.tokens * p.H * 2, cc::finish_scratch_floats(a))}, dtype::f32, dev));
    }
    io.dq_out = gr.dq.raw_data(), io.dk_out = gr.dk.raw_data(), io.xy = fpm(xy);
  } else if (key_core) {  // (its scratch: the core zeroes it where it needs to)
    LRNN_ASSIGN_OR_RETURN(dqa, tensor::empty({p.tokens, p.H, p.K}, dtype::f32, dev));
    LRNN_ASSIGN_OR_RETURN(dka, tensor::empty({p.tokens, p.H, p.K}, dtype::f32, dev));
  } else {
    LRNN_ASSIGN_OR_RETURN(dqa, tensor::zeros({p.tokens, p.H, p.K}, dtype::f32, dev));
    LRNN_ASSIGN_OR_RETURN(dka, tensor::zeros({p.tokens, p.H, p.K}, dtype::f32, dev));
  }
  if ((dsf.defined() || dnf.defined()) && !head_core) { LRNN_ASSIGN_OR_RETURN(F, tensor::zeros({p.N, p.H, p.K}, dtype::f32, dev)); }
  if (p.s0.defined()) {
    if (!head_core) { LRNN_ASSIGN_OR_RETURN(F0, tensor::zeros({p.N, p.H, p.K}, dtype::f32, dev)); }
    LRNN_ASSIGN_OR_RETURN(ds0, tensor::empty({p.N, p.H, p.K, p.Vin}, dtype::f32, dev));
    if (spec.normalizer) { LRNN_ASSIGN_OR_RETURN(dn0, tensor::empty({p.N, p.H, p.K}, dtype::f32, dev)); }
  }
  if (spec.bonus && !key_core) { LRNN_ASSIGN_OR_RETURN(rho, tensor::zeros({p.tokens, p.H}, dtype::f32, dev)); }
  LRNN_ASSIGN_OR_RETURN(gr.dv, result_tensor(opt.into_dv, in.v.shape(), in.q.type(), dev));
  io.dq = fpm(dqa), io.dk = fpm(dka), io.dv = gr.dv.raw_data();
  io.F = fpm(F), io.F0 = fpm(F0), io.rho = fpm(rho), io.ds0 = fpm(ds0), io.dn0 = fpm(dn0);
  // Gradients of the gates, the input scale and the bonus: written by the per-key core itself, by
  // finish_backward otherwise.
  tensor gk, dgs, db, du, scratch, dgh, dgh_part;
  // (dg and di straight into the caller's tensors where given, unless one is an input the kernels
  // still read, as an in-place gradient would be: a copy of GLA's fp32 [B, T, H, K] dg took 178 us of
  // a 3.4 ms fwd+bwd at B=8 T=4096, H100)
  const auto not_input = [&](const tensor& t) {
    for (const tensor* x : {&p.q, &p.k, &p.v, &p.g, &p.i})
      if (t.defined() && x->defined() && t.raw_data() == x->raw_data()) return tensor();
    return t;
  };
  const tensor into_dg = not_input(opt.into_dg), into_di = not_input(opt.into_di);
  const bool scalar_dg = spec.decay == decay_kind::per_token_scalar;
  if (a.gmode == cc::g_key) { LRNN_ASSIGN_OR_RETURN(gk, result_tensor(into_dg, in.g.shape(), dtype::f32, dev)); }
  if (head_core) {
    LRNN_ASSIGN_OR_RETURN(dgh, tensor::empty({p.H}, dtype::f32, dev));
    LRNN_ASSIGN_OR_RETURN(dgh_part, tensor::empty({cc::head_partials(a)}, dtype::f32, dev));
    io.dgh = fpm(dgh), io.dgh_part = fpm(dgh_part);
  }
  if (a.b) {  // (the input gate's gradient itself without the stabiliser)
    const tensor& into = p.stabilised ? tensor() : into_di;
    LRNN_ASSIGN_OR_RETURN(db, result_tensor(into, {p.B, p.T, p.H}, dtype::f32, dev));
  }
  if (spec.bonus) { LRNN_ASSIGN_OR_RETURN(du, tensor::zeros({p.H, p.K}, dtype::f32, dev)); }
  if (key_core) io.gk = fpm(gk), io.db = fpm(db), io.du = fpm(du), io.dq_out = gr.dq.raw_data(), io.dk_out = gr.dk.raw_data();
  LRNN_TRY(check(cc::core_backward(a, io), "backward kernel"));

  tensor dgo, dio, dm0;  // (mLSTM: the stabiliser's outputs)
  bool tail_done = false;
  if (!key_core && !(head_core && direct && !a.b)) {  // (else the core wrote everything)
    cc::finish_io fi;
    fi.F = fp(F), fi.F0 = fp(F0), fi.rho = fp(rho), fi.dq = fpm(dqa), fi.dk = fpm(dka);
    fi.core_wrote_dqdk = direct;
    fi.gk = fpm(gk), fi.db = fpm(db), fi.du = fpm(du);
    if (a.gmode != cc::g_none && a.gmode != cc::g_key && !head_core) {
      const tensor& into = scalar_dg && !p.stabilised ? into_dg : tensor();
      LRNN_ASSIGN_OR_RETURN(dgs, result_tensor(into, {p.B, p.T, p.H}, dtype::f32, dev));
      fi.dgs = fpm(dgs);
    }
    if (direct) {
      fi.scratch = fpm(xy);
    } else if (a.gmode != cc::g_none && !head_core) {
      LRNN_ASSIGN_OR_RETURN(scratch, tensor::empty({std::max<int64_t>(1, cc::finish_scratch_floats(a))}, dtype::f32, dev));
      fi.scratch = fpm(scratch);
    }
    fi.dq_out = gr.dq.raw_data(), fi.dk_out = gr.dk.raw_data();
    // mLSTM after a core that wrote dq, dk: this and the stabiliser's backward in one launch where it
    // can (cc::stabilised_backward_tail), else in turn.
    if (p.stabilised && direct) {
      LRNN_ASSIGN_OR_RETURN(dgo, result_tensor(scalar_dg ? into_dg : tensor(), {p.B, p.T, p.H}, dtype::f32, dev));
      LRNN_ASSIGN_OR_RETURN(dio, result_tensor(into_di, {p.B, p.T, p.H}, dtype::f32, dev));
      LRNN_ASSIGN_OR_RETURN(dm0, tensor::empty({p.N, p.H}, dtype::f32, dev));
      const int r = cc::stabilised_backward_tail(a, fi, fp(p.g), p.gs_mode, fp(p.i), fp(p.m0), fp(p.m), fp(dm_local), fp(dmT),
                                                 fpm(dgo), fpm(dio), fpm(dm0), fpm(p.stab_scratch));
      if (r != -1) LRNN_TRY(check(r, "backward tail (gate gradients and stabiliser)"));
      tail_done = r == 0;
    }
    if (!tail_done) LRNN_TRY(check(cc::finish_backward(a, fi), "gate gradients"));
  }

  // Gate gradients, mapped back through the stabiliser where there is one.
  tensor dg_scalar = dgs;  // [B, T, H] gradient of the scalar log decay (before any per-head sum)
  if (p.stabilised) {
    if (!dgo.defined()) { LRNN_ASSIGN_OR_RETURN(dgo, result_tensor(scalar_dg ? into_dg : tensor(), {p.B, p.T, p.H}, dtype::f32, dev)); }
    if (!dio.defined()) { LRNN_ASSIGN_OR_RETURN(dio, result_tensor(into_di, {p.B, p.T, p.H}, dtype::f32, dev)); }
    if (!dm0.defined()) { LRNN_ASSIGN_OR_RETURN(dm0, tensor::empty({p.N, p.H}, dtype::f32, dev)); }
    if (!tail_done)
      LRNN_TRY(check(cc::stabiliser_backward(a.N, a.H, a.K, a.max_len, a.offsets, fp(p.g), p.gs_mode, fp(p.i), fp(p.m0),
                                             fp(p.m), fp(dgs), fp(db), fp(dm_local), fp(dmT), fp(F), fpm(dgo), fpm(dio),
                                             fpm(dm0), fpm(p.stab_scratch)),
                     "stabiliser backward"));
    dg_scalar = dgo;
    gr.di = dio;
    if (init.s.defined()) gr.d_initial_state.m = dm0;
  } else if (spec.input_gate != input_gate_kind::none) {
    gr.di = db;
  }
  switch (spec.decay) {
    case decay_kind::none: break;
    case decay_kind::per_token_key: gr.dg = gk; break;
    case decay_kind::per_token_scalar: gr.dg = dg_scalar; break;
    case decay_kind::per_head_const: {
      if (head_core) {
        gr.dg = dgh;
        break;
      }
      LRNN_ASSIGN_OR_RETURN(gr.dg, tensor::empty({p.H}, dtype::f32, dev));
      LRNN_TRY(check(cc::sum_tokens(p.tokens, a.H, fp(dg_scalar), fpm(gr.dg)), "per-head gate sum"));
      break;
    }
  }
  if (spec.bonus) gr.du = du;
  if (init.s.defined()) {
    gr.d_initial_state.s = ds0;
    if (spec.normalizer) gr.d_initial_state.n = dn0;
  }
  return gr;
}

}  // namespace lrnn::ops::detail

#else  // CPU-only build

namespace lrnn::ops::detail {

result<int64_t> decay_attn_ctx_floats_cuda(const decay_attn_spec&, const decay_attn_inputs&, const std::vector<int64_t>&) {
  return make_error(status_code::unsupported, "decay_attn: CUDA tensors given but lrnn was built without CUDA");
}
result<decay_attn_output> decay_attn_forward_cuda(const decay_attn_spec&, const decay_attn_inputs&, const decay_attn_state&,
                                                  const std::vector<int64_t>&, const decay_attn_options&) {
  return make_error(status_code::unsupported, "decay_attn: CUDA tensors given but lrnn was built without CUDA");
}
result<decay_attn_grads> decay_attn_backward_cuda(const decay_attn_spec&, const decay_attn_inputs&, const decay_attn_state&,
                                                  const tensor&, const decay_attn_state&, const std::vector<int64_t>&,
                                                  const decay_attn_options&) {
  return make_error(status_code::unsupported, "decay_attn: CUDA tensors given but lrnn was built without CUDA");
}

}  // namespace lrnn::ops::detail

#endif
