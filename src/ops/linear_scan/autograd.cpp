#include "ops/linear_scan/autograd.h"

namespace lrnn::ag {

result<var> linear_scan(const ops::linear_scan_spec& spec, const linear_scan_vars& in, ops::linear_scan_form form,
                        const ops::linear_scan_options& options) {
  auto val = [](const var& x) { return x.defined() ? x.value() : tensor(); };
  ops::linear_scan_inputs t;
  t.x = val(in.x);
  t.log_a = val(in.log_a);
  t.gate_x = val(in.gate_x);
  t.gate_a = val(in.gate_a);
  t.a_param = val(in.a_param);
  t.segment_pos = in.segment_pos;
  t.cu_seqlens = in.cu_seqlens;
  ops::linear_scan_options opt = options;
  opt.output_final_state = false;
  LRNN_ASSIGN_OR_RETURN(ops::linear_scan_output out, ops::linear_scan_forward(spec, t, tensor(), form, opt));
  return make_result(
      out.y, {in.x, in.log_a, in.gate_x, in.gate_a, in.a_param},
      [spec, t, form, opt](const tensor& dy) -> result<std::vector<tensor>> {
        LRNN_ASSIGN_OR_RETURN(tensor d, dy.contiguous());
        LRNN_ASSIGN_OR_RETURN(ops::linear_scan_grads g, ops::linear_scan_backward(spec, t, tensor(), d, tensor(), form, opt));
        tensor da = g.da_param;
        if (da.defined() && t.a_param.defined()) {
          LRNN_ASSIGN_OR_RETURN(da, da.to(t.a_param.type()));
        }
        return std::vector<tensor>{g.dx, g.dlog_a, g.dgate_x, g.dgate_a, da};
      },
      "linear_scan");
}

}  // namespace lrnn::ag
