// Differentiable conv1d (see autograd.h).
#include "ops/conv1d/autograd.h"

namespace lrnn::ag {

result<var> conv1d(const ops::conv1d_spec& spec, const var& x, const var& weight, const var& bias, ops::conv1d_form form) {
  if (!x.defined() || !weight.defined()) return make_error(status_code::invalid_argument, "conv1d: x and weight are required");
  ops::conv1d_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.x, x.value().contiguous());
  LRNN_ASSIGN_OR_RETURN(in.weight, weight.value().contiguous());
  if (bias.defined()) {
    LRNN_ASSIGN_OR_RETURN(in.bias, bias.value().contiguous());
  }
  LRNN_ASSIGN_OR_RETURN(auto out, ops::conv1d_forward(spec, in, tensor(), form, false));
  return make_result(out.y, {x, weight, bias}, [spec, in, form](const tensor& dy) -> result<std::vector<tensor>> {
    LRNN_ASSIGN_OR_RETURN(tensor d, dy.to(in.x.type()));
    LRNN_ASSIGN_OR_RETURN(d, d.contiguous());
    LRNN_ASSIGN_OR_RETURN(auto gr, ops::conv1d_backward(spec, in, tensor(), d, tensor(), form));
    tensor dw = gr.dweight, db = gr.dbias;
    if (dw.defined() && dw.type() != in.weight.type()) {
      LRNN_ASSIGN_OR_RETURN(dw, dw.to(in.weight.type()));
    }
    if (db.defined() && in.bias.defined() && db.type() != in.bias.type()) {
      LRNN_ASSIGN_OR_RETURN(db, db.to(in.bias.type()));
    }
    return std::vector<tensor>{gr.dx, dw, db};
  }, "conv1d");
}

}  // namespace lrnn::ag
