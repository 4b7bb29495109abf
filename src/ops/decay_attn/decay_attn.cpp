// decay_attn: validation, the mapping of every spec onto the linear core of engine.h (mLSTM's
// stabiliser m as a scan over scalar gates, the normaliser as an extra value column of ones),
// and dispatch to the reference or a CPU form. The math is in README.md.
#include "ops/decay_attn/decay_attn.h"

#include "ops/decay_attn/cuda/chunk_host.h"
#include "ops/decay_attn/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <utility>

namespace lrnn::ops {

const char* decay_attn_form_name(decay_attn_form f) {
  switch (f) {
    case decay_attn_form::reference: return "reference";
    case decay_attn_form::recurrent: return "recurrent";
    case decay_attn_form::parallel: return "parallel";
    case decay_attn_form::chunk: return "chunk";
  }
  return "?";
}

namespace {

struct dims {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0, tokens = 0;
  std::vector<int64_t> offsets;
};

status expect_shape(const char* name, const tensor& t, const shape_t& want, const char* why) {
  if (!t.defined()) return make_error(status_code::invalid_argument, "decay_attn: {} is missing, expected {} ({})", name, shape_to_string(want), why);
  if (t.shape() != want)
    return make_error(status_code::invalid_argument, "decay_attn: {} is {}, expected {} ({})", name, t.describe(), shape_to_string(want), why);
  if (!is_floating(t.type())) return make_error(status_code::invalid_argument, "decay_attn: {} has dtype {}, expected a float dtype", name, dtype_name(t.type()));
  return {};
}

// Every tensor on the device of q (CPU, or one CUDA device for the CUDA chunk kernels).
status expect_device(const char* name, const tensor& t, const device& dev) {
  if (t.defined() && t.dev() != dev)
    return make_error(status_code::invalid_argument, "decay_attn: {} is on {}, expected {} (the device of q)", name,
                      t.dev().to_string(), dev.to_string());
  return {};
}

result<dims> validate(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init) {
  dims d;
  if (!in.q.defined() || in.q.dim() != 4)
    return make_error(status_code::invalid_argument, "decay_attn: q is {}, expected [B, T, H, K]", in.q.defined() ? in.q.describe() : "missing");
  d.B = in.q.size(0), d.T = in.q.size(1), d.H = in.q.size(2), d.K = in.q.size(3);
  LRNN_TRY(expect_shape("q", in.q, in.q.shape(), "[B, T, H, K]"));
  LRNN_TRY(expect_shape("k", in.k, in.q.shape(), "the shape of q"));
  if (!in.v.defined() || in.v.dim() != 4 || in.v.size(0) != d.B || in.v.size(1) != d.T || in.v.size(2) != d.H)
    return make_error(status_code::invalid_argument, "decay_attn: v is {}, expected [{}, {}, {}, V] (B, T, H of q)",
                      in.v.defined() ? in.v.describe() : "missing", d.B, d.T, d.H);
  d.V = in.v.size(3);
  LRNN_TRY(expect_shape("v", in.v, in.v.shape(), "[B, T, H, V]"));
  if (in.k.type() != in.q.type() || in.v.type() != in.q.type())
    return make_error(status_code::invalid_argument, "decay_attn: q, k, v have dtypes {}, {}, {}; expected one dtype",
                      dtype_name(in.q.type()), dtype_name(in.k.type()), dtype_name(in.v.type()));
  switch (spec.decay) {
    case decay_kind::none: break;
    case decay_kind::per_head_const: LRNN_TRY(expect_shape("g", in.g, {d.H}, "per_head_const decay: one log decay per head")); break;
    case decay_kind::per_token_scalar: LRNN_TRY(expect_shape("g", in.g, {d.B, d.T, d.H}, "per_token_scalar decay")); break;
    case decay_kind::per_token_key: LRNN_TRY(expect_shape("g", in.g, {d.B, d.T, d.H, d.K}, "per_token_key decay")); break;
  }
  if (spec.input_gate != input_gate_kind::none) LRNN_TRY(expect_shape("i", in.i, {d.B, d.T, d.H}, "input gate"));
  if (spec.bonus) LRNN_TRY(expect_shape("u", in.u, {d.H, d.K}, "bonus"));
  if (spec.bonus && (spec.input_gate != input_gate_kind::none || spec.normalizer))
    return make_error(status_code::unsupported, "decay_attn: the bonus (RWKV) cannot be combined with an input gate or the normaliser");
  if (spec.input_gate == input_gate_kind::exponential && spec.decay == decay_kind::per_token_key)
    return make_error(status_code::unsupported, "decay_attn: the exponential input gate needs a scalar decay (the stabiliser m is per head)");
  if (spec.input_gate == input_gate_kind::exponential && !spec.normalizer)
    return make_error(status_code::invalid_argument, "decay_attn: the exponential input gate needs normalizer = true (mLSTM)");
  {
    const device dev = in.q.dev();
    using named = std::pair<const char*, const tensor*>;
    for (const named& x : std::initializer_list<named>{{"k", &in.k}, {"v", &in.v}, {"g", &in.g}, {"i", &in.i}, {"u", &in.u},
                                                       {"initial state s", &init.s}, {"initial state n", &init.n},
                                                       {"initial state m", &init.m}})
      LRNN_TRY(expect_device(x.first, *x.second, dev));
  }
  if (in.cu_seqlens.defined()) {
    const tensor& c = in.cu_seqlens;
    if (c.type() != dtype::i32 || c.dim() != 1 || c.size(0) < 2)
      return make_error(status_code::invalid_argument, "decay_attn: cu_seqlens is {}, expected i32[N + 1] with N >= 1", c.describe());
    if (d.B != 1)
      return make_error(status_code::invalid_argument, "decay_attn: with cu_seqlens q must be packed as [1, total_T, H, K], got {}", in.q.describe());
    const tensor cc = c.to(device::cpu()).value().contiguous().value();
    const int32_t* cp = cc.data<int32_t>();
    d.N = c.size(0) - 1;
    for (int64_t n = 0; n <= d.N; ++n) {
      if ((n == 0 && cp[0] != 0) || (n > 0 && cp[n] < cp[n - 1]) || (n == d.N && cp[n] != d.T))
        return make_error(status_code::invalid_argument,
                          "decay_attn: cu_seqlens must start at 0, not decrease and end at total_T = {} (entry {} is {})", d.T, n, cp[n]);
      d.offsets.push_back(cp[n]);
    }
  } else {
    d.N = d.B;
    for (int64_t n = 0; n <= d.B; ++n) d.offsets.push_back(n * d.T);
  }
  d.tokens = d.B * d.T;
  if (init.s.defined()) {
    LRNN_TRY(expect_shape("initial state s", init.s, {d.N, d.H, d.K, d.V}, "[N, H, K, V]"));
    if (spec.normalizer) LRNN_TRY(expect_shape("initial state n", init.n, {d.N, d.H, d.K}, "[N, H, K], the normaliser travels with s"));
    if (spec.input_gate == input_gate_kind::exponential)
      LRNN_TRY(expect_shape("initial state m", init.m, {d.N, d.H}, "[N, H], the stabiliser travels with s"));
  } else if (init.n.defined() || init.m.defined()) {
    return make_error(status_code::invalid_argument, "decay_attn: initial state n or m given without s");
  }
  return d;
}

// Contiguous A-typed copy of a float tensor, or the tensor's own memory when it already is one.
template <typename A>
const A* load(const tensor& t, std::vector<A>& buf) {
  if (!t.defined()) return nullptr;
  if (t.type() == dtype_of<A>::value && t.is_contiguous()) return t.data<A>();
  const tensor c = t.contiguous().value();
  buf.resize(static_cast<size_t>(c.numel()));
  visit_dtype(c.type(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(c.raw_data());
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<A>(to_double(p[i]));
  });
  return buf.data();
}

template <typename A>
tensor tensor_from(const A* data, const shape_t& shape, dtype t) {
  tensor out = tensor::empty(shape, t).value();
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(out.raw_data());
    const int64_t n = out.numel();
    if constexpr (std::is_same_v<T, A>) std::memcpy(p, data, static_cast<size_t>(n) * sizeof(A));
    else for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(static_cast<double>(data[i]));
  });
  return out;
}

