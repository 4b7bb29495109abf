// wkv4: validation, conversion to contiguous fp32 / f64 buffers, and dispatch to the reference
// or a CPU form (recurrent, chunk). The math is in README.md.
#include "ops/wkv4/wkv4.h"

#include "ops/common/seq_util.h"

#include <cmath>

namespace lrnn::ops {

using seq_util::expect_float;
using seq_util::load_as;
using seq_util::tensor_from;

const char* wkv4_form_name(wkv4_form f) {
  switch (f) {
    case wkv4_form::reference: return "reference";
    case wkv4_form::recurrent: return "recurrent";
    case wkv4_form::chunk: return "chunk";
  }
  return "?";
}

result<wkv4_state> wkv4_zero_state(int64_t N, int64_t C) {
  wkv4_state s;
  LRNN_ASSIGN_OR_RETURN(s.a, tensor::zeros({N, C}, dtype::f32));
  LRNN_ASSIGN_OR_RETURN(s.b, tensor::zeros({N, C}, dtype::f32));
  LRNN_ASSIGN_OR_RETURN(s.p, tensor::full({N, C}, wkv4_p_start, dtype::f32));
  return s;
}

namespace {

constexpr const char* op = "wkv4";

struct dims {
  int64_t B = 0, T = 0, C = 0, N = 0;
  std::vector<int64_t> offsets;
};

status check_state(const char* what, const wkv4_state& s, int64_t N, int64_t C, bool all_required) {
  const bool any = s.a.defined() || s.b.defined() || s.p.defined();
  if (!any) return {};
  const std::string base(what);
  if (all_required && !(s.a.defined() && s.b.defined() && s.p.defined()))
    return make_error(status_code::invalid_argument, "wkv4: {} needs all of a, b, p ([N, C] = [{}, {}] each) or none", what, N, C);
  const std::string an = base + " a", bn = base + " b", pn = base + " p";
  if (s.a.defined()) LRNN_TRY(expect_float(op, an.c_str(), s.a, {N, C}, "[N, C]: one row per sequence"));
  if (s.b.defined()) LRNN_TRY(expect_float(op, bn.c_str(), s.b, {N, C}, "[N, C]: one row per sequence"));
  if (s.p.defined()) LRNN_TRY(expect_float(op, pn.c_str(), s.p, {N, C}, "[N, C]: one row per sequence"));
  return {};
}

result<dims> validate(const wkv4_inputs& in, const wkv4_state& init, const wkv4_options& opt) {
  dims d;
  if (!in.k.defined() || in.k.dim() != 3)
    return make_error(status_code::invalid_argument, "wkv4: k is {}, expected [B, T, C]", in.k.defined() ? in.k.describe() : "missing");
  d.B = in.k.size(0), d.T = in.k.size(1), d.C = in.k.size(2);
  LRNN_TRY(expect_float(op, "k", in.k, in.k.shape(), "[B, T, C]"));
  LRNN_TRY(expect_float(op, "v", in.v, in.k.shape(), "the shape of k"));
  if (in.v.type() != in.k.type())
    return make_error(status_code::invalid_argument, "wkv4: k and v have dtypes {} and {}; expected one dtype", dtype_name(in.k.type()), dtype_name(in.v.type()));
  LRNN_TRY(expect_float(op, "time_decay", in.time_decay, {d.C}, "[C], C from k"));
  LRNN_TRY(expect_float(op, "time_first", in.time_first, {d.C}, "[C], C from k"));
  LRNN_ASSIGN_OR_RETURN(d.offsets, seq_util::sequence_offsets(op, in.cu_seqlens, d.B, d.T));
  d.N = static_cast<int64_t>(d.offsets.size()) - 1;
  LRNN_TRY(check_state("initial state", init, d.N, d.C, true));
  if (opt.chunk_size < 1) return make_error(status_code::invalid_argument, "wkv4: chunk_size is {}, expected >= 1", opt.chunk_size);
  return d;
}

template <typename A>
struct prepared {
  detail::wkv4_problem<A> p;
  std::vector<A> kb, vb, wb, ub, a0b, b0b, p0b;
};

template <typename A>
void prepare(const wkv4_inputs& in, const wkv4_state& init, const dims& d, const wkv4_options& opt, prepared<A>& r) {
  auto& p = r.p;
  p.N = d.N, p.C = d.C, p.offsets = d.offsets, p.chunk = opt.chunk_size;
  p.k = load_as<A>(in.k, r.kb);
  p.v = load_as<A>(in.v, r.vb);
  std::vector<A> td;
  const A* tdp = load_as<A>(in.time_decay, td);
  r.wb.resize(d.C);
  for (int64_t c = 0; c < d.C; ++c) r.wb[c] = -std::exp(tdp[c]);
  p.w = r.wb.data();
  p.u = load_as<A>(in.time_first, r.ub);
  p.a0 = load_as<A>(init.a, r.a0b);
  p.b0 = load_as<A>(init.b, r.b0b);
  p.p0 = load_as<A>(init.p, r.p0b);
}

template <typename A>
void run_forward(wkv4_form form, const detail::wkv4_problem<A>& p, const detail::wkv4_forward_io<A>& io) {
  switch (form) {
    case wkv4_form::reference: detail::wkv4_forward_reference(p, io); return;
    case wkv4_form::recurrent: detail::wkv4_forward_recurrent(p, io); return;
    case wkv4_form::chunk: detail::wkv4_forward_chunk(p, io); return;
  }
}

template <typename A>
void run_backward(wkv4_form form, const detail::wkv4_problem<A>& p, const detail::wkv4_backward_io<A>& io) {
  switch (form) {
    case wkv4_form::reference: detail::wkv4_backward_reference(p, io); return;
    case wkv4_form::recurrent: detail::wkv4_backward_recurrent(p, io); return;
    case wkv4_form::chunk: detail::wkv4_backward_chunk(p, io); return;
  }
}

template <typename A>
result<wkv4_output> forward_as(const wkv4_inputs& in, const wkv4_state& init, const dims& d, wkv4_form form,
                               const wkv4_options& opt) {
  prepared<A> r;
  prepare<A>(in, init, d, opt, r);
  const dtype st = dtype_of<A>::value;
  const int64_t NC = d.N * d.C;
  wkv4_output out;
  std::vector<A> ab, bb, pb;
  detail::wkv4_forward_io<A> io;
  seq_util::out_buffer<A> y;
  LRNN_TRY(y.init(in.k.shape(), in.k.type()));  // [B, T, C]
  io.y = y.ptr;
  if (opt.output_final_state) {
    ab.resize(NC), bb.resize(NC), pb.resize(NC);
    io.a = ab.data(), io.b = bb.data(), io.p = pb.data();
  }
  run_forward(form, r.p, io);
  LRNN_ASSIGN_OR_RETURN(out.y, y.finish());
  if (opt.output_final_state) {
    LRNN_ASSIGN_OR_RETURN(out.final_state.a, tensor_from(ab.data(), {d.N, d.C}, st));  // [N, C]
    LRNN_ASSIGN_OR_RETURN(out.final_state.b, tensor_from(bb.data(), {d.N, d.C}, st));
    LRNN_ASSIGN_OR_RETURN(out.final_state.p, tensor_from(pb.data(), {d.N, d.C}, st));
  }
  return out;
}

template <typename A>
result<wkv4_grads> backward_as(const wkv4_inputs& in, const wkv4_state& init, const tensor& dy, const wkv4_state& dfin,
                               const dims& d, wkv4_form form, const wkv4_options& opt) {
  prepared<A> r;
  prepare<A>(in, init, d, opt, r);
  const dtype st = dtype_of<A>::value;
  const int64_t NC = d.N * d.C;
  std::vector<A> dyb, dab, dbb, dpb;
  detail::wkv4_backward_io<A> io;
  io.dy = load_as<A>(dy, dyb);
  io.da = load_as<A>(dfin.a, dab);
  io.db = load_as<A>(dfin.b, dbb);
  io.dp = load_as<A>(dfin.p, dpb);
  seq_util::out_buffer<A> dk, dv;
  LRNN_TRY(dk.init(in.k.shape(), in.k.type()));
  LRNN_TRY(dv.init(in.v.shape(), in.v.type()));
  std::vector<A> dw(NC), du(NC), da0, db0, dp0;
  io.dk = dk.ptr, io.dv = dv.ptr, io.dw = dw.data(), io.du = du.data();
  if (r.p.a0) {
    da0.resize(NC), db0.resize(NC), dp0.resize(NC);
    io.da0 = da0.data(), io.db0 = db0.data(), io.dp0 = dp0.data();
  }
  run_backward(form, r.p, io);
  wkv4_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dk, dk.finish());
  LRNN_ASSIGN_OR_RETURN(g.dv, dv.finish());
  // Sum the per-sequence parts in a fixed order (deterministic); dtime_decay = dw * w.
  std::vector<A> dtd(d.C, A(0)), dtf(d.C, A(0));
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = 0; c < d.C; ++c) {
      dtd[c] += dw[n * d.C + c];
      dtf[c] += du[n * d.C + c];
    }
  for (int64_t c = 0; c < d.C; ++c) dtd[c] = dtd[c] == A(0) ? A(0) : dtd[c] * r.p.w[c];
  LRNN_ASSIGN_OR_RETURN(g.dtime_decay, tensor_from(dtd.data(), {d.C}, st));
  LRNN_ASSIGN_OR_RETURN(g.dtime_first, tensor_from(dtf.data(), {d.C}, st));
  if (r.p.a0) {
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state.a, tensor_from(da0.data(), {d.N, d.C}, st));  // [N, C]
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state.b, tensor_from(db0.data(), {d.N, d.C}, st));
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state.p, tensor_from(dp0.data(), {d.N, d.C}, st));
  }
  return g;
}

}  // namespace

