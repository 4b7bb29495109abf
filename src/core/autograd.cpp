#include "lrnn/autograd.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_set>

namespace lrnn::ag {
namespace {
thread_local bool g_grad_enabled = true;
const tensor& undefined_tensor() {
  static const tensor t;
  return t;
}
// Profiler state: totals per op name (string key: op names are literals, but compare by text).
using prof_clock = std::chrono::steady_clock;
std::atomic<bool>& prof_on() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("LRNN_AUTOGRAD_PROFILE");
    return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
  }()};
  return on;
}
std::mutex g_prof_mu;
std::map<std::string, op_profile>& prof_table() {
  static std::map<std::string, op_profile> t;
  return t;
}
thread_local prof_clock::time_point t_last_mark = prof_clock::now();
double ms_between(prof_clock::time_point a, prof_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
void prof_add(const char* op, double fwd_ms, double bwd_ms) {
  std::lock_guard<std::mutex> lock(g_prof_mu);
  op_profile& p = prof_table()[op];
  if (p.op.empty()) p.op = op;
  if (fwd_ms >= 0) {
    p.forward_ms += fwd_ms;
    ++p.forward_calls;
  }
  if (bwd_ms >= 0) {
    p.backward_ms += bwd_ms;
    ++p.backward_calls;
  }
}
}  // namespace

void set_profiling(bool on) {
  prof_on().store(on);
  t_last_mark = prof_clock::now();
}
bool profiling() { return prof_on().load(std::memory_order_relaxed); }
void profile_mark() { t_last_mark = prof_clock::now(); }
void profile_reset() {
  std::lock_guard<std::mutex> lock(g_prof_mu);
  prof_table().clear();
  t_last_mark = prof_clock::now();
}
std::vector<op_profile> profile_snapshot() {
  std::vector<op_profile> out;
  {
    std::lock_guard<std::mutex> lock(g_prof_mu);
    for (const auto& [k, v] : prof_table()) out.push_back(v);
  }
  std::sort(out.begin(), out.end(), [](const op_profile& a, const op_profile& b) {
    return a.forward_ms + a.backward_ms > b.forward_ms + b.backward_ms;
  });
  return out;
}

var::var(tensor value, bool requires_grad) : n_(std::make_shared<node>()) {
  n_->value = std::move(value);
  n_->requires_grad = requires_grad;
}

const tensor& var::value() const {
  LRNN_ASSERT(n_ != nullptr, "value() of an undefined var");
  return n_->value;
}

tensor& var::mutable_value() {
  LRNN_ASSERT(n_ != nullptr, "mutable_value() of an undefined var");
  return n_->value;
}

const tensor& var::grad() const { return n_ ? n_->grad : undefined_tensor(); }

void var::zero_grad() {
  if (!n_) return;
  n_->grad = tensor();
  n_->grad_owned = false;
}

var var::detach() const { return n_ ? var(n_->value, false) : var(); }

bool grad_enabled() { return g_grad_enabled; }
no_grad_guard::no_grad_guard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
no_grad_guard::~no_grad_guard() { g_grad_enabled = previous_; }

var make_result(tensor value, std::vector<var> inputs, backward_fn fn, const char* op) {
  if (profiling()) {
    const auto now = prof_clock::now();
    prof_add(op, ms_between(t_last_mark, now), -1);
    t_last_mark = now;
  }
  auto n = std::make_shared<node>();
  n->value = std::move(value);
  n->op = op;
  bool needs = false;
  if (g_grad_enabled)
    for (const var& in : inputs) needs = needs || in.requires_grad();
  if (needs) {
    n->requires_grad = true;
    n->inputs.reserve(inputs.size());
    for (const var& in : inputs) n->inputs.push_back(in.impl());
    n->backward = std::move(fn);
  }
  return var(std::move(n));
}

