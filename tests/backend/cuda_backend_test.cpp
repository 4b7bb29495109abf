// CUDA backend on a GPU machine (skipped where no device is visible): the caching allocator's
// reuse and statistics, streams, checked calls naming the failed call, cuBLAS linear vs the CPU.
#include "backend/cuda/cuda_backend.h"
#include "lrnn/tensor.h"
#include "ops/dense/dense.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#ifdef LRNN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace lrnn {
namespace {

#define LRNN_REQUIRE_CUDA() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"

TEST(cuda_allocator, size_classes) {
  if (!cuda_built()) GTEST_SKIP() << "built without CUDA";
  EXPECT_EQ(cuda::size_class(1), 512u);
  EXPECT_EQ(cuda::size_class(512), 512u);
  EXPECT_EQ(cuda::size_class(513), 1024u);
  EXPECT_EQ(cuda::size_class(size_t(1) << 20), size_t(1) << 20);
  EXPECT_EQ(cuda::size_class((size_t(1) << 20) + 1), (size_t(5) << 18));
  for (size_t n : {size_t(3) << 20, size_t(100) << 20, (size_t(1) << 30) + 7}) {
    EXPECT_GE(cuda::size_class(n), n);
    EXPECT_LE(cuda::size_class(n), n + n / 4 + 1);
  }
}

TEST(cuda_allocator, freed_blocks_are_reused_and_counted) {
  LRNN_REQUIRE_CUDA();
  cuda::trim(0);
  const auto s0 = cuda::get_allocator_stats(0);
  EXPECT_EQ(s0.bytes_cached, 0u);
  const size_t nbytes = (size_t(3) << 20) + 100;
  const size_t cls = cuda::size_class(nbytes);
  void* first = nullptr;
  {
    auto st = allocate_storage(nbytes, device::cuda()).value();
    first = st->data();
    const auto s1 = cuda::get_allocator_stats(0);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use + cls);
    EXPECT_EQ(s1.num_cuda_malloc, s0.num_cuda_malloc + 1);
    EXPECT_GE(s1.peak_bytes_in_use, s1.bytes_in_use);
  }
  const auto s2 = cuda::get_allocator_stats(0);
  EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
  EXPECT_EQ(s2.bytes_cached, cls);
  {
    auto st = allocate_storage(nbytes - 50, device::cuda()).value();  // same class: the same block
    EXPECT_EQ(st->data(), first);
    const auto s3 = cuda::get_allocator_stats(0);
    EXPECT_EQ(s3.num_cuda_malloc, s2.num_cuda_malloc);
    EXPECT_EQ(s3.num_reused, s2.num_reused + 1);
    EXPECT_EQ(s3.bytes_cached, 0u);
  }
  EXPECT_EQ(cuda::trim(0), cls);
  const auto s4 = cuda::get_allocator_stats(0);
  EXPECT_EQ(s4.bytes_cached, 0u);
  EXPECT_EQ(s4.bytes_reserved, s4.bytes_in_use);
  EXPECT_GE(s4.num_cuda_free, s0.num_cuda_free + 1);
}

TEST(cuda_allocator, tensors_through_the_cache_keep_their_values) {
  LRNN_REQUIRE_CUDA();
  for (int round = 0; round < 3; ++round) {
    std::vector<double> v(1000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5 - round;
    tensor d = tensor::from_doubles(v, {10, 100}, dtype::f32).to(device::cuda()).value();
    EXPECT_EQ(d.to(device::cpu()).value().to_doubles(), v);
  }
}

TEST(cuda_allocator, out_of_memory_is_a_status) {
  LRNN_REQUIRE_CUDA();
  auto r = allocate_storage(size_t(1) << 50, device::cuda());  // 1 PiB
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), status_code::out_of_memory) << r.error().message();
  EXPECT_NE(r.error().message().find("cudaMalloc"), std::string::npos) << r.error().message();
  // The device still works.
  tensor z = tensor::zeros({4}, dtype::f32, device::cuda()).value();
  EXPECT_EQ(z.to(device::cpu()).value().to_doubles(), (std::vector<double>{0, 0, 0, 0}));
}

TEST(cuda_check, failed_copy_names_the_call_device_and_line) {
  LRNN_REQUIRE_CUDA();
  tensor d = tensor::zeros({16}, dtype::f32, device::cuda()).value();
  status s = cuda::memcpy(d.raw_data(), nullptr, 64, cuda::copy_kind::host_to_device);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cudaMemcpyAsync"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("device 0"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cuda_backend.cpp:"), std::string::npos) << s.message();
  // Not sticky: later calls succeed.
  tensor h = tensor::from_doubles({1, 2, 3, 4}, {4}, dtype::f32);
  EXPECT_EQ(h.to(device::cuda()).value().to(device::cpu()).value().to_doubles(), h.to_doubles());
}

