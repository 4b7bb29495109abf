// ag::linear_scan: gradients of every input against f64 central finite differences, for the
// log_a and RG-LRU gates in the recurrent, scan and reference forms, with document resets.
#include "ops/linear_scan/autograd.h"
#include "ops/ag_fd_util.h"

#include <gtest/gtest.h>

namespace lrnn {
namespace {

using testing::fd_check;
using testing::random_f64;

struct ls_case {
  ops::scan_gate gate;
  ops::linear_scan_form form;
  bool resets;
};

class LinearScanAutograd : public ::testing::TestWithParam<ls_case> {};

TEST_P(LinearScanAutograd, MatchesFiniteDifferences) {
  const ls_case c = GetParam();
  const int64_t B = 2, T = 13, C = 6;
  std::mt19937_64 rng(5);
  std::vector<std::pair<std::string, ag::var>> leaves;
  auto leaf = [&](const std::string& n, const shape_t& s, double lo, double hi) {
    ag::var v(random_f64(s, rng, lo, hi), true);
    leaves.emplace_back(n, v);
    return v;
  };
  ag::linear_scan_vars in;
  in.x = leaf("x", {B, T, C}, -1, 1);
  if (c.gate == ops::scan_gate::log_a) {
    in.log_a = leaf("log_a", {B, T, C}, -1.0, -0.05);
  } else {
    in.gate_x = leaf("gate_x", {B, T, C}, -2, 2);
    in.gate_a = leaf("gate_a", {B, T, C}, -2, 2);
    in.a_param = leaf("a_param", {C}, -1.5, 1.0);
  }
  if (c.resets) {
    std::vector<int64_t> pos(B * T);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) pos[b * T + t] = b == 0 ? t : (t < 5 ? t : t - 5);  // row 1: a new document at t = 5
    in.segment_pos = tensor::from_vector(pos, {B, T}, dtype::i64);
  }
  ops::linear_scan_spec spec;
  spec.gate = c.gate;
  ops::linear_scan_options opt;
  opt.chunk_size = 4;
  auto rep = fd_check(leaves, [&] { return ag::linear_scan(spec, in, c.form, opt); });
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_LT(rep.worst, 1e-7) << "worst leaf " << rep.worst_leaf;
  EXPECT_GT(rep.checked, 40);
}

INSTANTIATE_TEST_SUITE_P(Gates, LinearScanAutograd,
                         ::testing::Values(ls_case{ops::scan_gate::log_a, ops::linear_scan_form::recurrent, false},
                                           ls_case{ops::scan_gate::log_a, ops::linear_scan_form::scan, true},
                                           ls_case{ops::scan_gate::rg_lru, ops::linear_scan_form::recurrent, true},
                                           ls_case{ops::scan_gate::rg_lru, ops::linear_scan_form::scan, true},
                                           ls_case{ops::scan_gate::rg_lru, ops::linear_scan_form::reference, false}));

}  // namespace
}  // namespace lrnn