// Everything the engine needs, with the buffers that back it.
template <typename A>
struct prepared {
  dims d;
  detail::engine_problem<A> p;
  int64_t Vp = 0;  // V plus the normaliser column
  bool stabilised = false;
  std::vector<A> qb, kb, vb, gb, ib, bb, ub, s0b, m;  // m: [tokens, H] stabiliser after each token
  std::vector<A> gs;  // stabilised: the scalar log decay per [tokens, H] before stabilisation
  std::vector<A> m0;  // [N, H]
};

template <typename A>
void prepare(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init, const dims& d,
             int64_t chunk, prepared<A>& r) {
  r.d = d;
  auto& p = r.p;
  const int64_t H = d.H, K = d.K, V = d.V, tokens = d.tokens;
  r.Vp = V + (spec.normalizer ? 1 : 0);
  r.stabilised = spec.input_gate == input_gate_kind::exponential;
  p.N = d.N, p.H = H, p.K = K, p.V = r.Vp, p.offsets = d.offsets, p.chunk = chunk;
  p.scale = static_cast<A>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(K)));
  p.q = load<A>(in.q, r.qb);
  p.k = load<A>(in.k, r.kb);
  p.ld_qk = H * K;
  if (spec.normalizer) {
    std::vector<A> tmp;
    const A* v = load<A>(in.v, tmp);
    r.vb.resize(tokens * H * r.Vp);
    for (int64_t t = 0; t < tokens * H; ++t) {
      std::copy(v + t * V, v + (t + 1) * V, r.vb.begin() + t * r.Vp);
      r.vb[t * r.Vp + V] = A(1);
    }
    p.v = r.vb.data();
  } else {
    p.v = load<A>(in.v, r.vb);
  }
  p.ld_v = H * r.Vp;
  p.u = spec.bonus ? load<A>(in.u, r.ub) : nullptr;
  // Initial state with the normaliser as column V.
  if (init.s.defined()) {
    if (spec.normalizer) {
      std::vector<A> sb, nb;
      const A* s = load<A>(init.s, sb);
      const A* n = load<A>(init.n, nb);
      r.s0b.resize(d.N * H * K * r.Vp);
      for (int64_t row = 0; row < d.N * H * K; ++row) {
        std::copy(s + row * V, s + (row + 1) * V, r.s0b.begin() + row * r.Vp);
        r.s0b[row * r.Vp + V] = n[row];
      }
      p.s0 = r.s0b.data();
    } else {
      p.s0 = load<A>(init.s, r.s0b);
    }
  }
  // Gates.
  const A* iv = spec.input_gate != input_gate_kind::none ? load<A>(in.i, r.ib) : nullptr;
  if (!r.stabilised && (spec.decay == decay_kind::per_token_key || spec.decay == decay_kind::per_token_scalar)) {
    p.g = load<A>(in.g, r.gb);
    p.g_per_key = spec.decay == decay_kind::per_token_key;
    p.b = iv;
    return;
  }
  std::vector<A> graw;
  const A* g = spec.decay != decay_kind::none ? load<A>(in.g, graw) : nullptr;
  if (!r.stabilised) {
    if (spec.decay == decay_kind::per_head_const) {
      r.gb.resize(tokens * H);
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t h = 0; h < H; ++h) r.gb[t * H + h] = g[h];
      p.g = r.gb.data();
    }
    p.b = iv;
    return;
  }
  // mLSTM: m_t = max(gs_t + m_{t-1}, i_t); the core sees g~ = gs + m_{t-1} - m_t and b~ = i - m_t.
  r.gs.assign(tokens * H, A(0));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t h = 0; h < H; ++h)
      r.gs[t * H + h] = spec.decay == decay_kind::per_head_const ? g[h] : spec.decay == decay_kind::per_token_scalar ? g[t * H + h] : A(0);
  r.m0.assign(d.N * H, A(0));
  if (init.m.defined()) {
    std::vector<A> mb;
    const A* m0 = load<A>(init.m, mb);
    std::copy(m0, m0 + d.N * H, r.m0.begin());
  }
  r.m.resize(tokens * H);
  r.gb.resize(tokens * H);
  r.bb.resize(tokens * H);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      A mp = r.m0[n * H + h];
      for (int64_t t = d.offsets[n]; t < d.offsets[n + 1]; ++t) {
        const A gt = r.gs[t * H + h], it = iv[t * H + h];
        const A mt = std::max(gt + mp, it);
        r.m[t * H + h] = mt;
        r.gb[t * H + h] = std::min(A(0), gt + mp - mt);
        r.bb[t * H + h] = std::min(A(0), it - mt);
        mp = mt;
      }
    }
  p.g = r.gb.data();
  p.b = r.bb.data();
}

