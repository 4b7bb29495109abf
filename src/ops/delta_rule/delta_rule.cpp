// delta_rule: validation (messages name the tensor and the expected shape), the optional q/k L2
// normalisation and its gradient, and dispatch to the reference or a CPU form (cpu/). README.md.
#include "ops/delta_rule/delta_rule.h"

#include "ops/common/seq_util.h"

#include <cmath>
#include <tuple>

namespace lrnn::ops {

const char* delta_kind_name(delta_kind k) {
  switch (k) {
    case delta_kind::delta: return "delta";
    case delta_kind::gated: return "gated";
    case delta_kind::dplr: return "dplr";
  }
  return "?";
}

const char* delta_rule_form_name(delta_rule_form f) {
  switch (f) {
    case delta_rule_form::reference: return "reference";
    case delta_rule_form::recurrent: return "recurrent";
    case delta_rule_form::chunk: return "chunk";
  }
  return "?";
}

namespace {

constexpr const char* op = "delta_rule";
using seq_util::expect_float;
using seq_util::load_as;
using seq_util::tensor_from;

struct dims {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0;
  std::vector<int64_t> offsets;
};

status expect_absent(const char* name, const tensor& t, delta_kind kind) {
  if (t.defined())
    return make_error(status_code::invalid_argument, "delta_rule: {} is given, but kind {} takes no {}", name, delta_kind_name(kind), name);
  return {};
}

result<dims> validate(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init) {
  dims d;
  if (!in.q.defined() || in.q.dim() != 4)
    return make_error(status_code::invalid_argument, "delta_rule: q is {}, expected [B, T, H, K]", in.q.defined() ? in.q.describe() : "missing");
  d.B = in.q.size(0), d.T = in.q.size(1), d.H = in.q.size(2), d.K = in.q.size(3);
  const shape_t qs = in.q.shape();
  LRNN_TRY(expect_float(op, "q", in.q, qs, "[B, T, H, K]"));
  LRNN_TRY(expect_float(op, "k", in.k, qs, "the shape of q"));
  if (!in.v.defined() || in.v.dim() != 4 || in.v.size(0) != d.B || in.v.size(1) != d.T || in.v.size(2) != d.H)
    return make_error(status_code::invalid_argument, "delta_rule: v is {}, expected [{}, {}, {}, V] (B, T, H of q)",
                      in.v.defined() ? in.v.describe() : "missing", d.B, d.T, d.H);
  d.V = in.v.size(3);
  LRNN_TRY(expect_float(op, "v", in.v, in.v.shape(), "[B, T, H, V]"));
  const shape_t bth{d.B, d.T, d.H};
  switch (spec.kind) {
    case delta_kind::delta:
    case delta_kind::gated:
      LRNN_TRY(expect_float(op, "beta", in.beta, bth, "[B, T, H], one writing strength per head"));
      if (spec.kind == delta_kind::gated) {
        LRNN_TRY(expect_float(op, "g", in.g, bth, "[B, T, H], gated: one log decay per head"));
      } else {
        LRNN_TRY(expect_absent("g", in.g, spec.kind));
      }
      LRNN_TRY(expect_absent("w", in.w, spec.kind));
      LRNN_TRY(expect_absent("a", in.a, spec.kind));
      LRNN_TRY(expect_absent("b", in.b, spec.kind));
      break;
    case delta_kind::dplr:
      LRNN_TRY(expect_float(op, "w", in.w, qs, "[B, T, H, K], dplr: log decay per key"));
      LRNN_TRY(expect_float(op, "a", in.a, qs, "[B, T, H, K], dplr"));
      LRNN_TRY(expect_float(op, "b", in.b, qs, "[B, T, H, K], dplr"));
      LRNN_TRY(expect_absent("beta", in.beta, spec.kind));
      LRNN_TRY(expect_absent("g", in.g, spec.kind));
      if (spec.qk_l2norm) return make_error(status_code::invalid_argument, "delta_rule: qk_l2norm is for delta and gated, not dplr");
      break;
  }
  LRNN_ASSIGN_OR_RETURN(d.offsets, seq_util::sequence_offsets(op, in.cu_seqlens, d.B, d.T));
  d.N = static_cast<int64_t>(d.offsets.size()) - 1;
  if (init.s.defined()) LRNN_TRY(expect_float(op, "initial state s", init.s, {d.N, d.H, d.K, d.V}, "[N, H, K, V]"));
  return d;
}

status check_options(const delta_rule_options& opt) {
  if (opt.chunk_size < 16 || opt.chunk_size % 16 != 0 || opt.chunk_size > 256)
    return make_error(status_code::invalid_argument, "delta_rule: chunk_size {} must be a multiple of 16 in [16, 256]", opt.chunk_size);
  return {};
}

// The problem in type A: contiguous inputs, q and k normalised when asked (rq, rk keep 1 / norms).
template <typename A>
struct prepared {
  detail::delta_problem<A> p;
  std::vector<A> qb, kb, vb, betab, gb, wb, ab, bb, s0b, qr, kr;
};

template <typename A>
void l2norm_in_place(std::vector<A>& x, const A* src, int64_t rows, int64_t K, A eps, std::vector<A>& r) {
  if (x.data() != src) x.assign(src, src + rows * K);
  r.resize(rows);
  for (int64_t i = 0; i < rows; ++i) {
    A ss = 0;
    for (int64_t d = 0; d < K; ++d) ss += x[i * K + d] * x[i * K + d];
    r[i] = A(1) / std::sqrt(ss + eps);
    for (int64_t d = 0; d < K; ++d) x[i * K + d] *= r[i];
  }
}

template <typename A>
void prepare(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init, const dims& d,
             const delta_rule_options& opt, prepared<A>& r) {
  auto& p = r.p;
  p.kind = spec.kind;
  p.N = d.N, p.H = d.H, p.K = d.K, p.V = d.V, p.chunk = opt.chunk_size, p.offsets = d.offsets;
  p.scale = static_cast<A>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(d.K)));
  p.q = load_as<A>(in.q, r.qb), p.k = load_as<A>(in.k, r.kb), p.v = load_as<A>(in.v, r.vb);
  p.beta = load_as<A>(in.beta, r.betab), p.g = load_as<A>(in.g, r.gb), p.w = load_as<A>(in.w, r.wb);
  p.a = load_as<A>(in.a, r.ab), p.b = load_as<A>(in.b, r.bb), p.s0 = load_as<A>(init.s, r.s0b);
  if (spec.qk_l2norm) {
    const int64_t rows = d.B * d.T * d.H;
    const A eps = static_cast<A>(spec.l2norm_eps);
    l2norm_in_place(r.qb, p.q, rows, d.K, eps, r.qr);
    l2norm_in_place(r.kb, p.k, rows, d.K, eps, r.kr);
    p.q = r.qb.data(), p.k = r.kb.data();
  }
}

