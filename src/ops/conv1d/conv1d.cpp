// conv1d: validation, conversion to contiguous fp32 / f64 buffers, the per-token document
// starts from segment_pos, and dispatch to the reference or the CPU form. Math in README.md.
#include "ops/conv1d/conv1d.h"

#include "ops/common/seq_util.h"

namespace lrnn::ops {

using seq_util::expect_float;
using seq_util::load_as;
using seq_util::tensor_from;

const char* conv1d_form_name(conv1d_form f) {
  switch (f) {
    case conv1d_form::reference: return "reference";
    case conv1d_form::cpu: return "cpu";
  }
  return "?";
}

namespace {

constexpr const char* op = "conv1d";

struct dims {
  int64_t B = 0, T = 0, C = 0, W = 0, N = 0;
  std::vector<int64_t> offsets;
};

result<dims> validate(const conv1d_inputs& in, const tensor& cache) {
  dims d;
  if (!in.x.defined() || in.x.dim() != 3)
    return make_error(status_code::invalid_argument, "conv1d: x is {}, expected [B, T, C]", in.x.defined() ? in.x.describe() : "missing");
  d.B = in.x.size(0), d.T = in.x.size(1), d.C = in.x.size(2);
  LRNN_TRY(expect_float(op, "x", in.x, in.x.shape(), "[B, T, C]"));
  if (!in.weight.defined() || in.weight.dim() != 2 || in.weight.size(1) != d.C || in.weight.size(0) < 1)
    return make_error(status_code::invalid_argument, "conv1d: weight is {}, expected [W, {}] (W >= 1 taps, C from x)",
                      in.weight.defined() ? in.weight.describe() : "missing", d.C);
  d.W = in.weight.size(0);
  LRNN_TRY(expect_float(op, "weight", in.weight, in.weight.shape(), "[W, C]"));
  if (in.bias.defined()) LRNN_TRY(expect_float(op, "bias", in.bias, {d.C}, "[C], C from x"));
  if (in.segment_pos.defined()) {
    const tensor& s = in.segment_pos;
    if ((s.type() != dtype::i32 && s.type() != dtype::i64) || s.shape() != shape_t{d.B, d.T} || !s.dev().is_cpu())
      return make_error(status_code::invalid_argument, "conv1d: segment_pos is {}, expected i32 or i64 [{}, {}] ([B, T] of x)",
                        s.describe(), d.B, d.T);
  }
  LRNN_ASSIGN_OR_RETURN(d.offsets, seq_util::sequence_offsets(op, in.cu_seqlens, d.B, d.T));
  d.N = static_cast<int64_t>(d.offsets.size()) - 1;
  if (cache.defined()) LRNN_TRY(expect_float(op, "cache", cache, {d.N, d.W - 1, d.C}, "[N, W - 1, C]: the last W - 1 inputs per sequence"));
  return d;
}

template <typename A>
struct prepared {
  detail::conv1d_problem<A> p;
  std::vector<A> xb, wb, bb, cb;
};

template <typename A>
void prepare(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache, const dims& d, prepared<A>& r) {
  auto& p = r.p;
  p.activation = spec.activation;
  p.N = d.N, p.C = d.C, p.W = d.W, p.offsets = d.offsets;
  p.x = load_as<A>(in.x, r.xb);
  p.w = load_as<A>(in.weight, r.wb);
  p.bias = load_as<A>(in.bias, r.bb);
  p.cache = load_as<A>(cache, r.cb);
  const int64_t tokens = d.offsets.back();
  p.last_start.assign(static_cast<size_t>(tokens), -d.W);
  if (in.segment_pos.defined()) {
    const tensor s = in.segment_pos.contiguous().value();
    for (int64_t n = 0; n < d.N; ++n) {
      int64_t last = -d.W;
      for (int64_t t = d.offsets[n]; t < d.offsets[n + 1]; ++t) {
        const int64_t pos = s.type() == dtype::i32 ? s.data<int32_t>()[t] : s.data<int64_t>()[t];
        if (pos == 0) last = t - d.offsets[n];
        p.last_start[t] = last;
      }
    }
  }
}

template <typename A>
result<conv1d_output> forward_as(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache, const dims& d,
                                 conv1d_form form, bool output_final_cache) {
  prepared<A> r;
  prepare<A>(spec, in, cache, d, r);
  const dtype st = dtype_of<A>::value;
  conv1d_output out;
  std::vector<A> cb;
  detail::conv1d_forward_io<A> io;
  seq_util::out_buffer<A> y;
  LRNN_TRY(y.init(in.x.shape(), in.x.type()));  // [B, T, C]
  io.y = y.ptr;
  if (output_final_cache) {
    cb.resize(static_cast<size_t>(d.N * (d.W - 1) * d.C));
    io.cache = cb.data();
  }
  switch (form) {
    case conv1d_form::reference: detail::conv1d_forward_reference(r.p, io); break;
    case conv1d_form::cpu: detail::conv1d_forward_cpu(r.p, io); break;
  }
  LRNN_ASSIGN_OR_RETURN(out.y, y.finish());
  if (output_final_cache) {
    LRNN_ASSIGN_OR_RETURN(out.final_cache, tensor_from(cb.data(), {d.N, d.W - 1, d.C}, st));  // [N, W - 1, C]
  }
  return out;
}

template <typename A>
result<conv1d_grads> backward_as(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache, const tensor& dy,
                                 const tensor& dfin, const dims& d, conv1d_form form) {
  prepared<A> r;
  prepare<A>(spec, in, cache, d, r);
  const dtype st = dtype_of<A>::value;
  std::vector<A> dyb, dfb;
  detail::conv1d_backward_io<A> io;
  io.dy = load_as<A>(dy, dyb);
  io.dcache_out = load_as<A>(dfin, dfb);
  seq_util::out_buffer<A> dx;
  LRNN_TRY(dx.init(in.x.shape(), in.x.type()));
  std::vector<A> dw(d.W * d.C), dbias(d.C), dcache;
  io.dx = dx.ptr, io.dw = dw.data();
  if (in.bias.defined()) io.dbias = dbias.data();
  if (cache.defined()) {
    dcache.resize(static_cast<size_t>(d.N * (d.W - 1) * d.C));
    io.dcache = dcache.data();
  }
  switch (form) {
    case conv1d_form::reference: detail::conv1d_backward_reference(r.p, io); break;
    case conv1d_form::cpu: detail::conv1d_backward_cpu(r.p, io); break;
  }
  conv1d_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dx, dx.finish());
  LRNN_ASSIGN_OR_RETURN(g.dweight, tensor_from(dw.data(), {d.W, d.C}, st));  // [W, C]
  if (in.bias.defined()) {
    LRNN_ASSIGN_OR_RETURN(g.dbias, tensor_from(dbias.data(), {d.C}, st));
  }
  if (cache.defined()) {
    LRNN_ASSIGN_OR_RETURN(g.d_cache, tensor_from(dcache.data(), {d.N, d.W - 1, d.C}, st));  // [N, W - 1, C]
  }
  return g;
}

}  // namespace

