// linear_scan: validation, conversion to contiguous fp32 / f64 buffers (the reset flags from
// segment_pos, -c * softplus(a_param) per channel), and dispatch to the reference or a CPU form
// (recurrent, scan). The math is in README.md.
#include "ops/linear_scan/linear_scan.h"

#include "ops/common/seq_util.h"

#include <cmath>

namespace lrnn::ops {

using seq_util::expect_float;
using seq_util::load_as;
using seq_util::tensor_from;

const char* linear_scan_form_name(linear_scan_form f) {
  switch (f) {
    case linear_scan_form::reference: return "reference";
    case linear_scan_form::recurrent: return "recurrent";
    case linear_scan_form::scan: return "scan";
  }
  return "?";
}

namespace {

constexpr const char* op = "linear_scan";

struct dims {
  int64_t B = 0, T = 0, C = 0, N = 0;
  std::vector<int64_t> offsets;
};

double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

result<dims> validate(const linear_scan_spec& spec, const linear_scan_inputs& in, const tensor& init,
                      const linear_scan_options& opt) {
  dims d;
  if (!in.x.defined() || in.x.dim() != 3)
    return make_error(status_code::invalid_argument, "linear_scan: x is {}, expected [B, T, C]", in.x.defined() ? in.x.describe() : "missing");
  d.B = in.x.size(0), d.T = in.x.size(1), d.C = in.x.size(2);
  LRNN_TRY(expect_float(op, "x", in.x, in.x.shape(), "[B, T, C]"));
  switch (spec.gate) {
    case scan_gate::log_a:
      LRNN_TRY(expect_float(op, "log_a", in.log_a, in.x.shape(), "the shape of x (gate log_a)"));
      break;
    case scan_gate::rg_lru:
      LRNN_TRY(expect_float(op, "gate_x", in.gate_x, in.x.shape(), "the shape of x (gate rg_lru)"));
      LRNN_TRY(expect_float(op, "gate_a", in.gate_a, in.x.shape(), "the shape of x (gate rg_lru)"));
      LRNN_TRY(expect_float(op, "a_param", in.a_param, {d.C}, "[C], C from x (gate rg_lru)"));
      if (!(spec.c > 0) || !(spec.max_sqrt_gradient > 0))
        return make_error(status_code::invalid_argument, "linear_scan: spec.c = {} and spec.max_sqrt_gradient = {} must be > 0", spec.c, spec.max_sqrt_gradient);
      break;
  }
  if (in.segment_pos.defined()) {
    const tensor& s = in.segment_pos;
    if ((s.type() != dtype::i32 && s.type() != dtype::i64) || s.shape() != shape_t{d.B, d.T} || !s.dev().is_cpu())
      return make_error(status_code::invalid_argument, "linear_scan: segment_pos is {}, expected i32 or i64 [{}, {}] ([B, T] of x)",
                        s.describe(), d.B, d.T);
  }
  LRNN_ASSIGN_OR_RETURN(d.offsets, seq_util::sequence_offsets(op, in.cu_seqlens, d.B, d.T));
  d.N = static_cast<int64_t>(d.offsets.size()) - 1;
  if (init.defined()) LRNN_TRY(expect_float(op, "initial state", init, {d.N, d.C}, "[N, C]: one row per sequence"));
  if (opt.chunk_size < 1) return make_error(status_code::invalid_argument, "linear_scan: chunk_size is {}, expected >= 1", opt.chunk_size);
  return d;
}

template <typename A>
struct prepared {
  detail::linear_scan_problem<A> p;
  std::vector<A> xb, lab, gxb, gab, ncs, h0b;
  std::vector<uint8_t> reset;
};

template <typename A>
void prepare(const linear_scan_spec& spec, const linear_scan_inputs& in, const tensor& init, const dims& d,
             const linear_scan_options& opt, prepared<A>& r) {
  auto& p = r.p;
  p.gate = spec.gate;
  p.N = d.N, p.C = d.C, p.offsets = d.offsets, p.chunk = opt.chunk_size;
  p.x = load_as<A>(in.x, r.xb);
  if (spec.gate == scan_gate::log_a) {
    p.log_a = load_as<A>(in.log_a, r.lab);
  } else {
    p.gate_x = load_as<A>(in.gate_x, r.gxb);
    p.gate_a = load_as<A>(in.gate_a, r.gab);
    const auto lam = in.a_param.to_doubles();
    r.ncs.resize(d.C);
    for (int64_t c = 0; c < d.C; ++c) r.ncs[c] = static_cast<A>(-spec.c * softplus(lam[c]));
    p.neg_c_softplus = r.ncs.data();
    p.min_4z = static_cast<A>(1.0 / (spec.max_sqrt_gradient * spec.max_sqrt_gradient));
  }
  if (in.segment_pos.defined()) {
    const tensor s = in.segment_pos.contiguous().value();
    r.reset.resize(static_cast<size_t>(s.numel()));
    for (size_t i = 0; i < r.reset.size(); ++i)
      r.reset[i] = s.type() == dtype::i32 ? s.data<int32_t>()[i] == 0 : s.data<int64_t>()[i] == 0;
    p.reset = r.reset.data();
  }
  p.h0 = load_as<A>(init, r.h0b);
}

template <typename A>
void run_forward(linear_scan_form form, const detail::linear_scan_problem<A>& p, const detail::linear_scan_forward_io<A>& io) {
  switch (form) {
    case linear_scan_form::reference: detail::linear_scan_forward_reference(p, io); return;
    case linear_scan_form::recurrent: detail::linear_scan_forward_recurrent(p, io); return;
    case linear_scan_form::scan: detail::linear_scan_forward_scan(p, io); return;
  }
}

template <typename A>
void run_backward(linear_scan_form form, const detail::linear_scan_problem<A>& p, const detail::linear_scan_backward_io<A>& io) {
  switch (form) {
    case linear_scan_form::reference: detail::linear_scan_backward_reference(p, io); return;
    case linear_scan_form::recurrent: detail::linear_scan_backward_recurrent(p, io); return;
    case linear_scan_form::scan: detail::linear_scan_backward_scan(p, io); return;
  }
}

template <typename A>
result<linear_scan_output> forward_as(const linear_scan_spec& spec, const linear_scan_inputs& in, const tensor& init,
                                      const dims& d, linear_scan_form form, const linear_scan_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt, r);
  const dtype st = dtype_of<A>::value;
  linear_scan_output out;
  std::vector<A> hb;
  detail::linear_scan_forward_io<A> io;
  seq_util::out_buffer<A> y;
  LRNN_TRY(y.init(in.x.shape(), in.x.type()));  // [B, T, C]
  io.y = y.ptr;
  if (opt.output_final_state) {
    hb.resize(d.N * d.C);
    io.h_final = hb.data();
  }
  run_forward(form, r.p, io);
  LRNN_ASSIGN_OR_RETURN(out.y, y.finish());
  if (opt.output_final_state) {
    LRNN_ASSIGN_OR_RETURN(out.final_state, tensor_from(hb.data(), {d.N, d.C}, st));  // [N, C]
  }
  return out;
}

template <typename A>
result<linear_scan_grads> backward_as(const linear_scan_spec& spec, const linear_scan_inputs& in, const tensor& init,
                                      const tensor& dy, const tensor& dfin, const dims& d, linear_scan_form form,
                                      const linear_scan_options& opt) {
  prepared<A> r;
  prepare<A>(spec, in, init, d, opt, r);
  const dtype st = dtype_of<A>::value;
  const int64_t NC = d.N * d.C;
  std::vector<A> dyb, dfb;
  detail::linear_scan_backward_io<A> io;
  io.dy = load_as<A>(dy, dyb);
  io.dh_final = load_as<A>(dfin, dfb);
  seq_util::out_buffer<A> dx, dla, dgx, dga;
  std::vector<A> dncs, dh0;
  LRNN_TRY(dx.init(in.x.shape(), in.x.type()));
  io.dx = dx.ptr;
  if (spec.gate == scan_gate::log_a) {
    LRNN_TRY(dla.init(in.log_a.shape(), in.log_a.type()));
    io.dlog_a = dla.ptr;
  } else {
    LRNN_TRY(dgx.init(in.gate_x.shape(), in.gate_x.type()));
    LRNN_TRY(dga.init(in.gate_a.shape(), in.gate_a.type()));
    dncs.resize(NC);
    io.dgate_x = dgx.ptr, io.dgate_a = dga.ptr, io.dneg_c_softplus = dncs.data();
  }
  if (init.defined()) {
    dh0.resize(NC);
    io.dh0 = dh0.data();
  }
  run_backward(form, r.p, io);
  linear_scan_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dx, dx.finish());
  if (spec.gate == scan_gate::log_a) {
    LRNN_ASSIGN_OR_RETURN(g.dlog_a, dla.finish());
  } else {
    LRNN_ASSIGN_OR_RETURN(g.dgate_x, dgx.finish());
    LRNN_ASSIGN_OR_RETURN(g.dgate_a, dga.finish());
    // d a_param = sum over sequences of d(-c softplus) * (-c) * sigmoid(a_param), in a fixed order.
    const auto lam = in.a_param.to_doubles();
    std::vector<A> dap(d.C, A(0));
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t c = 0; c < d.C; ++c) dap[c] += dncs[n * d.C + c];
    for (int64_t c = 0; c < d.C; ++c) dap[c] = static_cast<A>(-spec.c * sigmoid(lam[c])) * dap[c];
    LRNN_ASSIGN_OR_RETURN(g.da_param, tensor_from(dap.data(), {d.C}, st));
  }
  if (init.defined()) {
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state, tensor_from(dh0.data(), {d.N, d.C}, st));  // [N, C]
  }
  return g;
}

}  // namespace

