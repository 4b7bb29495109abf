// ag::local_attn: gradients of q, k, v against f64 central finite differences, with GQA,
// partial RoPE (RecurrentGemma's 0.5), a window shorter than the sequence and a document reset.
#include "ops/local_attn/autograd.h"
#include "ops/ag_fd_util.h"

#include <gtest/gtest.h>

namespace lrnn {
namespace {

using testing::fd_check;
using testing::random_f64;

class LocalAttnAutograd : public ::testing::TestWithParam<ops::local_attn_form> {};

TEST_P(LocalAttnAutograd, MatchesFiniteDifferences) {
  const int64_t B = 2, T = 9, Hq = 4, Hkv = 2, D = 8, Dv = 6;
  std::mt19937_64 rng(13);
  ag::var q(random_f64({B, T, Hq, D}, rng, -1, 1), true), k(random_f64({B, T, Hkv, D}, rng, -1, 1), true),
      v(random_f64({B, T, Hkv, Dv}, rng, -1, 1), true);
  std::vector<std::pair<std::string, ag::var>> leaves{{"q", q}, {"k", k}, {"v", v}};
  std::vector<int64_t> pos(B * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) pos[b * T + t] = b == 0 ? t : (t < 4 ? t : t - 4);
  const tensor positions = tensor::from_vector(pos, {B, T}, dtype::i64);
  ops::local_attn_spec spec;
  spec.window = 3;
  spec.rope = ops::rope_kind::half;
  spec.rotary_fraction = 0.5;
  auto rep = fd_check(leaves, [&] { return ag::local_attn(spec, q, k, v, GetParam(), positions); });
  ASSERT_TRUE(rep.ok) << rep.error;
  EXPECT_LT(rep.worst, 1e-7) << "worst leaf " << rep.worst_leaf;
  EXPECT_GT(rep.checked, 50);
}

INSTANTIATE_TEST_SUITE_P(Forms, LocalAttnAutograd,
                         ::testing::Values(ops::local_attn_form::reference, ops::local_attn_form::parallel));

}  // namespace
}  // namespace lrnn