template <typename A>
void run_engine_forward(decay_attn_form form, const detail::engine_problem<A>& p, const detail::engine_forward_out<A>& o) {
  switch (form) {
    case decay_attn_form::reference:
    case decay_attn_form::recurrent: detail::engine_forward_recurrent(p, o); return;
    case decay_attn_form::parallel: detail::engine_forward_parallel(p, o); return;
    case decay_attn_form::chunk: detail::engine_forward_chunk(p, o); return;
  }
}

template <typename A>
void run_engine_backward(decay_attn_form form, const detail::engine_problem<A>& p, const detail::engine_backward_io<A>& io) {
  switch (form) {
    case decay_attn_form::reference:
    case decay_attn_form::recurrent: detail::engine_backward_recurrent(p, io); return;
    case decay_attn_form::parallel: detail::engine_backward_parallel(p, io); return;
    case decay_attn_form::chunk: detail::engine_backward_chunk(p, io); return;
  }
}

// Denominator of the normalised output: max(|n^T q|, floor) + eps, floor = exp(-m_t) or 1.
template <typename A>
A norm_floor(const prepared<A>& r, int64_t t, int64_t h) {
  return r.stabilised ? std::exp(-r.m[t * r.d.H + h]) : A(1);
}

template <typename A>
result<decay_attn_output> forward_cpu(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init,
                                      const dims& d, decay_attn_form form, const decay_attn_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt.chunk_size, r);
  const int64_t H = d.H, K = d.K, V = d.V, Vp = r.Vp;
  const dtype st = dtype_of<A>::value;
  decay_attn_output out;
  LRNN_ASSIGN_OR_RETURN(out.o, tensor::empty(in.v.shape(), in.q.type()));  // [B, T, H, V]
  std::vector<A> ob, sfb;
  detail::engine_forward_out<A> eo;
  const bool direct = !spec.normalizer && in.q.type() == st;
  if (direct) {
    eo.o = out.o.data<A>();
  } else {
    ob.resize(d.tokens * H * Vp);
    eo.o = ob.data();
  }
  eo.ld_o = H * Vp;
  if (opt.output_final_state) {
    sfb.resize(d.N * H * K * Vp);
    eo.s_final = sfb.data();
  }
  run_engine_forward(form, r.p, eo);
  if (spec.normalizer && opt.output_den) {
    std::vector<A> den(d.tokens * H);
    for (int64_t t = 0; t < d.tokens * H; ++t) den[t] = ob[t * Vp + V];
    out.den = tensor_from(den.data(), {in.q.size(0), in.q.size(1), H}, st);
  }
  if (!direct) {
    if (spec.normalizer) {
      const A eps = static_cast<A>(spec.eps);
      std::vector<A> hb(d.tokens * H * V);
      for (int64_t t = 0; t < d.tokens; ++t)
        for (int64_t h = 0; h < H; ++h) {
          const A* o = ob.data() + (t * H + h) * Vp;
          const A den = std::max(std::fabs(o[V]), norm_floor(r, t, h)) + eps;
          for (int64_t j = 0; j < V; ++j) hb[(t * H + h) * V + j] = o[j] / den;
        }
      out.o = tensor_from(hb.data(), in.v.shape(), in.q.type());
    } else {
      out.o = tensor_from(ob.data(), in.v.shape(), in.q.type());
    }
  }
  if (opt.output_final_state) {
    if (spec.normalizer) {
      std::vector<A> s(d.N * H * K * V), n(d.N * H * K);
      for (int64_t row = 0; row < d.N * H * K; ++row) {
        std::copy(sfb.begin() + row * Vp, sfb.begin() + row * Vp + V, s.begin() + row * V);
        n[row] = sfb[row * Vp + V];
      }
      out.final_state.s = tensor_from(s.data(), {d.N, H, K, V}, st);
      out.final_state.n = tensor_from(n.data(), {d.N, H, K}, st);
    } else {
      out.final_state.s = tensor_from(sfb.data(), {d.N, H, K, V}, st);
    }
    if (r.stabilised) {
      std::vector<A> mT(d.N * H);
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t h = 0; h < H; ++h)
          mT[n * H + h] = d.offsets[n + 1] > d.offsets[n] ? r.m[(d.offsets[n + 1] - 1) * H + h] : r.m0[n * H + h];
      out.final_state.m = tensor_from(mT.data(), {d.N, H}, st);
    }
  }
  return out;
}