template <typename A>
result<delta_rule_output> forward_cpu(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init,
                                      const dims& d, delta_rule_form form, const delta_rule_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt, r);
  seq_util::out_buffer<A> o;
  LRNN_TRY(o.init(in.v.shape(), in.q.type()));
  std::vector<A> sf(opt.output_final_state ? d.N * d.H * d.K * d.V : 0);
  A* sfp = opt.output_final_state ? sf.data() : nullptr;
  if (form == delta_rule_form::chunk && spec.kind == delta_kind::dplr) {
    detail::delta_forward_dplr_chunk(r.p, o.ptr, sfp);
  } else if (form == delta_rule_form::chunk) {
    detail::delta_forward_chunk(r.p, o.ptr, sfp);
  } else {
    detail::delta_forward_recurrent(r.p, o.ptr, sfp);
  }
  delta_rule_output out;
  LRNN_ASSIGN_OR_RETURN(out.o, o.finish());
  if (sfp) {
    LRNN_ASSIGN_OR_RETURN(out.final_state.s, tensor_from(sfp, {d.N, d.H, d.K, d.V}, dtype_of<A>::value));
  }
  return out;
}

template <typename A>
result<delta_rule_grads> backward_cpu(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init,
                                      const tensor& d_o, const delta_rule_state& d_final, const dims& d, delta_rule_form form,
                                      const delta_rule_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt, r);
  const int64_t rows = d.B * d.T * d.H, K = d.K;
  std::vector<A> dob, dsfb;
  detail::delta_grads_io<A> io;
  io.d_o = load_as<A>(d_o, dob);
  io.d_s_final = load_as<A>(d_final.s, dsfb);
  std::vector<A> dq(rows * K), dk(rows * K), dv(rows * d.V), dbeta, dg, dw, da, db, ds0;
  io.dq = dq.data(), io.dk = dk.data(), io.dv = dv.data();
  if (spec.kind == delta_kind::dplr) {
    dw.resize(rows * K), da.resize(rows * K), db.resize(rows * K);
    io.dw = dw.data(), io.da = da.data(), io.db = db.data();
  } else {
    dbeta.resize(rows);
    io.dbeta = dbeta.data();
    if (spec.kind == delta_kind::gated) {
      dg.resize(rows);
      io.dg = dg.data();
    }
  }
  if (init.s.defined()) {
    ds0.resize(d.N * d.H * K * d.V);
    io.ds0 = ds0.data();
  }
  if (form == delta_rule_form::chunk && spec.kind == delta_kind::dplr) {
    detail::delta_backward_dplr_chunk(r.p, io);
  } else if (form == delta_rule_form::chunk) {
    detail::delta_backward_chunk(r.p, io);
  } else {
    detail::delta_backward_recurrent(r.p, io);
  }
  if (spec.qk_l2norm) {
    for (auto [y, rr, g] : {std::tuple{r.p.q, r.qr.data(), dq.data()}, std::tuple{r.p.k, r.kr.data(), dk.data()}})
      for (int64_t i = 0; i < rows; ++i) {
        A dot = 0;
        for (int64_t x = 0; x < K; ++x) dot += y[i * K + x] * g[i * K + x];
        for (int64_t x = 0; x < K; ++x) g[i * K + x] = rr[i] * (g[i * K + x] - y[i * K + x] * dot);
      }
  }
  delta_rule_grads gr;
  auto put = [](tensor& dst, const std::vector<A>& src, const tensor& like) -> status {
    if (!like.defined()) return {};
    LRNN_ASSIGN_OR_RETURN(dst, tensor_from(src.data(), like.shape(), like.type()));
    return {};
  };
  LRNN_TRY(put(gr.dq, dq, in.q));
  LRNN_TRY(put(gr.dk, dk, in.k));
  LRNN_TRY(put(gr.dv, dv, in.v));
  if (spec.kind == delta_kind::dplr) {
    LRNN_TRY(put(gr.dw, dw, in.w));
    LRNN_TRY(put(gr.da, da, in.a));
    LRNN_TRY(put(gr.db, db, in.b));
  } else {
    LRNN_TRY(put(gr.dbeta, dbeta, in.beta));
    if (spec.kind == delta_kind::gated) LRNN_TRY(put(gr.dg, dg, in.g));
  }
  LRNN_TRY(put(gr.d_initial_state.s, ds0, init.s));
  return gr;
}

}  // namespace

