// The AVX2 + FMA builds of the channel-wise kernels (wkv4, linear_scan, conv1d; backend/cpu/simd.h)
// against their baseline builds: every form, forward and backward, outputs, states and gradients,
// on channel counts that leave vector tails. The two builds differ only where the compiler fuses
// a multiply and an add (FMA), so the bound is a few ulp of the data's scale.
#include "backend/cpu/simd.h"
#include "ops/conv1d/conv1d.h"
#include "ops/linear_scan/linear_scan.h"
#include "ops/wkv4/wkv4.h"
#include "support/op_harness.h"

#include <cmath>
#include <functional>

namespace lrnn::testing {
namespace {

using namespace lrnn::ops;

tensor f32(const tensor& t) { return t.defined() ? t.to(dtype::f32).value() : t; }

// Runs `run` on the baseline path and on the AVX2 path; compares every tensor it returns.
void compare_paths(const char* what, const std::function<std::vector<tensor>()>& run, double rel = 2e-5) {
  if (!cpu::cpu_has_avx2_fma()) GTEST_SKIP() << "this CPU has no AVX2 + FMA";
  cpu::force_baseline(true);
  ASSERT_STREQ(cpu::simd_path_name(), "baseline");
  const auto base = run();
  cpu::force_baseline(false);
  ASSERT_STREQ(cpu::simd_path_name(), "avx2+fma");
  const auto avx2 = run();
  ASSERT_EQ(base.size(), avx2.size());
  for (size_t i = 0; i < base.size(); ++i) {
    ASSERT_EQ(base[i].defined(), avx2[i].defined()) << what << " tensor " << i;
    if (!base[i].defined()) continue;
    double scale = 0;
    for (double x : base[i].to_doubles()) {
      ASSERT_TRUE(std::isfinite(x)) << what << " tensor " << i;
      scale = std::max(scale, std::fabs(x));
    }
    EXPECT_LE(max_abs_diff(base[i], avx2[i]), rel * (1 + scale)) << what << " tensor " << i << " (max |x| " << scale << ")";
  }
}

constexpr int64_t B = 2, T = 70, C = 203;  // 203 = 25 * 8 + 3: vector tails for 4 and 8 lanes

TEST(channel_simd, wkv4_avx2_equals_baseline) {
  wkv4_inputs in{f32(random_normal({B, T, C}, 1, 2.0)), f32(random_normal({B, T, C}, 2)), f32(random_uniform({C}, 3, -3, 1)),
                 f32(random_uniform({C}, 4, -1, 1)), tensor()};
  const tensor dy = f32(random_normal({B, T, C}, 5));
  auto s0 = wkv4_zero_state(B, C).value();
  for (auto form : {wkv4_form::recurrent, wkv4_form::chunk})
    compare_paths(wkv4_form_name(form), [&] {
      auto out = wkv4_forward(in, s0, form).value();
      auto g = wkv4_backward(in, s0, dy, out.final_state, form).value();
      return std::vector<tensor>{out.y, out.final_state.a, out.final_state.b, out.final_state.p, g.dk, g.dv, g.dtime_decay,
                                 g.dtime_first, g.d_initial_state.a, g.d_initial_state.b, g.d_initial_state.p};
    });
}

TEST(channel_simd, linear_scan_avx2_equals_baseline) {
  for (auto gate : {scan_gate::rg_lru, scan_gate::log_a}) {
    linear_scan_spec spec;
    spec.gate = gate;
    linear_scan_inputs in;
    in.x = f32(random_normal({B, T, C}, 1));
    if (gate == scan_gate::rg_lru) {
      in.gate_x = f32(random_normal({B, T, C}, 2, 2.0));
      in.gate_a = f32(random_normal({B, T, C}, 3, 2.0));
      in.a_param = f32(random_uniform({C}, 4, -2, 4));
    } else {
      in.log_a = f32(random_uniform({B, T, C}, 2, -2, 0));
    }
    const tensor h0 = f32(random_normal({B, C}, 6)), dy = f32(random_normal({B, T, C}, 5)), dh = f32(random_normal({B, C}, 7));
    for (auto form : {linear_scan_form::recurrent, linear_scan_form::scan})
      compare_paths(linear_scan_form_name(form), [&] {
        auto out = linear_scan_forward(spec, in, h0, form).value();
        auto g = linear_scan_backward(spec, in, h0, dy, dh, form).value();
        return std::vector<tensor>{out.y, out.final_state, g.dx, g.dlog_a, g.dgate_x, g.dgate_a, g.da_param, g.d_initial_state};
      });
  }
}

TEST(channel_simd, conv1d_avx2_equals_baseline) {
  for (auto act : {conv1d_activation::none, conv1d_activation::silu}) {
    conv1d_spec spec;
    spec.activation = act;
    const conv1d_inputs in{f32(random_normal({B, T, C}, 1)), f32(random_normal({4, C}, 2)), f32(random_normal({C}, 3)), tensor(),
                           tensor()};
    const tensor cache = f32(random_normal({B, 3, C}, 4)), dy = f32(random_normal({B, T, C}, 5)),
                 dcache = f32(random_normal({B, 3, C}, 6));
    compare_paths(act == conv1d_activation::silu ? "silu" : "none", [&] {
      auto out = conv1d_forward(spec, in, cache, conv1d_form::cpu).value();
      auto g = conv1d_backward(spec, in, cache, dy, dcache, conv1d_form::cpu).value();
      return std::vector<tensor>{out.y, out.final_cache, g.dx, g.dweight, g.dbias, g.d_cache};
    });
  }
}

}  // namespace
}  // namespace lrnn::testing