template <typename A>
result<decay_attn_grads> backward_cpu(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init,
                                      const tensor& d_o_in, const decay_attn_state& d_final, const dims& d,
                                      decay_attn_form form, const decay_attn_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt.chunk_size, r);
  const int64_t H = d.H, K = d.K, V = d.V, Vp = r.Vp, tokens = d.tokens;
  const dtype st = dtype_of<A>::value;
  std::vector<A> dob_raw;
  const A* dov = load<A>(d_o_in, dob_raw);
  std::vector<A> dop;  // gradient of the core's output [tokens, H, Vp]
  std::vector<A> dm_local;  // stabilised: the token's own d L / d m_t (the stabiliser backward below)
  std::vector<A> s_final;   // stabilised: the core's final state, for <S_T, dS_T>
  if (spec.normalizer) {
    std::vector<A> ob(tokens * H * Vp);
    if (r.stabilised) s_final.assign(d.N * H * K * Vp, A(0));
    detail::engine_forward_out<A> eo{ob.data(), H * Vp, s_final.empty() ? nullptr : s_final.data()};
    run_engine_forward(form, r.p, eo);
    dop.resize(tokens * H * Vp);
    if (r.stabilised) dm_local.assign(tokens * H, A(0));
    const A eps = static_cast<A>(spec.eps);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const A* o = ob.data() + (t * H + h) * Vp;
        const A* dh = dov + (t * H + h) * V;
        A* dn = dop.data() + (t * H + h) * Vp;
        const A fl = norm_floor(r, t, h);
        const A den = std::max(std::fabs(o[V]), fl) + eps;
        A hd = 0;
        for (int64_t j = 0; j < V; ++j) {
          dn[j] = dh[j] / den;
          hd += o[j] / den * dh[j];
        }
        dn[V] = std::fabs(o[V]) > fl ? (o[V] > 0 ? -hd : hd) / den : A(0);
        if (r.stabilised) dm_local[t * H + h] = -hd * eps / den;
      }
  } else {
    dop.assign(dov, dov + tokens * H * V);
  }
  std::vector<A> dsf;
  if (d_final.s.defined() || d_final.n.defined()) {
    dsf.assign(d.N * H * K * Vp, A(0));
    std::vector<A> sb, nb;
    const A* s = load<A>(d_final.s, sb);
    const A* n = load<A>(d_final.n, nb);
    for (int64_t row = 0; row < d.N * H * K; ++row) {
      if (s) std::copy(s + row * V, s + (row + 1) * V, dsf.begin() + row * Vp);
      if (n && spec.normalizer) dsf[row * Vp + V] = n[row];
    }
  }
  std::vector<A> dq(tokens * H * K), dk(tokens * H * K), dv(tokens * H * Vp), dg, db, du, ds0;
  detail::engine_backward_io<A> io;
  io.d_o = dop.data();
  io.d_s_final = dsf.empty() ? nullptr : dsf.data();
  io.dq = dq.data(), io.dk = dk.data(), io.dv = dv.data();
  if (r.p.g) {
    dg.assign(r.p.g_per_key ? tokens * H * K : tokens * H, A(0));
    io.dg = dg.data();
  }
  if (r.p.b) {
    db.assign(tokens * H, A(0));
    io.db = db.data();
  }
  if (r.p.u) {
    du.assign(d.N * H * K, A(0));
    io.du = du.data();
  }
  if (r.p.s0) {
    ds0.assign(d.N * H * K * Vp, A(0));
    io.ds0 = ds0.data();
  }
  run_engine_backward(form, r.p, io);

  decay_attn_grads gr;
  gr.dq = tensor_from(dq.data(), in.q.shape(), in.q.type());
  gr.dk = tensor_from(dk.data(), in.k.shape(), in.k.type());
  if (Vp != V) {
    std::vector<A> dvv(tokens * H * V);
    for (int64_t t = 0; t < tokens * H; ++t) std::copy(dv.begin() + t * Vp, dv.begin() + t * Vp + V, dvv.begin() + t * V);
    gr.dv = tensor_from(dvv.data(), in.v.shape(), in.v.type());
  } else {
    gr.dv = tensor_from(dv.data(), in.v.shape(), in.v.type());
  }
  // Gate gradients, mapped back through the stabiliser where there is one. Moving m_t alone by d
  // (a~_t, b~_t -= d, a~_{t+1} += d) scales the core state S_t by e^-d and nothing after it, so
  // d L / d m_t (direct) = -o'_t . do'_t (+ the floor's term) - [t = T] <S_T, dS_T>: per token, no
  // difference of the long gate-gradient sums (their rounding dominated d m0, README). Through the
  // normaliser the token's part is -(h . dh) eps / (max(|den|, floor) + eps) (dm_local).
  std::vector<A> dgs, di, dm0;
  if (r.stabilised) {
    dgs.assign(tokens * H, A(0));
    di.assign(tokens * H, A(0));
    dm0.assign(d.N * H, A(0));
    std::vector<A> dmT(d.N * H, A(0));
    if (d_final.m.defined()) {
      std::vector<A> mb;
      const A* m = load<A>(d_final.m, mb);
      std::copy(m, m + d.N * H, dmT.begin());
    }
    std::vector<A> iraw;
    const A* iv = load<A>(in.i, iraw);
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t tb = d.offsets[n], te = d.offsets[n + 1];
        // <S_T, dS_T> over keys and value columns (the normaliser's too): m_T scales the final state.
        A F = 0;
        if (!dsf.empty())
          for (int64_t j = 0; j < K * Vp; ++j) F += s_final[(n * H + h) * K * Vp + j] * dsf[(n * H + h) * K * Vp + j];
        A carry = dmT[n * H + h] - F;  // d L / d m_t from m_{t+1} (and the final state), local terms apart
        for (int64_t t = te - 1; t >= tb; --t) {
          const A dm = carry + dm_local[t * H + h];
          const A mp = t > tb ? r.m[(t - 1) * H + h] : r.m0[n * H + h];
          const bool dec = r.gs[t * H + h] + mp >= iv[t * H + h];
          dgs[t * H + h] = dg[t * H + h] + (dec ? dm : A(0));
          di[t * H + h] = db[t * H + h] + (dec ? A(0) : dm);
          carry = dec ? dm : A(0);
        }
        dm0[n * H + h] = te > tb ? dg[tb * H + h] + carry : dmT[n * H + h];
      }
  } else {
    dgs = dg;
    di = db;
  }
  switch (spec.decay) {
    case decay_kind::none: break;
    case decay_kind::per_token_key:
    case decay_kind::per_token_scalar: gr.dg = tensor_from(dgs.data(), in.g.shape(), st); break;
    case decay_kind::per_head_const: {
      std::vector<A> s(H, A(0));
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t h = 0; h < H; ++h) s[h] += dgs[t * H + h];
      gr.dg = tensor_from(s.data(), {H}, st);
      break;
    }
  }
  if (spec.input_gate != input_gate_kind::none) gr.di = tensor_from(di.data(), in.i.shape(), st);
  if (spec.bonus) {
    std::vector<A> s(H * K, A(0));
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t j = 0; j < H * K; ++j) s[j] += du[n * H * K + j];
    gr.du = tensor_from(s.data(), {H, K}, st);
  }
  if (init.s.defined()) {
    std::vector<A> s(d.N * H * K * V), n(d.N * H * K);
    for (int64_t row = 0; row < d.N * H * K; ++row) {
      std::copy(ds0.begin() + row * Vp, ds0.begin() + row * Vp + V, s.begin() + row * V);
      if (spec.normalizer) n[row] = ds0[row * Vp + V];
    }
    gr.d_initial_state.s = tensor_from(s.data(), {d.N, H, K, V}, st);
    if (spec.normalizer) gr.d_initial_state.n = tensor_from(n.data(), {d.N, H, K}, st);
    if (r.stabilised) gr.d_initial_state.m = tensor_from(dm0.data(), {d.N, H}, st);
  }
  return gr;
}

