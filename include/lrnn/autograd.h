// Define-by-run autograd: a `var` is a tensor plus (when it needs a gradient) the node of the
// op that produced it. Ops record a backward closure only when one of their inputs requires a
// gradient, so the same code runs inference without a graph. backward(loss) visits the graph
// in reverse topological order and accumulates gradients into the leaves (parameters).
//
// Differentiable ops live next to their forward in the op family folders (DESIGN.md section
// 4) and are declared in src/ops/<family>/autograd.h; each one calls make_result() with a
// closure that calls the family's own backward.
#pragma once

#include "lrnn/tensor.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lrnn::ag {

// Given dL/d(output), returns dL/d(input_i) for every recorded input in order (an undefined
// tensor means "no gradient", e.g. for an input that does not require one).
using backward_fn = std::function<result<std::vector<tensor>>(const tensor& grad_out)>;

struct node {
  tensor value;
  tensor grad;                       // dL/d(value), same shape, accumulated; undefined until reached
  bool requires_grad = false;
  bool grad_owned = false;           // grad is a private buffer (safe to accumulate into in place)
  std::vector<std::shared_ptr<node>> inputs;
  backward_fn backward;              // empty for leaves
  const char* op = "leaf";           // for error messages
};

class var {
 public:
  var() = default;
  // A leaf: a trainable parameter when requires_grad, a constant otherwise.
  explicit var(tensor value, bool requires_grad = false);
  explicit var(std::shared_ptr<node> n) : n_(std::move(n)) {}

  bool defined() const { return n_ && n_->value.defined(); }
  const tensor& value() const;
  tensor& mutable_value();           // for optimizers updating parameters in place
  const tensor& grad() const;        // undefined when no gradient reached this var
  bool requires_grad() const { return n_ && n_->requires_grad; }
  const shape_t& shape() const { return value().shape(); }
  int64_t size(int64_t d) const { return value().size(d); }
  int64_t dim() const { return value().dim(); }
  dtype type() const { return value().type(); }
  const std::shared_ptr<node>& impl() const { return n_; }
  void zero_grad();                  // drops the accumulated gradient
  var detach() const;                // same value, no history, no gradient

 private:
  std::shared_ptr<node> n_;
};

// Whether ops record (thread-local; on by default). Inference can turn it off.
bool grad_enabled();
class no_grad_guard {
 public:
  no_grad_guard();
  ~no_grad_guard();
  no_grad_guard(const no_grad_guard&) = delete;
  no_grad_guard& operator=(const no_grad_guard&) = delete;

 private:
  bool previous_;
};

// Wraps an op's output. Records `fn` and the inputs when grad mode is on and some input
// requires a gradient; otherwise returns a constant var (fn is dropped).
var make_result(tensor value, std::vector<var> inputs, backward_fn fn, const char* op);

// Runs the backward pass from `out` with seed gradient `grad_out` (same shape as out), or
// from a one-element loss with seed 1. Gradients add up over every use of a var. The graph
// behind `out` is released afterwards (closures cleared) unless retain_graph.
status backward(const var& out, const tensor& grad_out, bool retain_graph = false);
status backward(const var& loss, bool retain_graph = false);

// a += b elementwise (same shape; f32 or f64, contiguous). Used to accumulate gradients.
status accumulate_into(tensor& a, const tensor& b);

// Optional per-op profiler (off by default; on when the environment has LRNN_AUTOGRAD_PROFILE=1
// or after set_profiling(true)). Forward time of an op is the wall time since the previous
// make_result() (or profile_mark()) on the calling thread, so glue code between ops is charged
// to the op that follows it; call profile_mark() right before a forward pass. Backward time is
// each closure's wall time; gradient accumulation is charged to "(accumulate)". Totals add up
// until profile_reset().
struct op_profile {
  std::string op;
  double forward_ms = 0, backward_ms = 0;
  int64_t forward_calls = 0, backward_calls = 0;
};
void set_profiling(bool on);
bool profiling();
void profile_mark();
void profile_reset();
std::vector<op_profile> profile_snapshot();  // sorted by forward + backward time, largest first

}  // namespace lrnn::ag