result<wkv4_output> wkv4_forward(const wkv4_inputs& in, const wkv4_state& init, wkv4_form form, const wkv4_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(in, init, opt));
  if (in.k.type() == dtype::f64) return forward_as<double>(in, init, d, form, opt);
  return forward_as<float>(in, init, d, form, opt);
}

result<wkv4_grads> wkv4_backward(const wkv4_inputs& in, const wkv4_state& init, const tensor& dy,
                                 const wkv4_state& d_final, wkv4_form form, const wkv4_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(in, init, opt));
  LRNN_TRY(expect_float(op, "dy", dy, in.k.shape(), "the shape of y (and k)"));
  LRNN_TRY(check_state("d_final_state", d_final, d.N, d.C, false));
  if (in.k.type() == dtype::f64) return backward_as<double>(in, init, dy, d_final, d, form, opt);
  return backward_as<float>(in, init, dy, d_final, d, form, opt);
}

result<tensor> wkv4_step(const tensor& k, const tensor& v, const tensor& time_decay, const tensor& time_first,
                         wkv4_state& state) {
  if (!k.defined() || k.dim() != 2)
    return make_error(status_code::invalid_argument, "wkv4_step: k is {}, expected [B, C]", k.defined() ? k.describe() : "missing");
  const int64_t B = k.size(0), C = k.size(1);
  LRNN_TRY(expect_float("wkv4_step", "v", v, {B, C}, "the shape of k"));
  if (!state.a.defined() || !state.b.defined() || !state.p.defined())
    return make_error(status_code::invalid_argument, "wkv4_step: the state needs a, b, p ([B, C] = [{}, {}] each; wkv4_zero_state makes one)", B, C);
  LRNN_TRY(check_state("state", state, B, C, true));
  wkv4_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.k, k.reshape({B, 1, C}));
  LRNN_ASSIGN_OR_RETURN(in.v, v.reshape({B, 1, C}));
  in.time_decay = time_decay;
  in.time_first = time_first;
  LRNN_ASSIGN_OR_RETURN(wkv4_output out, wkv4_forward(in, state, wkv4_form::recurrent));
  LRNN_TRY(state.a.copy_from(out.final_state.a));
  LRNN_TRY(state.b.copy_from(out.final_state.b));
  LRNN_TRY(state.p.copy_from(out.final_state.p));
  return out.y.reshape({B, C});
}

}  // namespace lrnn::ops