status check_options(const decay_attn_options& opt) {
  if (opt.chunk_size < 16 || opt.chunk_size % 16 != 0 || opt.chunk_size > 1024)
    return make_error(status_code::invalid_argument, "decay_attn: chunk_size {} must be a multiple of 16 in [16, 1024]", opt.chunk_size);
  return {};
}

// The normaliser's saved forward (decay_attn_options::saved_o / saved_den): both or neither, shaped
// and typed as the forward returns them.
status check_saved(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_options& opt) {
  const bool o = opt.saved_o.defined(), den = opt.saved_den.defined();
  if (!o && !den) return {};
  if (!spec.normalizer)
    return make_error(status_code::invalid_argument, "decay_attn: options.saved_o / saved_den are the normaliser's saved forward; this spec has no normaliser");
  if (o != den)
    return make_error(status_code::invalid_argument, "decay_attn: options.saved_o and saved_den go together; only {} is given",
                      o ? "saved_o" : "saved_den");
  LRNN_TRY(expect_shape("options.saved_o", opt.saved_o, in.v.shape(), "the forward's o [B, T, H, V]"));
  LRNN_TRY(expect_shape("options.saved_den", opt.saved_den, {in.q.size(0), in.q.size(1), in.q.size(2)}, "the forward's den [B, T, H]"));
  const dtype st = in.q.type() == dtype::f64 ? dtype::f64 : dtype::f32;
  if (opt.saved_o.type() != in.q.type() || opt.saved_den.type() != st)
    return make_error(status_code::invalid_argument, "decay_attn: options.saved_o / saved_den are {} / {}, expected {} / {} (as the forward returns them)",
                      dtype_name(opt.saved_o.type()), dtype_name(opt.saved_den.type()), dtype_name(in.q.type()), dtype_name(st));
  return {};
}

