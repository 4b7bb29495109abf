// linear()'s decode path (src/ops/dense/gemv.cpp, M <= 4 rows) against an f64 loop: row and
// column counts that are not multiples of the kernel's 4 rows / 8 lanes, with and without bias,
// on one thread and split over threads (work above the fork threshold), and M = 5 (SGEMM) as
// the same check of the other path.
#include "lrnn/threads.h"
#include "ops/dense/dense.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace lrnn::ops {
namespace {

tensor random_tensor(const shape_t& shape, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  tensor t = tensor::empty(shape, dtype::f32).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

TEST(dense_gemv, small_m_matches_f64_loop) {
  std::mt19937 rng(7);
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int64_t M : {1, 2, 3, 4, 5})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 64}, {301, 257}, {1030, 96}})
        for (bool bias : {false, true}) {
          const tensor x = random_tensor({M, in}, rng), w = random_tensor({out, in}, rng);
          const tensor b = bias ? random_tensor({out}, rng) : tensor();
          auto y = linear(x, w, b);
          ASSERT_TRUE(y.ok()) << y.error().message();
          ASSERT_EQ(y->shape(), (shape_t{M, out}));
          double worst = 0;
          for (int64_t m = 0; m < M; ++m)
            for (int64_t o = 0; o < out; ++o) {
              double s = bias ? b.data<float>()[o] : 0.0, mag = std::abs(s);
              for (int64_t i = 0; i < in; ++i) {
                const double p = static_cast<double>(x.data<float>()[m * in + i]) * w.data<float>()[o * in + i];
                s += p;
                mag += std::abs(p);
              }
              // f32 accumulation: error <= in * 2^-24 * sum |terms| (a loose bound that a
              // wrong element, row or missing bias exceeds by orders of magnitude).
              const double err = std::abs(y->data<float>()[m * out + o] - s);
              worst = std::max(worst, err / (static_cast<double>(in + 1) * 6e-8 * mag + 1e-30));
            }
          EXPECT_LE(worst, 1.0) << "M " << M << " out " << out << " in " << in << " bias " << bias << " threads " << threads;
        }
  }
  set_num_threads(saved);
}

}  // namespace
}  // namespace lrnn::ops