status accumulate_into(tensor& a, const tensor& b) {
  if (a.shape() != b.shape())
    return make_error(status_code::internal, "gradient accumulation: shape {} += {}", shape_to_string(a.shape()),
                      shape_to_string(b.shape()));
  if (!a.is_contiguous()) return make_error(status_code::internal, "gradient accumulation into a non-contiguous tensor");
  tensor bb = b;
  if (b.type() != a.type() || !b.is_contiguous()) {
    LRNN_ASSIGN_OR_RETURN(tensor conv, b.to(a.type()));
    LRNN_ASSIGN_OR_RETURN(bb, conv.contiguous());
  }
  const int64_t n = a.numel();
  if (a.type() == dtype::f32) {
    float* pa = a.data<float>();
    const float* pb = bb.data<float>();
    for (int64_t i = 0; i < n; ++i) pa[i] += pb[i];
  } else if (a.type() == dtype::f64) {
    double* pa = a.data<double>();
    const double* pb = bb.data<double>();
    for (int64_t i = 0; i < n; ++i) pa[i] += pb[i];
  } else {
    return make_error(status_code::unsupported, "gradient accumulation in {} (f32/f64 only)", dtype_name(a.type()));
  }
  return {};
}

namespace {

status add_grad(node& n, const tensor& g, const char* from_op) {
  if (!g.defined()) return {};
  if (g.shape() != n.value.shape())
    return make_error(status_code::internal, "backward of '{}' returned a gradient of shape {} for an input of shape {}",
                      from_op, shape_to_string(g.shape()), shape_to_string(n.value.shape()));
  if (!n.grad.defined()) {
    n.grad = g;  // shared until a second contribution arrives
    n.grad_owned = false;
    return {};
  }
  if (!n.grad_owned) {
    dtype acc = n.grad.type() == dtype::f64 ? dtype::f64 : dtype::f32;
    LRNN_ASSIGN_OR_RETURN(tensor own, tensor::empty(n.grad.shape(), acc));
    LRNN_TRY(own.copy_from(n.grad));
    n.grad = own;
    n.grad_owned = true;
  }
  return accumulate_into(n.grad, g);
}

}  // namespace

status backward(const var& out, const tensor& grad_out, bool retain_graph) {
  if (!out.defined()) return make_error(status_code::invalid_argument, "backward() of an undefined var");
  if (!out.requires_grad())
    return make_error(status_code::invalid_argument, "backward(): the output does not depend on any parameter that requires a gradient");
  // Reverse topological order by an iterative depth-first search.
  // `order` owns the nodes: releasing a node's inputs below must not free a node not yet visited.
  std::vector<std::shared_ptr<node>> order;
  std::unordered_set<node*> seen;
  std::vector<std::pair<std::shared_ptr<node>, size_t>> stack{{out.impl(), 0}};
  seen.insert(out.impl().get());
  while (!stack.empty()) {
    auto& [n, next] = stack.back();
    if (next < n->inputs.size()) {
      std::shared_ptr<node> in = n->inputs[next++];
      if (in && in->requires_grad && seen.insert(in.get()).second) stack.push_back({std::move(in), 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  LRNN_TRY(add_grad(*out.impl(), grad_out, "backward seed"));
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    node* n = it->get();
    if (!n->backward || !n->grad.defined()) continue;
    const bool prof = profiling();
    const auto t0 = prof ? prof_clock::now() : prof_clock::time_point{};
    LRNN_ASSIGN_OR_RETURN(std::vector<tensor> grads, n->backward(n->grad));
    if (grads.size() != n->inputs.size())
      return make_error(status_code::internal, "backward of '{}' returned {} gradients for {} inputs", n->op, grads.size(),
                        n->inputs.size());
    const auto t1 = prof ? prof_clock::now() : prof_clock::time_point{};
    for (size_t i = 0; i < grads.size(); ++i) {
      node* in = n->inputs[i].get();
      if (in && in->requires_grad) LRNN_TRY(add_grad(*in, grads[i], n->op));
    }
    if (prof) {
      const auto t2 = prof_clock::now();
      prof_add(n->op, -1, ms_between(t0, t1));
      prof_add("(accumulate)", -1, ms_between(t1, t2));
    }
    if (!retain_graph) {
      // Intermediate results are done: free their gradient, closure and inputs.
      n->backward = nullptr;
      n->inputs.clear();
      n->grad = tensor();
    }
  }
  return {};
}

status backward(const var& loss, bool retain_graph) {
  if (!loss.defined() || loss.value().numel() != 1)
    return make_error(status_code::invalid_argument, "backward(loss): the loss must have one element, got {}",
                      loss.defined() ? shape_to_string(loss.shape()) : std::string("an undefined var"));
  LRNN_ASSIGN_OR_RETURN(tensor seed, tensor::full(loss.shape(), 1.0, loss.type() == dtype::f64 ? dtype::f64 : dtype::f32));
  return backward(loss, seed, retain_graph);
}

}  // namespace lrnn::ag