result<int64_t> ctx_floats(const decay_attn_spec& spec, const decay_attn_inputs& in, const dims& d) {
  if (in.q.dev().is_cuda()) return detail::decay_attn_ctx_floats_cuda(spec, in, d.offsets);
  return int64_t{0};
}

// decay_attn_options::ctx: f32 [ctx_floats] on the inputs' device.
status check_ctx(const decay_attn_spec& spec, const decay_attn_inputs& in, const dims& d, const decay_attn_options& opt) {
  if (!opt.ctx.defined()) return {};
  LRNN_ASSIGN_OR_RETURN(int64_t n, ctx_floats(spec, in, d));
  LRNN_TRY(expect_device("options.ctx", opt.ctx, in.q.dev()));
  if (opt.ctx.type() != dtype::f32 || opt.ctx.dim() != 1 || opt.ctx.size(0) != n || !opt.ctx.is_contiguous())
    return make_error(status_code::invalid_argument,
                      "decay_attn: options.ctx is {}, expected a contiguous f32[{}] (decay_attn_ctx_floats for these inputs)",
                      opt.ctx.describe(), n);
  return {};
}

}  // namespace

result<int64_t> decay_attn_ctx_floats(const decay_attn_spec& spec, const decay_attn_inputs& in) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, decay_attn_state{}));
  return ctx_floats(spec, in, d);
}

