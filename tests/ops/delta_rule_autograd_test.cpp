// ag::delta_rule: gradients of every input against f64 central finite differences, for each
// kind (DeltaNet, Gated DeltaNet with and without qk L2 norm, DPLR / RWKV-7) in the recurrent
// and chunk forms (T spans two chunks), plus a check that a wrong backward is caught.
#include "ops/delta_rule/autograd.h"
#include "ops/ag_fd_util.h"

#include <gtest/gtest.h>

namespace lrnn {
namespace {

using testing::fd_check;
using testing::random_f64;

struct dr_case {
  ops::delta_kind kind;
  bool l2 = false;
  ops::delta_rule_form form;
};

class DeltaRuleAutograd : public ::testing::TestWithParam<dr_case> {};

TEST_P(DeltaRuleAutograd, MatchesFiniteDifferences) {
  const dr_case c = GetParam();
  const int64_t B = 2, T = 20, H = 2, K = 5, V = 4;
  std::mt19937_64 rng(11);
  std::vector<std::pair<std::string, ag::var>> leaves;
  auto leaf = [&](const std::string& n, const shape_t& s, double lo, double hi) {
    ag::var v(random_f64(s, rng, lo, hi), true);
    leaves.emplace_back(n, v);
    return v;
  };
  ag::delta_rule_vars in;
  const double kscale = c.kind == ops::delta_kind::dplr || c.l2 ? 0.5 : 0.35;
  in.q = leaf("q", {B, T, H, K}, -1, 1);
  in.k = leaf("k", {B, T, H, K}, -kscale, kscale);
  in.v = leaf("v", {B, T, H, V}, -1, 1);
  if (c.kind != ops::delta_kind::dplr) in.beta = leaf("beta", {B, T, H}, 0.2, 0.9);
  if (c.kind == ops::delta_kind::gated) in.g = leaf("g", {B, T, H}, -0.6, -0.05);
  if (c.kind == ops::delta_kind::dplr) {
    in.w = leaf("w", {B, T, H, K}, -0.6, -0.05);
    in.a = leaf("a", {B, T, H, K}, -0.4, 0.0);
    in.b = leaf("b", {B, T, H, K}, 0.0, 0.4);
  }
  ops::delta_rule_spec spec;
  spec.kind = c.kind;
  spec.qk_l2norm = c.l2;
  spec.scale = c.kind == ops::delta_kind::dplr ? 1.0 : 0.0;
  ops::delta_rule_options opt;
  opt.chunk_size = 16;
  auto rep = fd_check(leaves, [&] { return ag::delta_rule(spec, in, c.form, opt); });
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_LT(rep.worst, 1e-7) << "worst leaf " << rep.worst_leaf;
  EXPECT_GE(rep.checked, 24 * static_cast<int64_t>(leaves.size()));
  // The output does not record a graph under no_grad.
  ag::no_grad_guard ng;
  auto o = ag::delta_rule(spec, in, c.form, opt);
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->requires_grad());
}

INSTANTIATE_TEST_SUITE_P(Kinds, DeltaRuleAutograd,
                         ::testing::Values(dr_case{ops::delta_kind::delta, false, ops::delta_rule_form::recurrent},
                                           dr_case{ops::delta_kind::delta, false, ops::delta_rule_form::chunk},
                                           dr_case{ops::delta_kind::gated, false, ops::delta_rule_form::recurrent},
                                           dr_case{ops::delta_kind::gated, true, ops::delta_rule_form::chunk},
                                           dr_case{ops::delta_kind::gated, true, ops::delta_rule_form::reference},
                                           dr_case{ops::delta_kind::dplr, false, ops::delta_rule_form::recurrent},
                                           dr_case{ops::delta_kind::dplr, false, ops::delta_rule_form::chunk}));

// The checker is not vacuous: the same op with its gradient doubled fails it.
TEST(DeltaRuleAutograd, WrongBackwardIsCaught) {
  const int64_t B = 1, T = 6, H = 1, K = 3, V = 2;
  std::mt19937_64 rng(3);
  ag::var q(random_f64({B, T, H, K}, rng, -1, 1), true), k(random_f64({B, T, H, K}, rng, -0.4, 0.4), true),
      v(random_f64({B, T, H, V}, rng, -1, 1), true), beta(random_f64({B, T, H}, rng, 0.2, 0.8), true);
  std::vector<std::pair<std::string, ag::var>> leaves{{"q", q}, {"k", k}, {"v", v}, {"beta", beta}};
  ops::delta_rule_spec spec;
  spec.kind = ops::delta_kind::delta;
  auto rep = fd_check(leaves, [&]() -> result<ag::var> {
    ag::delta_rule_vars in;
    in.q = q;
    in.k = k;
    in.v = v;
    in.beta = beta;
    LRNN_ASSIGN_OR_RETURN(ag::var o, ag::delta_rule(spec, in, ops::delta_rule_form::recurrent));
    // Identity in value, doubled gradient.
    return ag::make_result(o.value(), {o}, [](const tensor& g) -> result<std::vector<tensor>> {
      LRNN_ASSIGN_OR_RETURN(tensor d, g.clone());
      for (int64_t i = 0; i < d.numel(); ++i) d.data<double>()[i] *= 2;
      return std::vector<tensor>{d};
    }, "double_grad");
  });
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_GT(rep.worst, 0.1);
}

}  // namespace
}  // namespace lrnn
