#include "ops/delta_rule/autograd.h"

namespace lrnn::ag {

result<var> delta_rule(const ops::delta_rule_spec& spec, const delta_rule_vars& in, ops::delta_rule_form form,
                       const ops::delta_rule_options& options) {
  auto val = [](const var& x) { return x.defined() ? x.value() : tensor(); };
  ops::delta_rule_inputs t;
  t.q = val(in.q);
  t.k = val(in.k);
  t.v = val(in.v);
  t.beta = val(in.beta);
  t.g = val(in.g);
  t.w = val(in.w);
  t.a = val(in.a);
  t.b = val(in.b);
  t.cu_seqlens = in.cu_seqlens;
  ops::delta_rule_options opt = options;
  opt.output_final_state = false;
  LRNN_ASSIGN_OR_RETURN(ops::delta_rule_output out, ops::delta_rule_forward(spec, t, ops::delta_rule_state{}, form, opt));
  return make_result(
      out.o, {in.q, in.k, in.v, in.beta, in.g, in.w, in.a, in.b},
      [spec, t, form, opt](const tensor& d_o) -> result<std::vector<tensor>> {
        LRNN_ASSIGN_OR_RETURN(tensor dy, d_o.contiguous());
        LRNN_ASSIGN_OR_RETURN(ops::delta_rule_grads g,
                              ops::delta_rule_backward(spec, t, ops::delta_rule_state{}, dy, ops::delta_rule_state{}, form, opt));
        return std::vector<tensor>{g.dq, g.dk, g.dv, g.dbeta, g.dg, g.dw, g.da, g.db};
      },
      "delta_rule");
}

}  // namespace lrnn::ag