result<decay_attn_output> decay_attn_forward(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                             const decay_attn_state& init, decay_attn_form form,
                                             const decay_attn_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init));
  LRNN_TRY(check_options(opt));
  LRNN_TRY(check_ctx(spec, in, d, opt));
  // CUDA tensors: the CUDA chunk kernels, whatever the form (cuda/chunk_host.cpp).
  if (in.q.dev().is_cuda()) return detail::decay_attn_forward_cuda(spec, in, init, d.offsets, opt);
  if (form == decay_attn_form::reference) return detail::decay_attn_forward_reference(spec, in, init, opt.output_final_state);
  if (in.q.type() == dtype::f64) return forward_cpu<double>(spec, in, init, d, form, opt);
  return forward_cpu<float>(spec, in, init, d, form, opt);
}

result<decay_attn_grads> decay_attn_backward(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                             const decay_attn_state& init, const tensor& d_o,
                                             const decay_attn_state& d_final, decay_attn_form form,
                                             const decay_attn_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init));
  LRNN_TRY(check_options(opt));
  LRNN_TRY(expect_shape("d_o", d_o, in.v.shape(), "the shape of o"));
  const shape_t s_shape{d.N, d.H, d.K, d.V}, n_shape{d.N, d.H, d.K}, m_shape{d.N, d.H};
  if (d_final.s.defined()) LRNN_TRY(expect_shape("d_final_state s", d_final.s, s_shape, "[N, H, K, V]"));
  if (d_final.n.defined()) LRNN_TRY(expect_shape("d_final_state n", d_final.n, n_shape, "[N, H, K]"));
  if (d_final.m.defined()) LRNN_TRY(expect_shape("d_final_state m", d_final.m, m_shape, "[N, H]"));
  LRNN_TRY(check_saved(spec, in, opt));
  LRNN_TRY(check_ctx(spec, in, d, opt));
  if (in.q.dev().is_cuda()) {
    using named = std::pair<const char*, const tensor*>;
    for (const named& x : std::initializer_list<named>{{"d_o", &d_o}, {"d_final_state s", &d_final.s},
                                                       {"d_final_state n", &d_final.n}, {"d_final_state m", &d_final.m},
                                                       {"options.saved_o", &opt.saved_o}, {"options.saved_den", &opt.saved_den}})
      LRNN_TRY(expect_device(x.first, *x.second, in.q.dev()));
    return detail::decay_attn_backward_cuda(spec, in, init, d_o, d_final, d.offsets, opt);
  }
  if (form == decay_attn_form::reference) return detail::decay_attn_backward_reference(spec, in, init, d_o, d_final);
  if (in.q.type() == dtype::f64) return backward_cpu<double>(spec, in, init, d_o, d_final, d, form, opt);
  return backward_cpu<float>(spec, in, init, d_o, d_final, d, form, opt);
}

