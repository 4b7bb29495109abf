// The op-comparison harness (see op_harness.h).
#include "support/op_harness.h"

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <random>
#include <sstream>

namespace lrnn::testing {

const tensor* find_tensor(const named_tensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return &t;
  return nullptr;
}

tensor get_tensor(const named_tensors& ts, const std::string& name) {
  const tensor* t = find_tensor(ts, name);
  LRNN_ASSERT(t != nullptr, "no tensor named '{}'", name);
  return *t;
}

double default_atol(dtype t) {
  switch (t) {
    case dtype::f64: return 1e-10;
    case dtype::f32: return 1e-5;
    case dtype::f16: return 2e-3;
    case dtype::bf16: return 1.6e-2;
    default: return 0;
  }
}

tensor random_normal(const shape_t& shape, uint64_t seed, double std, double mean) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, std);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = dist(rng);
  return tensor::from_doubles(v, shape, dtype::f64);
}

tensor random_uniform(const shape_t& shape, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = dist(rng);
  return tensor::from_doubles(v, shape, dtype::f64);
}

bool variant_report::pass() const {
  if (!error.empty()) return false;
  for (const auto& c : comparisons)
    if (!c.pass) return false;
  return true;
}

bool case_report::pass() const {
  for (const auto& v : variants)
    if (!v.pass()) return false;
  for (const auto& c : finite_differences)
    if (!c.pass) return false;
  return true;
}

static const char* backend_name(device_kind k) { return k == device_kind::cpu ? "cpu" : "cuda"; }

std::string case_report::summary() const {
  std::ostringstream os;
  for (const auto& v : variants) {
    os << (v.pass() ? "  ok   " : "  FAIL ") << v.form << "/" << backend_name(v.backend) << "/" << dtype_name(v.type);
    if (!v.error.empty()) os << ": error: " << v.error;
    os << "\n";
    for (const auto& c : v.comparisons)
      os << fmt::format("        {:<4} {:<24} err {:.3e}  naive {:.3e}  bound {:.3e}  rms ratio {:.3e}\n",
                        c.pass ? "ok" : "FAIL", c.what, c.err, c.naive_err, c.bound, c.rms_ratio);
  }
  for (const auto& c : finite_differences)
    os << fmt::format("  {:<4} finite differences {:<18} err {:.3e}  bound {:.3e}\n", c.pass ? "ok" : "FAIL", c.what,
                      c.err, c.bound);
  return os.str();
}

