// The op-comparison harness (DESIGN.md section 6). A family describes its reference and its
// variants (form x backend x dtypes); a case gives f64 inputs. run_op_case() then checks, for
// every variant and dtype, outputs and gradients against the f64 reference with the
// FlashAttention rule  max|fast - ref| <= 2 * max|naive_lowp - ref| + atol(dtype) * scale,
// checks the reference gradients against f64 central finite differences, and records the
// result in a coverage matrix (printed when LRNN_PRINT_COVERAGE=1).
// Register a case in one line:  LRNN_OP_CASE(rms_norm, rows7_d60, rms_norm_family(), make_case(7, 60));
#pragma once

#include "lrnn/tensor.h"

#include <gtest/gtest.h>

#include <any>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace lrnn::testing {

using named_tensors = std::vector<std::pair<std::string, tensor>>;

const tensor* find_tensor(const named_tensors& ts, const std::string& name);
tensor get_tensor(const named_tensors& ts, const std::string& name);  // asserts presence

// Forward: (params, inputs) -> outputs. Backward: (params, inputs, d_outputs) -> d_inputs
// (named like the inputs; an input without an entry has no gradient).
using forward_fn = std::function<result<named_tensors>(const std::any& params, const named_tensors& inputs)>;
using backward_fn = std::function<result<named_tensors>(const std::any& params, const named_tensors& inputs,
                                                        const named_tensors& d_outputs)>;

struct op_variant {
  std::string form;  // "reference", "recurrent", "parallel", "chunk", "cpu", ...
  device_kind backend = device_kind::cpu;
  std::vector<dtype> dtypes;
  forward_fn forward;
  backward_fn backward;  // empty: forward only
};

// How an input is converted for a run in dtype t.
enum class input_policy {
  follow,    // converted to t (q, k, v, x ...)
  f32_min,   // f64 in an f64 run, f32 otherwise (recurrent states, gates kept in fp32)
  fixed,     // kept exactly as given (integer ids, cu_seqlens)
};

struct op_family {
  std::string name;
  op_variant reference;  // must accept f64 and every dtype the variants use
  std::vector<op_variant> variants;
  std::map<std::string, input_policy> policies;  // default: follow
};

struct op_case {
  std::string name;
  std::any params;
  named_tensors inputs;                 // f64 (or integer) CPU tensors
  std::vector<std::string> grad_inputs; // inputs whose gradients are checked (FD included)
  bool check_gradients = true;
  int fd_samples = 24;                  // finite-difference checks per gradient input (random elements)
  double fd_eps = 1e-6;
  double fd_rtol = 1e-5;
  double atol_scale = 1.0;              // multiplies atol(dtype) for this case
  uint64_t seed = 1234;
};

double default_atol(dtype t);

struct comparison {
  std::string what;  // "output o", "grad q"
  double err = 0, naive_err = 0, bound = 0, rms_ratio = 0;
  bool pass = false;
};

struct variant_report {
  std::string form;
  device_kind backend;
  dtype type;
  std::vector<comparison> comparisons;
  std::string error;  // a status error from the variant, if any
  bool pass() const;
};

// Runs everything for one case; returns the reports (also records them in the coverage matrix).
struct case_report {
  std::vector<variant_report> variants;
  std::vector<comparison> finite_differences;
  bool pass() const;
  std::string summary() const;
};
case_report run_op_case(const op_family& family, const op_case& c);

// The coverage matrix collected so far: family -> "form/backend/dtype" -> pass count, fail count.
std::string coverage_matrix();

// LRNN_HARNESS_VERBOSE=1 prints every case's comparison table, passing or not.
bool harness_verbose();

// Fills a tensor with a deterministic pseudo-random normal(0, std) sample (f64 CPU).
tensor random_normal(const shape_t& shape, uint64_t seed, double std = 1.0, double mean = 0.0);
tensor random_uniform(const shape_t& shape, uint64_t seed, double lo, double hi);

}  // namespace lrnn::testing

#define LRNN_OP_CASE(suite, name, family_expr, case_expr)                            \
  TEST(suite, name) {                                                                \
    const auto rep = ::lrnn::testing::run_op_case((family_expr), (case_expr));       \
    EXPECT_TRUE(rep.pass()) << rep.summary();                                        \
    if (::lrnn::testing::harness_verbose()) std::printf("%s", rep.summary().c_str());  \
  }
