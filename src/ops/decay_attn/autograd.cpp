// Differentiable decay_attn (see autograd.h): forward and backward of the op family, zero
// initial state, no final state.
#include "ops/decay_attn/autograd.h"

namespace lrnn::ag {

namespace {
result<tensor> value_of(const var& v) {
  if (!v.defined()) return tensor();
  return v.value().contiguous();
}
}  // namespace

result<var> decay_attn(const ops::decay_attn_spec& spec, const var& q, const var& k, const var& v, const var& g, const var& i,
                       const var& u, ops::decay_attn_form form, const ops::decay_attn_options& options) {
  if (!q.defined() || !k.defined() || !v.defined())
    return make_error(status_code::invalid_argument, "decay_attn: q, k and v are required");
  ops::decay_attn_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.q, value_of(q));
  LRNN_ASSIGN_OR_RETURN(in.k, value_of(k));
  LRNN_ASSIGN_OR_RETURN(in.v, value_of(v));
  LRNN_ASSIGN_OR_RETURN(in.g, value_of(g));
  LRNN_ASSIGN_OR_RETURN(in.i, value_of(i));
  LRNN_ASSIGN_OR_RETURN(in.u, value_of(u));
  ops::decay_attn_options opt = options;
  opt.output_final_state = false;
  // The normaliser's saved forward (o, den) spares the backward a forward pass where it needs o
  // (not when o lives in the caller's buffer options.into_o, which the caller may reuse).
  opt.output_den = spec.normalizer && form != ops::decay_attn_form::reference && !options.into_o.defined();
  opt.saved_o = opt.saved_den = tensor();
  // The forward's context (mLSTM's stabiliser, the segment states of long sequences on CUDA) spares
  // the backward recomputing them.
  opt.ctx = tensor();
  if (in.q.dev().is_cuda()) {
    LRNN_ASSIGN_OR_RETURN(int64_t n, ops::decay_attn_ctx_floats(spec, in));
    if (n > 0) { LRNN_ASSIGN_OR_RETURN(opt.ctx, tensor::empty({n}, dtype::f32, in.q.dev())); }
  }
  LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(spec, in, ops::decay_attn_state{}, form, opt));
  if (out.den.defined()) opt.saved_o = out.o, opt.saved_den = out.den;
  opt.output_den = false;
  return make_result(out.o, {q, k, v, g, i, u}, [spec, in, form, opt](const tensor& d_o) -> result<std::vector<tensor>> {
    LRNN_ASSIGN_OR_RETURN(tensor d, d_o.to(in.q.type()));
    LRNN_ASSIGN_OR_RETURN(d, d.contiguous());
    LRNN_ASSIGN_OR_RETURN(auto gr, ops::decay_attn_backward(spec, in, ops::decay_attn_state{}, d, ops::decay_attn_state{}, form, opt));
    return std::vector<tensor>{gr.dq, gr.dk, gr.dv, gr.dg, gr.di, gr.du};
  }, "decay_attn");
}

}  // namespace lrnn::ag
