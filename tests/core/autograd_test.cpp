// The autograd engine: recording only when needed, accumulation over several uses, reverse
// topological order through a diamond, graph release, no_grad, and error paths.
#include "lrnn/autograd.h"

#include <gtest/gtest.h>

namespace lrnn::ag {
namespace {

// y = a * b elementwise (f64), as a test op.
var mul(const var& a, const var& b) {
  tensor y = tensor::empty(a.shape(), dtype::f64).value();
  const int64_t n = y.numel();
  for (int64_t i = 0; i < n; ++i) y.data<double>()[i] = a.value().data<double>()[i] * b.value().data<double>()[i];
  tensor av = a.value(), bv = b.value();
  return make_result(y, {a, b}, [av, bv, n](const tensor& g) -> result<std::vector<tensor>> {
    tensor da = tensor::empty(av.shape(), dtype::f64).value(), db = tensor::empty(bv.shape(), dtype::f64).value();
    for (int64_t i = 0; i < n; ++i) {
      da.data<double>()[i] = g.data<double>()[i] * bv.data<double>()[i];
      db.data<double>()[i] = g.data<double>()[i] * av.data<double>()[i];
    }
    return std::vector<tensor>{da, db};
  }, "mul");
}

var sum(const var& a) {
  double s = 0;
  for (double x : a.value().to_doubles()) s += x;
  shape_t shp = a.shape();
  return make_result(tensor::from_doubles({s}, {1}, dtype::f64), {a}, [shp](const tensor& g) -> result<std::vector<tensor>> {
    return std::vector<tensor>{tensor::full(shp, g.at({0}), dtype::f64).value()};
  }, "sum");
}

TEST(Autograd, DiamondAccumulatesOverUses) {
  var x(tensor::from_doubles({1, 2, 3}, {3}, dtype::f64), true);
  var c(tensor::from_doubles({4, 5, 6}, {3}, dtype::f64), false);
  var y = mul(x, x);   // x^2
  var z = mul(y, c);   // c x^2
  var w = mul(z, x);   // c x^3
  var loss = sum(w);   // d/dx = 3 c x^2
  ASSERT_TRUE(backward(loss).ok());
  std::vector<double> g = x.grad().to_doubles();
  EXPECT_DOUBLE_EQ(g[0], 3 * 4 * 1.0);
  EXPECT_DOUBLE_EQ(g[1], 3 * 5 * 4.0);
  EXPECT_DOUBLE_EQ(g[2], 3 * 6 * 9.0);
  EXPECT_FALSE(c.grad().defined());
  // The graph is released: intermediate closures are gone.
  EXPECT_FALSE(static_cast<bool>(w.impl()->backward));
}

TEST(Autograd, GradientsAddUpOverBackwardCallsUntilZeroed) {
  var x(tensor::from_doubles({2}, {1}, dtype::f64), true);
  ASSERT_TRUE(backward(sum(mul(x, x))).ok());
  ASSERT_TRUE(backward(sum(mul(x, x))).ok());
  EXPECT_DOUBLE_EQ(x.grad().at({0}), 8.0);
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, ConstantsAndNoGradRecordNothing) {
  var a(tensor::from_doubles({1, 2}, {2}, dtype::f64), false);
  var r = mul(a, a);
  EXPECT_FALSE(r.requires_grad());
  EXPECT_TRUE(r.impl()->inputs.empty());
  var p(tensor::from_doubles({1, 2}, {2}, dtype::f64), true);
  {
    no_grad_guard ng;
    EXPECT_FALSE(grad_enabled());
    EXPECT_FALSE(mul(p, p).requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE(mul(p, p).requires_grad());
}

TEST(Autograd, ErrorsAreStatusesNotCrashes) {
  var a(tensor::from_doubles({1, 2}, {2}, dtype::f64), false);
  status s = backward(sum(a));
  EXPECT_EQ(s.code(), status_code::invalid_argument);
  var p(tensor::from_doubles({1, 2}, {2}, dtype::f64), true);
  s = backward(mul(p, p));  // not a scalar
  EXPECT_EQ(s.code(), status_code::invalid_argument);
  EXPECT_NE(s.message().find("one element"), std::string::npos);
  // A backward closure returning the wrong number of gradients is reported.
  var bad = make_result(tensor::from_doubles({1}, {1}, dtype::f64), {p},
                        [](const tensor&) -> result<std::vector<tensor>> { return std::vector<tensor>{}; }, "bad_op");
  s = backward(bad);
  EXPECT_EQ(s.code(), status_code::internal);
  EXPECT_NE(s.message().find("bad_op"), std::string::npos);
}

}  // namespace
}  // namespace lrnn::ag
