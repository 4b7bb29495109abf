// RMSNorm through the op harness: the CPU form against the f64 reference, gradients against
// finite differences; plus the harness's own self-checks (a wrong variant must fail).
#include "ops/norm/norm.h"
#include "support/op_harness.h"

namespace lrnn::testing {
namespace {

using ops::norm_form;
using ops::rms_norm_spec;

op_variant rms_norm_variant(norm_form form, std::string name, std::vector<dtype> dtypes) {
  op_variant v;
  v.form = std::move(name);
  v.dtypes = std::move(dtypes);
  v.forward = [form](const std::any& p, const named_tensors& in) -> result<named_tensors> {
    const auto& spec = std::any_cast<const rms_norm_spec&>(p);
    const tensor* w = find_tensor(in, "weight");
    LRNN_ASSIGN_OR_RETURN(tensor y, ops::rms_norm_forward(spec, get_tensor(in, "x"), w ? *w : tensor(), form));
    return named_tensors{{"y", y}};
  };
  v.backward = [form](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    const auto& spec = std::any_cast<const rms_norm_spec&>(p);
    const tensor* w = find_tensor(in, "weight");
    LRNN_ASSIGN_OR_RETURN(auto g, ops::rms_norm_backward(spec, get_tensor(in, "x"), w ? *w : tensor(),
                                                         get_tensor(d, "y"), form));
    named_tensors out{{"x", g.dx}};
    if (w) out.emplace_back("weight", g.dweight);
    return out;
  };
  return v;
}

op_family rms_norm_family() {
  op_family f;
  f.name = "norm.rms";
  f.reference = rms_norm_variant(norm_form::reference, "reference", {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  f.variants = {rms_norm_variant(norm_form::reference, "reference", {dtype::f64}),
                rms_norm_variant(norm_form::cpu, "cpu", {dtype::f32, dtype::bf16, dtype::f16})};
  f.policies = {{"weight", input_policy::f32_min}};
  return f;
}

op_case rms_case(int64_t rows, int64_t D, double offset = 0.0, double x_scale = 1.0, bool weight = true) {
  op_case c;
  c.name = fmt::format("rows{}_d{}", rows, D);
  c.params = rms_norm_spec{1e-6, offset};
  c.inputs = {{"x", random_normal({rows, D}, 11, x_scale)}};
  c.grad_inputs = {"x"};
  if (weight) {
    c.inputs.emplace_back("weight", random_normal({D}, 12, 0.5, 1.0));
    c.grad_inputs.push_back("weight");
  }
  return c;
}

LRNN_OP_CASE(rms_norm, rows7_d60, rms_norm_family(), rms_case(7, 60))
LRNN_OP_CASE(rms_norm, rows33_d128, rms_norm_family(), rms_case(33, 128))
LRNN_OP_CASE(rms_norm, gemma_offset, rms_norm_family(), rms_case(5, 64, 1.0))
LRNN_OP_CASE(rms_norm, no_weight, rms_norm_family(), rms_case(5, 64, 0.0, 1.0, false))
LRNN_OP_CASE(rms_norm, tiny_and_huge_inputs, rms_norm_family(), rms_case(9, 64, 0.0, 1e-3))
LRNN_OP_CASE(rms_norm, one_row_d1, rms_norm_family(), rms_case(1, 1))

TEST(rms_norm, rejects_bad_shapes_with_named_errors) {
  tensor x = tensor::zeros({2, 8}, dtype::f32).value();
  tensor w = tensor::zeros({7}, dtype::f32).value();
  auto r = ops::rms_norm_forward({}, x, w);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("expected [8]"), std::string::npos) << r.error().message();
  auto i = ops::rms_norm_forward({}, tensor::zeros({2, 8}, dtype::i32).value(), tensor());
  EXPECT_EQ(i.error().code(), status_code::invalid_argument);
}

// The harness must fail a variant that is wrong, a variant that leaves outputs unwritten
// (NaN poison), a variant with wrong gradients, and a reference whose backward is wrong.
TEST(op_harness, fails_wrong_outputs) {
  op_family f = rms_norm_family();
  op_variant bad = f.variants[1];
  auto good_fwd = bad.forward;
  bad.form = "off_by_1e-3";
  bad.forward = [good_fwd](const std::any& p, const named_tensors& in) -> result<named_tensors> {
    LRNN_ASSIGN_OR_RETURN(auto out, good_fwd(p, in));
    tensor y = out[0].second.to(dtype::f64).value();
    y.set({0, 0}, y.at({0, 0}) + 1e-3);
    return named_tensors{{"y", y.to(out[0].second.type()).value()}};
  };
  bad.dtypes = {dtype::f32};
  f.variants = {bad};
  const auto rep = run_op_case(f, rms_case(4, 16));
  EXPECT_FALSE(rep.pass()) << rep.summary();
}

TEST(op_harness, fails_unwritten_outputs) {
  op_family f = rms_norm_family();
  op_variant bad = f.variants[1];
  bad.form = "unwritten";
  bad.forward = [](const std::any&, const named_tensors& in) -> result<named_tensors> {
    LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(get_tensor(in, "x").shape(), get_tensor(in, "x").type()));
    return named_tensors{{"y", y}};
  };
  bad.dtypes = {dtype::f32};
  f.variants = {bad};
  EXPECT_FALSE(run_op_case(f, rms_case(4, 16)).pass());
}

TEST(op_harness, fails_wrong_gradients_and_missing_outputs) {
  op_family f = rms_norm_family();
  op_variant bad = f.variants[1];
  auto good_bwd = bad.backward;
  bad.backward = [good_bwd](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    LRNN_ASSIGN_OR_RETURN(auto g, good_bwd(p, in, d));
    g.pop_back();  // drop the weight gradient
    return g;
  };
  bad.dtypes = {dtype::f32};
  f.variants = {bad};
  EXPECT_FALSE(run_op_case(f, rms_case(4, 16)).pass());
}

TEST(op_harness, finite_differences_catch_a_wrong_reference_backward) {
  op_family f = rms_norm_family();
  auto good_bwd = f.reference.backward;
  f.reference.backward = [good_bwd](const std::any& p, const named_tensors& in, const named_tensors& d) -> result<named_tensors> {
    LRNN_ASSIGN_OR_RETURN(auto g, good_bwd(p, in, d));
    tensor dx = g[0].second.clone().value();
    dx.set({0, 0}, dx.at({0, 0}) * 1.01 + 1e-3);
    g[0].second = dx;
    return g;
  };
  f.variants.clear();
  op_case c = rms_case(2, 4);  // 8 elements: every one is finite-differenced
  EXPECT_FALSE(run_op_case(f, c).pass());
}

TEST(op_harness, coverage_matrix_lists_what_ran) {
  (void)run_op_case(rms_norm_family(), rms_case(2, 8));
  const std::string m = coverage_matrix();
  EXPECT_NE(m.find("norm.rms"), std::string::npos);
  EXPECT_NE(m.find("cpu/cpu/bf16"), std::string::npos) << m;
}

}  // namespace
}  // namespace lrnn::testing