result<conv1d_output> conv1d_forward(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache,
                                     conv1d_form form, bool output_final_cache) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(in, cache));
  if (in.x.type() == dtype::f64) return forward_as<double>(spec, in, cache, d, form, output_final_cache);
  return forward_as<float>(spec, in, cache, d, form, output_final_cache);
}

result<conv1d_grads> conv1d_backward(const conv1d_spec& spec, const conv1d_inputs& in, const tensor& cache,
                                     const tensor& dy, const tensor& d_final_cache, conv1d_form form) {
  LRNN_ASSIGN_OR_RETURN(dims d, validate(in, cache));
  LRNN_TRY(expect_float(op, "dy", dy, in.x.shape(), "the shape of y (and x)"));
  if (d_final_cache.defined()) LRNN_TRY(expect_float(op, "d_final_cache", d_final_cache, {d.N, d.W - 1, d.C}, "[N, W - 1, C]"));
  if (in.x.type() == dtype::f64) return backward_as<double>(spec, in, cache, dy, d_final_cache, d, form);
  return backward_as<float>(spec, in, cache, dy, d_final_cache, d, form);
}

result<tensor> conv1d_step(const conv1d_spec& spec, const tensor& x, const tensor& weight, const tensor& bias, tensor& cache) {
  if (!x.defined() || x.dim() != 2)
    return make_error(status_code::invalid_argument, "conv1d_step: x is {}, expected [B, C]", x.defined() ? x.describe() : "missing");
  const int64_t B = x.size(0), C = x.size(1);
  if (!cache.defined() || cache.dim() != 3)
    return make_error(status_code::invalid_argument, "conv1d_step: cache is {}, expected [{}, W - 1, {}]", cache.defined() ? cache.describe() : "missing", B, C);
  conv1d_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.x, x.reshape({B, 1, C}));
  in.weight = weight;
  in.bias = bias;
  LRNN_ASSIGN_OR_RETURN(conv1d_output out, conv1d_forward(spec, in, cache, conv1d_form::cpu));
  LRNN_TRY(cache.copy_from(out.final_cache));
  return out.y.reshape({B, C});
}

}  // namespace lrnn::ops
