#include "ops/local_attn/autograd.h"

namespace lrnn::ag {

result<var> local_attn(const ops::local_attn_spec& spec, const var& q, const var& k, const var& v, ops::local_attn_form form,
                       const tensor& positions, const tensor& cu_seqlens) {
  if (!q.defined() || !k.defined() || !v.defined())
    return make_error(status_code::invalid_argument, "ag::local_attn: q, k and v must all be given");
  ops::local_attn_inputs t;
  t.q = q.value();
  t.k = k.value();
  t.v = v.value();
  t.positions = positions;
  t.cu_seqlens = cu_seqlens;
  ops::local_attn_options opt;
  opt.output_final_state = false;
  LRNN_ASSIGN_OR_RETURN(ops::local_attn_output out, ops::local_attn_forward(spec, t, ops::local_attn_state{}, form, opt));
  return make_result(
      out.o, {q, k, v},
      [spec, t, form, opt](const tensor& d_o) -> result<std::vector<tensor>> {
        LRNN_ASSIGN_OR_RETURN(tensor d, d_o.contiguous());
        LRNN_ASSIGN_OR_RETURN(ops::local_attn_grads g,
                              ops::local_attn_backward(spec, t, ops::local_attn_state{}, d, ops::local_attn_state{}, form, opt));
        return std::vector<tensor>{g.dq, g.dk, g.dv};
      },
      "local_attn");
}

}  // namespace lrnn::ag