result<linear_scan_output> linear_scan_forward(const linear_scan_spec& spec, const linear_scan_inputs& in,
                                               const tensor& init, linear_scan_form form,
                                               const linear_scan_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init, opt));
  if (in.x.type() == dtype::f64) return forward_as<double>(spec, in, init, d, form, opt);
  return forward_as<float>(spec, in, init, d, form, opt);
}

result<linear_scan_grads> linear_scan_backward(const linear_scan_spec& spec, const linear_scan_inputs& in,
                                               const tensor& init, const tensor& dy, const tensor& d_final,
                                               linear_scan_form form, const linear_scan_options& opt) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(spec, in, init, opt));
  LRNN_TRY(expect_float(op, "dy", dy, in.x.shape(), "the shape of y (and x)"));
  if (d_final.defined()) LRNN_TRY(expect_float(op, "d_final_state", d_final, {d.N, d.C}, "[N, C]"));
  if (in.x.type() == dtype::f64) return backward_as<double>(spec, in, init, dy, d_final, d, form, opt);
  return backward_as<float>(spec, in, init, dy, d_final, d, form, opt);
}

result<tensor> linear_scan_step(const linear_scan_spec& spec, const linear_scan_inputs& token, tensor& state) {
  if (!token.x.defined() || token.x.dim() != 2)
    return make_error(status_code::invalid_argument, "linear_scan_step: x is {}, expected [B, C]", token.x.defined() ? token.x.describe() : "missing");
  const int64_t B = token.x.size(0), C = token.x.size(1);
  if (!state.defined()) return make_error(status_code::invalid_argument, "linear_scan_step: the state is missing, expected [{}, {}] f32", B, C);
  LRNN_TRY(expect_float("linear_scan_step", "state", state, {B, C}, "[B, C]"));
  auto per_token = [B](const tensor& t) -> result<tensor> {
    if (!t.defined()) return t;
    shape_t s = t.shape();
    if (s.empty() || s[0] != B)
      return make_error(status_code::invalid_argument, "linear_scan_step: {} expected to start with B = {}", t.describe(), B);
    s.insert(s.begin() + 1, 1);
    return t.reshape(s);
  };
  linear_scan_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.x, per_token(token.x));
  LRNN_ASSIGN_OR_RETURN(in.log_a, per_token(token.log_a));
  LRNN_ASSIGN_OR_RETURN(in.gate_x, per_token(token.gate_x));
  LRNN_ASSIGN_OR_RETURN(in.gate_a, per_token(token.gate_a));
  LRNN_ASSIGN_OR_RETURN(in.segment_pos, per_token(token.segment_pos));
  in.a_param = token.a_param;
  LRNN_ASSIGN_OR_RETURN(linear_scan_output out, linear_scan_forward(spec, in, state, linear_scan_form::recurrent));
  LRNN_TRY(state.copy_from(out.final_state));
  return out.y.reshape({B, C});
}

}  // namespace lrnn::ops