namespace detail {
result<tensor> decay_attn_step_cuda(const decay_attn_spec& spec, const decay_attn_inputs& token, decay_attn_state& state);  // cuda/recurrent_step.cpp
}

result<tensor> decay_attn_step(const decay_attn_spec& spec, const decay_attn_inputs& token, decay_attn_state& state) {
  if (token.q.defined() && token.q.dev().is_cuda()) return detail::decay_attn_step_cuda(spec, token, state);
  if (!token.q.defined() || token.q.dim() != 3)
    return make_error(status_code::invalid_argument, "decay_attn_step: q is {}, expected [B, H, K]", token.q.defined() ? token.q.describe() : "missing");
  const int64_t B = token.q.size(0);
  auto one_token = [B](const tensor& t, bool per_token) -> result<tensor> {
    if (!t.defined() || !per_token) return t;
    shape_t s = t.shape();
    if (s.empty() || s[0] != B) return make_error(status_code::invalid_argument, "decay_attn_step: {} expected to start with B = {}", t.describe(), B);
    s.insert(s.begin() + 1, 1);
    return t.reshape(s);
  };
  decay_attn_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.q, one_token(token.q, true));
  LRNN_ASSIGN_OR_RETURN(in.k, one_token(token.k, true));
  LRNN_ASSIGN_OR_RETURN(in.v, one_token(token.v, true));
  LRNN_ASSIGN_OR_RETURN(in.g, one_token(token.g, spec.decay != decay_kind::per_head_const));
  LRNN_ASSIGN_OR_RETURN(in.i, one_token(token.i, true));
  in.u = token.u;
  if (!in.v.defined()) return make_error(status_code::invalid_argument, "decay_attn_step: v is missing, expected [B, H, V]");
  LRNN_ASSIGN_OR_RETURN(auto out, decay_attn_forward(spec, in, state, decay_attn_form::recurrent));
  state = out.final_state;
  return out.o.reshape({B, in.v.size(2), in.v.size(3)});
}

}  // namespace lrnn::ops