#ifdef LRNN_WITH_CUDA
TEST(cuda_stream, work_follows_the_current_stream) {
  LRNN_REQUIRE_CUDA();
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  cuda::set_current_stream(0, s);
  EXPECT_EQ(cuda::current_stream(0), static_cast<void*>(s));
  const auto before = cuda::get_allocator_stats(0);
  {
    tensor h = tensor::from_doubles({1, 2, 3, 4, 5, 6}, {2, 3}, dtype::f32);
    tensor w = tensor::from_doubles({1, 0, 0, 0, 1, 0}, {2, 3}, dtype::f32);
    auto y = ops::linear(h.to(device::cuda()).value(), w.to(device::cuda()).value());
    ASSERT_TRUE(y.ok()) << y.error().message();
    EXPECT_EQ(y->to(device::cpu()).value().to_doubles(), (std::vector<double>{1, 2, 4, 5}));
  }
  EXPECT_TRUE(cuda::synchronize(0).ok());
  EXPECT_GT(cuda::get_allocator_stats(0).bytes_cached, before.bytes_cached);  // freed onto s's list
  cuda::set_current_stream(0, nullptr);
  EXPECT_EQ(cuda::current_stream(0), nullptr);
  cuda::trim(0);
  cudaStreamDestroy(s);
}
#endif

// cuBLAS linear vs the CPU SGEMM on the same (rounded) values.
void check_linear(dtype t, int64_t M, int64_t in, int64_t out, bool bias, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  auto rnd = [&](const shape_t& s) {
    std::vector<double> v(static_cast<size_t>(shape_numel(s)));
    for (double& x : v) x = nd(rng);
    return tensor::from_doubles(v, s, t);  // rounded to t
  };
  tensor x = rnd({M / 4, 4, in}), w = rnd({out, in}), b = bias ? rnd({out}) : tensor();
  tensor y_ref = ops::linear(x.to(dtype::f32).value(), w.to(dtype::f32).value(), bias ? b.to(dtype::f32).value() : tensor()).value();
  auto yr = ops::linear(x.to(device::cuda()).value(), w.to(device::cuda()).value(),
                        bias ? b.to(device::cuda()).value() : tensor());
  ASSERT_TRUE(yr.ok()) << yr.error().message();
  const tensor y = *yr;
  ASSERT_EQ(y.type(), t);
  ASSERT_EQ(y.shape(), y_ref.shape());
  const tensor yh = y.to(device::cpu()).value();
  double max_ref = 0, max_err = 0;
  const auto a = yh.to_doubles(), r = y_ref.to_doubles();
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_FALSE(std::isnan(a[i])) << "element " << i;
    max_ref = std::max(max_ref, std::fabs(r[i]));
    max_err = std::max(max_err, std::fabs(a[i] - r[i]));
  }
  // The output rounding of the dtype dominates: 2^-8 (bf16), 2^-11 (f16) of the largest value.
  const double tol = t == dtype::f32 ? 1e-5 : t == dtype::bf16 ? 8e-3 : 1e-3;
  EXPECT_LE(max_err, tol * max_ref) << dtype_name(t) << " M=" << M << " in=" << in << " out=" << out;
}

TEST(cuda_linear, matches_cpu_in_f32_bf16_f16) {
  LRNN_REQUIRE_CUDA();
  for (dtype t : {dtype::f32, dtype::bf16, dtype::f16}) {
    check_linear(t, 12, 37, 29, true, 1);
    check_linear(t, 12, 37, 29, false, 2);
    check_linear(t, 256, 512, 384, true, 3);
  }
}

TEST(cuda_linear, bad_inputs_are_errors) {
  LRNN_REQUIRE_CUDA();
  tensor x = tensor::zeros({4, 8}, dtype::bf16, device::cuda()).value();
  tensor w32 = tensor::zeros({3, 8}, dtype::f32, device::cuda()).value();
  auto r = ops::linear(x, w32);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), status_code::invalid_argument);
  tensor w_bad = tensor::zeros({3, 7}, dtype::bf16, device::cuda()).value();
  EXPECT_FALSE(ops::linear(x, w_bad).ok());
  tensor w_cpu = tensor::zeros({3, 8}, dtype::bf16).value();
  EXPECT_FALSE(ops::linear(x, w_cpu).ok());
  tensor x64 = tensor::zeros({4, 8}, dtype::f64, device::cuda()).value();
  EXPECT_EQ(ops::linear(x64, w32).error().code(), status_code::unsupported);
}

}  // namespace
}  // namespace lrnn
