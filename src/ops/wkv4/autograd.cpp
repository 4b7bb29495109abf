#include "ops/wkv4/autograd.h"

namespace lrnn::ag {

result<var> wkv4(const var& k, const var& v, const var& time_decay, const var& time_first, ops::wkv4_form form,
                 const tensor& cu_seqlens, const ops::wkv4_options& options) {
  if (!k.defined() || !v.defined() || !time_decay.defined() || !time_first.defined())
    return make_error(status_code::invalid_argument, "ag::wkv4: k, v, time_decay and time_first must all be given");
  ops::wkv4_inputs t;
  t.k = k.value();
  t.v = v.value();
  t.time_decay = time_decay.value();
  t.time_first = time_first.value();
  t.cu_seqlens = cu_seqlens;
  ops::wkv4_options opt = options;
  opt.output_final_state = false;
  LRNN_ASSIGN_OR_RETURN(ops::wkv4_output out, ops::wkv4_forward(t, ops::wkv4_state{}, form, opt));
  return make_result(
      out.y, {k, v, time_decay, time_first},
      [t, form, opt](const tensor& dy) -> result<std::vector<tensor>> {
        LRNN_ASSIGN_OR_RETURN(tensor d, dy.contiguous());
        LRNN_ASSIGN_OR_RETURN(ops::wkv4_grads g, ops::wkv4_backward(t, ops::wkv4_state{}, d, ops::wkv4_state{}, form, opt));
        // The parameter gradients come back in the accumulation type; match the parameters.
        LRNN_ASSIGN_OR_RETURN(tensor dtd, g.dtime_decay.to(t.time_decay.type()));
        LRNN_ASSIGN_OR_RETURN(tensor dtf, g.dtime_first.to(t.time_first.type()));
        return std::vector<tensor>{g.dk, g.dv, dtd, dtf};
      },
      "wkv4");
}

}  // namespace lrnn::ag
