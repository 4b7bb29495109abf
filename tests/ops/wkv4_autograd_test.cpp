// ag::wkv4: gradients of k, v, time_decay, time_first against f64 central finite differences
// in the reference, recurrent and chunk forms.
#include "ops/wkv4/autograd.h"
#include "ops/ag_fd_util.h"

#include <gtest/gtest.h>

namespace lrnn {
namespace {

using testing::fd_check;
using testing::random_f64;

class Wkv4Autograd : public ::testing::TestWithParam<ops::wkv4_form> {};

TEST_P(Wkv4Autograd, MatchesFiniteDifferences) {
  const int64_t B = 2, T = 11, C = 5;
  std::mt19937_64 rng(9);
  ag::var k(random_f64({B, T, C}, rng, -2, 2), true), v(random_f64({B, T, C}, rng, -1, 1), true),
      td(random_f64({C}, rng, -2, 1), true), tf(random_f64({C}, rng, -1, 1), true);
  std::vector<std::pair<std::string, ag::var>> leaves{{"k", k}, {"v", v}, {"time_decay", td}, {"time_first", tf}};
  ops::wkv4_options opt;
  opt.chunk_size = 4;
  auto rep = fd_check(leaves, [&] { return ag::wkv4(k, v, td, tf, GetParam(), tensor(), opt); });
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_LT(rep.worst, 1e-7) << "worst leaf " << rep.worst_leaf;
  EXPECT_GT(rep.checked, 50);
}

INSTANTIATE_TEST_SUITE_P(Forms, Wkv4Autograd,
                         ::testing::Values(ops::wkv4_form::reference, ops::wkv4_form::recurrent, ops::wkv4_form::chunk));

}  // namespace
}  // namespace lrnn
