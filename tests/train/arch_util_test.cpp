// The model-specific differentiable ops of src/train/models/arch_util (L2 normalisation per
// group, the RWKV-7 bonus, Griffin's block-diagonal gate) against f64 finite differences.
#include "ops/ag_fd_util.h"
#include "train/models/arch_util.h"

#include <gtest/gtest.h>

namespace lrnn {
namespace {

using testing::fd_check;
using testing::random_f64;

TEST(ArchUtilAutograd, OpsMatchFiniteDifferences) {
  std::mt19937_64 rng(21);
  ag::var x(random_f64({2, 3, 12}, rng, -1, 1), true);
  std::vector<std::pair<std::string, ag::var>> l1{{"x", x}};
  auto r1 = fd_check(l1, [&] { return train::arch::l2_normalize_groups(x, 4); });
  ASSERT_TRUE(r1.ok) << r1.error;
  EXPECT_LT(r1.worst, 1e-8);

  ag::var r(random_f64({2, 3, 8}, rng, -1, 1), true), k(random_f64({2, 3, 8}, rng, -1, 1), true),
      rk(random_f64({2, 4}, rng, -1, 1), true), v(random_f64({2, 3, 6}, rng, -1, 1), true);
  std::vector<std::pair<std::string, ag::var>> l2{{"r", r}, {"k", k}, {"r_k", rk}, {"v", v}};
  auto r2 = fd_check(l2, [&] { return train::arch::rwkv7_bonus(r, k, rk, v); });
  ASSERT_TRUE(r2.ok) << r2.error;
  EXPECT_LT(r2.worst, 1e-8);

  ag::var bx(random_f64({2, 3, 6}, rng, -1, 1), true), bw(random_f64({2, 3, 3}, rng, -1, 1), true),
      bb(random_f64({2, 3}, rng, -1, 1), true);
  std::vector<std::pair<std::string, ag::var>> l3{{"x", bx}, {"w", bw}, {"b", bb}};
  auto r3 = fd_check(l3, [&] { return train::arch::block_diag_linear(bx, bw, bb); });
  ASSERT_TRUE(r3.ok) << r3.error;
  EXPECT_LT(r3.worst, 1e-8);
  EXPECT_EQ(r1.checked + r2.checked + r3.checked, 24 + 24 * 2 + 8 + 24 + 24 + 18 + 6);
}

TEST(ArchUtilAutograd, L2NormalizeValues) {
  ag::var x(tensor::from_doubles({3, 4, 0, 0}, {1, 4}, dtype::f64), false);
  auto y = train::arch::l2_normalize_groups(x, 2).value();
  const auto v = y.value().to_doubles();
  EXPECT_DOUBLE_EQ(v[0], 0.6);
  EXPECT_DOUBLE_EQ(v[1], 0.8);
  EXPECT_DOUBLE_EQ(v[2], 0.0);  // max(||x||, 1e-12) as torch F.normalize
}

}  // namespace
}  // namespace lrnn
