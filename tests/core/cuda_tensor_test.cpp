// CUDA tensors (run on a GPU machine; skipped where no device is visible): allocation,
// poisoning, host <-> device copies with dtype conversion, clear errors for bad devices.
#include "lrnn/tensor.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lrnn {
namespace {

#define LRNN_REQUIRE_CUDA() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

TEST(cuda_tensor, round_trip_and_conversion) {
  LRNN_REQUIRE_CUDA();
  std::vector<double> v = {1.0, -2.5, 3.25, 1e-3, 7.0, -0.5};
  tensor h = tensor::from_doubles(v, {2, 3}, dtype::f32);
  tensor d = h.to(device::cuda()).value();
  EXPECT_TRUE(d.dev().is_cuda());
  EXPECT_EQ(d.to(device::cpu()).value().to_doubles(), h.to_doubles());
  tensor db = d.to(dtype::bf16).value();  // converts through the host
  EXPECT_TRUE(db.dev().is_cuda());
  EXPECT_EQ(db.to(device::cpu()).value().to_doubles(), h.to(dtype::bf16).value().to_doubles());
  tensor t = h.transpose(0, 1).value().to(device::cuda()).value();  // non-contiguous source
  EXPECT_EQ(t.shape(), (shape_t{3, 2}));
  EXPECT_EQ(t.to(device::cpu()).value().at({1, 1}), 7.0);
  EXPECT_EQ(t.to(device::cpu()).value().at({2, 1}), -0.5);
  tensor c = d.clone().value();
  EXPECT_EQ(c.to(device::cpu()).value().to_doubles(), h.to_doubles());
}

TEST(cuda_tensor, poison_zeros_full) {
  LRNN_REQUIRE_CUDA();
  tensor e = tensor::empty({5}, dtype::f32, device::cuda()).value();
  for (double x : e.to(device::cpu()).value().to_doubles()) EXPECT_TRUE(std::isnan(x));
  tensor z = tensor::zeros({5}, dtype::bf16, device::cuda()).value();
  for (double x : z.to(device::cpu()).value().to_doubles()) EXPECT_EQ(x, 0.0);
  tensor f = tensor::full({3}, 1.5, dtype::f16, device::cuda()).value();
  EXPECT_EQ(f.to(device::cpu()).value().to_doubles(), (std::vector<double>{1.5, 1.5, 1.5}));
}

TEST(cuda_tensor, bad_device_index_is_an_error) {
  LRNN_REQUIRE_CUDA();
  auto r = tensor::empty({4}, dtype::f32, device::cuda(cuda_device_count() + 3));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("cudaSetDevice"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace lrnn