result<delta_rule_output> delta_rule_forward(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                             const delta_rule_state& init, delta_rule_form form,
                                             const delta_rule_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init));
  LRNN_TRY(check_options(opt));
  switch (form) {
    case delta_rule_form::reference: return detail::delta_rule_forward_reference(spec, in, init, opt.output_final_state);
    case delta_rule_form::recurrent:
    case delta_rule_form::chunk: break;
  }
  if (in.q.type() == dtype::f64) return forward_cpu<double>(spec, in, init, d, form, opt);
  return forward_cpu<float>(spec, in, init, d, form, opt);
}

result<delta_rule_grads> delta_rule_backward(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                             const delta_rule_state& init, const tensor& d_o,
                                             const delta_rule_state& d_final, delta_rule_form form,
                                             const delta_rule_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init));
  LRNN_TRY(check_options(opt));
  LRNN_TRY(expect_float(op, "d_o", d_o, in.v.shape(), "the shape of o"));
  if (d_final.s.defined()) LRNN_TRY(expect_float(op, "d_final_state s", d_final.s, {d.N, d.H, d.K, d.V}, "[N, H, K, V]"));
  switch (form) {
    case delta_rule_form::reference: return detail::delta_rule_backward_reference(spec, in, init, d_o, d_final);
    case delta_rule_form::recurrent:
    case delta_rule_form::chunk: break;
  }
  if (in.q.type() == dtype::f64) return backward_cpu<double>(spec, in, init, d_o, d_final, d, form, opt);
  return backward_cpu<float>(spec, in, init, d_o, d_final, d, form, opt);
}

result<tensor> delta_rule_step(const delta_rule_spec& spec, const delta_rule_inputs& token, delta_rule_state& state) {
  if (!token.q.defined() || token.q.dim() != 3)
    return make_error(status_code::invalid_argument, "delta_rule_step: q is {}, expected [B, H, K]", token.q.defined() ? token.q.describe() : "missing");
  const int64_t B = token.q.size(0);
  auto one_token = [B](const tensor& t) -> result<tensor> {
    if (!t.defined()) return t;
    shape_t s = t.shape();
    if (s.empty() || s[0] != B)
      return make_error(status_code::invalid_argument, "delta_rule_step: {} expected to start with B = {}", t.describe(), B);
    s.insert(s.begin() + 1, 1);
    return t.reshape(s);
  };
  delta_rule_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.q, one_token(token.q));
  LRNN_ASSIGN_OR_RETURN(in.k, one_token(token.k));
  LRNN_ASSIGN_OR_RETURN(in.v, one_token(token.v));
  LRNN_ASSIGN_OR_RETURN(in.beta, one_token(token.beta));
  LRNN_ASSIGN_OR_RETURN(in.g, one_token(token.g));
  LRNN_ASSIGN_OR_RETURN(in.w, one_token(token.w));
  LRNN_ASSIGN_OR_RETURN(in.a, one_token(token.a));
  LRNN_ASSIGN_OR_RETURN(in.b, one_token(token.b));
  if (!in.v.defined()) return make_error(status_code::invalid_argument, "delta_rule_step: v is missing, expected [B, H, V]");
  LRNN_ASSIGN_OR_RETURN(auto out, delta_rule_forward(spec, in, state, delta_rule_form::recurrent));
  state = out.final_state;
  return out.o.reshape({B, in.v.size(2), in.v.size(3)});
}

}  // namespace lrnn::ops
