// Tensor views, copies, conversions, poisoning; dtype conversions; status plumbing.
#include "lrnn/tensor.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lrnn {
namespace {

TEST(dtype, f16_round_trips_every_bit_pattern) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = f16::to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16::to_float(f16::from_float(f))));
      continue;
    }
    ASSERT_EQ(f16::from_float(f), b) << "bits " << b << " value " << f;
  }
}

TEST(dtype, f16_rounds_to_nearest_even_and_saturates) {
  EXPECT_EQ(f16::to_float(f16::from_float(1.0f + 1.0f / 2048)), 1.0f);  // tie -> even
  EXPECT_EQ(f16::to_float(f16::from_float(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_TRUE(std::isinf(f16::to_float(f16::from_float(70000.0f))));
  EXPECT_EQ(f16::to_float(f16::from_float(65504.0f)), 65504.0f);
  EXPECT_EQ(f16::to_float(f16::from_float(1e-9f)), 0.0f);
  EXPECT_EQ(f16::to_float(f16::from_float(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
}

TEST(dtype, bf16_round_trips_and_rounds) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16::to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(bf16::from_float(f), b);
  }
  EXPECT_EQ(bf16::to_float(bf16::from_float(1.0f + 1.0f / 256)), 1.0f);  // tie -> even
  EXPECT_TRUE(std::isnan(bf16::to_float(bf16::from_float(std::nanf("")))));
}

TEST(dtype, names_round_trip) {
  for (dtype t : all_dtypes) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
    EXPECT_EQ(dtype_from_safetensors(safetensors_dtype_name(t)), t);
  }
  EXPECT_FALSE(dtype_from_safetensors("F8_E4M3").has_value());
}

TEST(tensor, fresh_buffers_are_poisoned) {
  auto t = tensor::empty({3, 5}, dtype::f32).value();
  for (double v : t.to_doubles()) EXPECT_TRUE(std::isnan(v));
  auto b = tensor::empty({4}, dtype::bf16).value();
  for (double v : b.to_doubles()) EXPECT_TRUE(std::isnan(v));
  auto z = tensor::zeros({4}, dtype::f16).value();
  for (double v : z.to_doubles()) EXPECT_EQ(v, 0.0);
}

TEST(tensor, views_share_storage_and_index_correctly) {
  std::vector<double> v(24);
  for (int i = 0; i < 24; ++i) v[i] = i;
  tensor t = tensor::from_doubles(v, {2, 3, 4}, dtype::f32);
  EXPECT_TRUE(t.is_contiguous());
  tensor tr = t.transpose(0, 2).value();  // [4, 3, 2]
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(tr.at({3, 1, 1}), t.at({1, 1, 3}));
  tensor sl = t.slice(2, 1, 3).value();  // [2, 3, 2]
  EXPECT_EQ(sl.at({1, 2, 0}), 1 * 12 + 2 * 4 + 1);
  tensor se = t.select(1, 2).value();  // [2, 4]
  EXPECT_EQ(se.shape(), (shape_t{2, 4}));
  EXPECT_EQ(se.at({1, 3}), 12 + 8 + 3);
  se.set({0, 0}, -7);
  EXPECT_EQ(t.at({0, 2, 0}), -7);  // shared storage
  tensor c = tr.contiguous().value();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_doubles(), tr.to_doubles());
  tensor p = t.permute({2, 0, 1}).value();
  EXPECT_EQ(p.shape(), (shape_t{4, 2, 3}));
  EXPECT_EQ(p.at({3, 1, 2}), t.at({1, 2, 3}));
  EXPECT_EQ(t.view({-1, 4}).value().shape(), (shape_t{6, 4}));
  EXPECT_FALSE(tr.view({24}).ok());
  EXPECT_EQ(tr.reshape({24}).value().to_doubles(), c.to_doubles());
  EXPECT_EQ(t.unsqueeze(1).value().shape(), (shape_t{2, 1, 3, 4}));
}

TEST(tensor, bad_view_arguments_are_errors_not_crashes) {
  tensor t = tensor::zeros({2, 3}, dtype::f32).value();
  EXPECT_EQ(t.slice(0, 1, 5).get_status().code(), status_code::invalid_argument);
  EXPECT_FALSE(t.select(3, 0).ok());
  EXPECT_FALSE(t.select(1, 3).ok());
  EXPECT_FALSE(t.permute({0, 0}).ok());
  EXPECT_FALSE(t.view({4, 2}).ok());
  EXPECT_FALSE(t.view({-1, -1}).ok());
  EXPECT_FALSE(tensor::empty({-1, 2}, dtype::f32).ok());
  EXPECT_FALSE(tensor::empty({int64_t(1) << 40, int64_t(1) << 40}, dtype::f32).ok());
  auto none = tensor::empty({int64_t(1) << 62, 0}, dtype::f32);  // no elements: fine
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->numel(), 0);
  EXPECT_TRUE(none->to_doubles().empty());
}

TEST(tensor, dtype_conversion_and_copies) {
  tensor t = tensor::from_doubles({1.5, -2.25, 3.0, 1e30}, {2, 2}, dtype::f64);
  tensor h = t.to(dtype::f16).value();
  EXPECT_EQ(h.at({0, 1}), -2.25);
  EXPECT_TRUE(std::isinf(h.at({1, 1})));
  tensor b = t.to(dtype::bf16).value();
  EXPECT_NEAR(b.at({1, 1}), 1e30, 1e28);
  tensor i = t.to(dtype::i32).value();
  EXPECT_EQ(i.at({0, 0}), 1);
  tensor dst = tensor::empty({2, 2}, dtype::f32).value();
  ASSERT_TRUE(dst.copy_from(t.transpose(0, 1).value()).ok());
  EXPECT_EQ(dst.at({0, 1}), 3.0);
  EXPECT_FALSE(dst.copy_from(tensor::zeros({3}, dtype::f32).value()).ok());
  tensor f = tensor::full({3}, 2.5, dtype::bf16).value();
  EXPECT_EQ(f.to_doubles(), (std::vector<double>{2.5, 2.5, 2.5}));
  EXPECT_LE(max_abs_diff(t, t.to(dtype::f32).value()), 1e30 * 6e-8);  // f32 rounding of 1e30
  EXPECT_EQ(max_abs_diff(t.slice(0, 0, 1).value(), t.to(dtype::f32).value().slice(0, 0, 1).value()), 0.0);
}

TEST(tensor, cuda_is_a_clear_error_without_cuda) {
  if (cuda_built()) GTEST_SKIP() << "CUDA build";
  auto r = tensor::empty({2}, dtype::f32, device::cuda());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), status_code::unsupported);
  EXPECT_NE(r.error().message().find("without CUDA"), std::string::npos);
}

TEST(status, try_and_assign_macros_propagate) {
  auto inner = [](bool fail) -> result<int> {
    if (fail) return make_error(status_code::not_found, "missing {}", "x");
    return 7;
  };
  auto outer = [&](bool fail) -> result<int> {
    LRNN_ASSIGN_OR_RETURN(int v, inner(fail));
    return v + 1;
  };
  EXPECT_EQ(outer(false).value(), 8);
  EXPECT_EQ(outer(true).error().message(), "missing x");
  EXPECT_EQ(status(status_code::io_error, "x").with_context("reading f").message(), "reading f: x");
}

}  // namespace
}  // namespace lrnn