namespace {

struct coverage_cell {
  int pass = 0, fail = 0;
};
std::mutex g_cov_mu;
std::map<std::string, std::map<std::string, coverage_cell>> g_coverage;

named_tensors convert_inputs(const op_family& f, const named_tensors& in, dtype t) {
  named_tensors out;
  for (const auto& [name, x] : in) {
    auto it = f.policies.find(name);
    const input_policy p = it == f.policies.end() ? input_policy::follow : it->second;
    if (!x.defined() || !is_floating(x.type()) || p == input_policy::fixed) {
      out.emplace_back(name, x);
      continue;
    }
    const dtype target = p == input_policy::follow ? t : (t == dtype::f64 ? dtype::f64 : dtype::f32);
    out.emplace_back(name, x.to(target).value());
  }
  return out;
}

named_tensors to_device(const named_tensors& in, device_kind k) {
  if (k == device_kind::cpu) return in;
  named_tensors out;
  for (const auto& [n, x] : in) out.emplace_back(n, x.defined() ? x.to(device::cuda()).value() : x);
  return out;
}

double rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 0 : std::sqrt(s / static_cast<double>(v.size()));
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// max |a - b|, +inf if any NaN/Inf appears where the reference is finite.
double max_err(const std::vector<double>& a, const std::vector<double>& ref) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(a[i] - ref[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

comparison compare(const std::string& what, const tensor& tested, const tensor* naive, const tensor& ref, dtype t,
                   double atol_scale) {
  comparison c;
  c.what = what;
  if (!tested.defined() || tested.shape() != ref.shape()) {
    c.err = std::numeric_limits<double>::infinity();
    c.what += tested.defined() ? " (shape " + shape_to_string(tested.shape()) + " vs " + shape_to_string(ref.shape()) + ")"
                             : " (missing)";
    return c;
  }
  const auto r = ref.to_doubles();
  const auto f = tested.to_doubles();
  c.err = max_err(f, r);
  c.naive_err = naive && naive->defined() ? max_err(naive->to_doubles(), r) : 0.0;
  if (!std::isfinite(c.naive_err)) c.naive_err = 0;  // a naive overflow does not loosen the bound
  const double scale = std::max(1.0, max_abs(r));
  c.bound = 2 * c.naive_err + default_atol(t) * atol_scale * scale;
  std::vector<double> diff(f.size());
  for (size_t i = 0; i < f.size(); ++i) diff[i] = f[i] - r[i];
  const double rr = rms(r);
  c.rms_ratio = rr > 0 ? rms(diff) / rr : rms(diff);
  c.pass = c.err <= c.bound;
  return c;
}

named_tensors random_d_outputs(const named_tensors& outputs, uint64_t seed) {
  named_tensors d;
  uint64_t s = seed;
  for (const auto& [n, o] : outputs) {
    if (!o.defined() || !is_floating(o.type())) continue;
    d.emplace_back(n, random_normal(o.shape(), ++s));
  }
  return d;
}

// sum over outputs of <o, d_o>, the scalar whose gradient backward computes.
double loss_of(const named_tensors& outputs, const named_tensors& d_outputs) {
  double s = 0;
  for (const auto& [n, d] : d_outputs) {
    const tensor* o = find_tensor(outputs, n);
    if (!o) continue;
    const auto ov = o->to_doubles(), dv = d.to_doubles();
    for (size_t i = 0; i < ov.size(); ++i) s += ov[i] * dv[i];
  }
  return s;
}

void record(const std::string& family, const variant_report& r) {
  std::lock_guard<std::mutex> lock(g_cov_mu);
  auto& cell = g_coverage[family][fmt::format("{}/{}/{}", r.form, backend_name(r.backend), dtype_name(r.type))];
  (r.pass() ? cell.pass : cell.fail) += 1;
}

}  // namespace

case_report run_op_case(const op_family& family, const op_case& c) {
  case_report rep;
  const bool cuda_available = cuda_device_count() > 0;
  // f64 reference.
  const named_tensors in64 = convert_inputs(family, c.inputs, dtype::f64);
  auto ref_out_r = family.reference.forward(c.params, in64);
  if (!ref_out_r.ok()) {
    variant_report v{"reference", device_kind::cpu, dtype::f64, {}, ref_out_r.error().message()};
    rep.variants.push_back(v);
    return rep;
  }
  const named_tensors ref_out = *ref_out_r;
  const bool grads = c.check_gradients && static_cast<bool>(family.reference.backward);
  const named_tensors d_out64 = grads ? random_d_outputs(ref_out, c.seed) : named_tensors{};
  named_tensors ref_grads;
  if (grads) {
    auto g = family.reference.backward(c.params, in64, d_out64);
    if (!g.ok()) {
      rep.variants.push_back({"reference", device_kind::cpu, dtype::f64, {}, "backward: " + g.error().message()});
      return rep;
    }
    ref_grads = *g;
  }

  // Finite differences on the f64 reference.
  if (grads) {
    std::mt19937_64 rng(c.seed ^ 0x9e3779b97f4a7c15ull);
    for (const std::string& name : c.grad_inputs) {
      const tensor* x = find_tensor(in64, name);
      const tensor* g = find_tensor(ref_grads, name);
      comparison cmp;
      cmp.what = name;
      if (!x || !g) {
        cmp.err = std::numeric_limits<double>::infinity();
        cmp.what += " (no gradient returned)";
        rep.finite_differences.push_back(cmp);
        continue;
      }
      const tensor xc = x->contiguous().value();
      const auto gv = g->to_doubles();
      const int64_t n = xc.numel();
      std::vector<int64_t> idx;
      if (n <= c.fd_samples) {
        for (int64_t i = 0; i < n; ++i) idx.push_back(i);
      } else {
        std::uniform_int_distribution<int64_t> pick(0, n - 1);
        for (int i = 0; i < c.fd_samples; ++i) idx.push_back(pick(rng));
      }
      double worst = 0, worst_bound = 0;
      bool ok = true;
      for (int64_t i : idx) {
        named_tensors plus = in64, minus = in64;
        tensor xp = xc.clone().value(), xm = xc.clone().value();
        double* pp = xp.data<double>();
        double* pm = xm.data<double>();
        pp[i] += c.fd_eps;
        pm[i] -= c.fd_eps;
        for (auto& [nn, t] : plus)
          if (nn == name) t = xp;
        for (auto& [nn, t] : minus)
          if (nn == name) t = xm;
        auto op = family.reference.forward(c.params, plus);
        auto om = family.reference.forward(c.params, minus);
        if (!op.ok() || !om.ok()) {
          ok = false;
          break;
        }
        const double fd = (loss_of(*op, d_out64) - loss_of(*om, d_out64)) / (2 * c.fd_eps);
        const double err = std::fabs(fd - gv[i]);
        const double bound = c.fd_rtol * std::max(1.0, std::fabs(fd));
        if (!(err <= bound)) ok = false;
        if (err > worst) {
          worst = err;
          worst_bound = bound;
        }
      }
      cmp.err = worst;
      cmp.bound = worst_bound;
      cmp.pass = ok;
      rep.finite_differences.push_back(cmp);
    }
  }

  // Every variant in every dtype it supports.
  for (const op_variant& v : family.variants) {
    if (v.backend == device_kind::cuda && !cuda_available) continue;
    for (dtype t : v.dtypes) {
      variant_report vr{v.form, v.backend, t, {}, {}};
      const named_tensors in_t = convert_inputs(family, c.inputs, t);
      // The naive baseline: the reference run in the same low precision.
      named_tensors naive_out, naive_grads;
      if (t != dtype::f64) {
        auto no = family.reference.forward(c.params, in_t);
        if (no.ok()) naive_out = *no;
        if (grads) {
          auto ng = family.reference.backward(c.params, in_t, convert_inputs(family, d_out64, t));
          if (ng.ok()) naive_grads = *ng;
        }
      }
      auto out = v.forward(c.params, to_device(in_t, v.backend));
      if (!out.ok()) {
        vr.error = "forward: " + out.error().message();
      } else {
        for (const auto& [n, r] : ref_out) {
          const tensor* f = find_tensor(*out, n);
          vr.comparisons.push_back(compare("output " + n, f ? *f : tensor(), find_tensor(naive_out, n), r, t, c.atol_scale));
        }
        if (grads && v.backward) {
          auto g = v.backward(c.params, to_device(in_t, v.backend), to_device(convert_inputs(family, d_out64, t), v.backend));
          if (!g.ok()) {
            vr.error = "backward: " + g.error().message();
          } else {
            for (const auto& [n, r] : ref_grads) {
              const tensor* f = find_tensor(*g, n);
              vr.comparisons.push_back(compare("grad " + n, f ? *f : tensor(), find_tensor(naive_grads, n), r, t, c.atol_scale));
            }
          }
        }
      }
      record(family.name, vr);
      rep.variants.push_back(std::move(vr));
    }
  }
  return rep;
}

bool harness_verbose() {
  const char* e = std::getenv("LRNN_HARNESS_VERBOSE");
  return e && std::string(e) == "1";
}

std::string coverage_matrix() {
  std::lock_guard<std::mutex> lock(g_cov_mu);
  std::ostringstream os;
  for (const auto& [family, cells] : g_coverage) {
    os << family << "\n";
    for (const auto& [key, cell] : cells)
      os << fmt::format("  {:<32} {:>4} passed {:>4} failed\n", key, cell.pass, cell.fail);
  }
  return os.str();
}

namespace {
// Prints the matrix after all tests when LRNN_PRINT_COVERAGE=1.
class coverage_printer : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* e = std::getenv("LRNN_PRINT_COVERAGE");
    if (e && std::string(e) == "1") std::printf("\nop coverage matrix (form/backend/dtype):\n%s", coverage_matrix().c_str());
  }
};
[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new coverage_printer);
}  // namespace

}  // namespace lrnn::testing
