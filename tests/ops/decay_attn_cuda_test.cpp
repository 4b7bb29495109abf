// decay_attn's CUDA chunk kernels (src/ops/decay_attn/cuda) through the op harness: CUDA tensors in
// ops::decay_attn_forward / decay_attn_backward against the CPU f64 reference, for outputs, final
// states and every gradient (q, k, v, g, i, u, initial state), in f32, bf16 and f16 (FlashAttention
// tolerance rule), every spec variant, odd T (1, 63, 65, 1000), K != V, head dims 64 and 128, log
// gates down to -50, packed varlen batches, initial state present and absent. Fresh buffers are
// NaN-poisoned (test_main.cpp), so an unwritten output element fails. Skipped without a GPU.
#include "backend/cuda/cuda_backend.h"
#include "ops/decay_attn/cuda/chunk_api.h"
#include "ops/decay_attn/cuda/chunk_tc.h"
#include "ops/decay_attn_test_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#ifdef LRNN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace lrnn::testing {
namespace {

using da::variant;

op_family cuda_family() {
  using F = ops::decay_attn_form;
  op_family f;
  f.name = "decay_attn";
  f.reference = da::make_variant(F::reference, {dtype::f64, dtype::f32, dtype::bf16, dtype::f16});
  op_variant v = da::make_variant(F::chunk, {dtype::f32, dtype::bf16, dtype::f16});
  v.backend = device_kind::cuda;
  f.variants = {v};
  for (const char* n : {"g", "i", "u", "s0", "n0", "m0"}) f.policies[n] = input_policy::f32_min;
  f.policies["cu_seqlens"] = input_policy::fixed;
  return f;
}

// mLSTM (exponential gate) in f32, whose gradients reach |x| ~ 1e3 through 1 / den: the fp32
// kernels' dq, dk, dg, di carry up to 3.8x the naive f32 reference's error at K = V = 128 (T = 200:
// dq 6.8e-2 vs naive 1.8e-2, max |dq| 1.4e3, device run of 2026-12-06), 1.4x the 2 x naive + atol
// bound; atol x4 (1e-5 -> 4e-5 of max |x|). bf16 / f16 need no allowance, nor does d m0 since the
// stabiliser's gradient is formed per token (it needed x8 before).
op_case mlstm_atol(variant v, op_case c) {
  if (v == variant::mlstm) c.atol_scale = 4;
  return c;
}

// An environment variable (the kernels' LRNN_DA_* switches) set for a scope: what was there before
// comes back after it, also when an assertion leaves the test early (a whole suite may run under
// LRNN_DA_SEGMENTS or LRNN_DA_WG).
struct env_scope {
  std::string name, old;
  bool had;
  env_scope(const char* n, const char* v) : name(n), had(std::getenv(n) != nullptr) {
    if (had) old = std::getenv(n);
    if (v) setenv(n, v, 1);
    else unsetenv(n);  // (null: unset for the scope)
  }
  ~env_scope() {
    if (had) setenv(name.c_str(), old.c_str(), 1);
    else unsetenv(name.c_str());
  }
};

op_case sized(variant v, int64_t B, int64_t T, int64_t K, int64_t V, bool init, double gmax = 1.0, int64_t H = 2) {
  da::case_opts o;
  o.B = B, o.T = T, o.H = H, o.K = K, o.V = V, o.init = init, o.gmax = gmax;
  return mlstm_atol(v, da::make_case(v, o));
}

// A packed batch (cu_seqlens), with sized()'s tolerance.
op_case varlen(variant v, const std::vector<int32_t>& cu, int64_t K = 32, int64_t V = 24) {
  return mlstm_atol(v, da::varlen_case(v, cu, K, V));
}

// A case's inputs on the GPU: q, k, v in dtype t, gates and states in f32.
named_tensors on_cuda(const op_case& c, dtype t) {
  named_tensors in;
  for (const auto& [n, x] : c.inputs) {
    const bool act = n == "q" || n == "k" || n == "v";
    in.emplace_back(n, x.to(act ? t : dtype::f32).value().to(device::cuda()).value());
  }
  return in;
}

// A case on the GPU for the tests that call the op directly: its params, inputs (q, k, v in dtype t,
// gates and states in f32), initial state, and an upstream gradient d_o = v (in t).
struct gpu_case {
  da::params p;
  named_tensors in;
  ops::decay_attn_inputs x;
  ops::decay_attn_state init;
  tensor d_o;
};
gpu_case gpu_case_of(const op_case& c, dtype t) {
  gpu_case g;
  g.p = std::any_cast<da::params>(c.params);
  g.in = on_cuda(c, t);
  g.x = da::inputs_of(g.in);
  g.init = da::state_of(g.in, "s0", "n0", "m0");
  g.d_o = g.x.v.to(dtype::f32).value().to(t).value();
  return g;
}

// The gradients of two backward calls side by side, by name (a part the spec has not is undefined
// in both: callers skip it).
using grad_pairs = std::vector<std::pair<const char*, std::pair<tensor, tensor>>>;
grad_pairs pairs_of(const ops::decay_attn_grads& a, const ops::decay_attn_grads& b) {
  return {{"dq", {a.dq, b.dq}}, {"dk", {a.dk, b.dk}}, {"dv", {a.dv, b.dv}}, {"dg", {a.dg, b.dg}}, {"di", {a.di, b.di}},
          {"ds0", {a.d_initial_state.s, b.d_initial_state.s}}, {"dn0", {a.d_initial_state.n, b.d_initial_state.n}}};
}

double max_abs(const tensor& t) {
  double m = 0;
  for (double v : t.to(device::cpu()).value().to_doubles()) m = std::max(m, std::fabs(v));
  return m;
}

#define DA_CUDA_CASE(suite, name, case_expr)                                              \
  TEST(suite, name) {                                                                     \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";                      \
    const auto rep = ::lrnn::testing::run_op_case(cuda_family(), (case_expr));            \
    EXPECT_TRUE(rep.pass()) << rep.summary();                                             \
    if (::lrnn::testing::harness_verbose()) std::printf("%s", rep.summary().c_str());     \
  }

#define DA_CUDA_CASES(V)                                                                                        \
  DA_CUDA_CASE(decay_attn_cuda_##V, t1_k64_v64, sized(variant::V, 2, 1, 64, 64, false))                        \
  DA_CUDA_CASE(decay_attn_cuda_##V, t63_init_k64_v128, sized(variant::V, 1, 63, 64, 128, true))               \
  DA_CUDA_CASE(decay_attn_cuda_##V, t65_k128_v64, sized(variant::V, 2, 65, 128, 64, false))                   \
  DA_CUDA_CASE(decay_attn_cuda_##V, t200_init_k128_v128, sized(variant::V, 1, 200, 128, 128, true, 1.0, 2))   \
  DA_CUDA_CASE(decay_attn_cuda_##V, t1000_init_k64_v64, sized(variant::V, 1, 1000, 64, 64, true, 0.2, 1))     \
  DA_CUDA_CASE(decay_attn_cuda_##V, strong_t130_init, sized(variant::V, 1, 130, 64, 64, true, 50.0, 2))       \
  DA_CUDA_CASE(decay_attn_cuda_##V, odd_dims_t37_k40_v24, sized(variant::V, 2, 37, 40, 24, true, 1.0, 3))     \
  DA_CUDA_CASE(decay_attn_cuda_##V, varlen, varlen(variant::V, {0, 1, 64, 64, 130, 200}))                       \
  DA_CUDA_CASE(decay_attn_cuda_##V, varlen_k64_v64, varlen(variant::V, {0, 1, 64, 64, 130, 200}, 64, 64))

DA_CUDA_CASES(retnet)
DA_CUDA_CASES(simple_gla)
DA_CUDA_CASES(gla)
DA_CUDA_CASES(rwkv6)
DA_CUDA_CASES(mlstm)
DA_CUDA_CASES(mlstm_sig)

// Per-key gates (GLA, RWKV-6 with its bonus) on the tensor-core kernels beyond DA_CUDA_CASES' shapes:
// several V tiles (dq, dk and dP's diagonal blocks summed over the tiles), V tile 64 (V = 192), strong
// decay at K = V = 128 over several chunks, decay where about half the 16-row blocks have a key whose
// log decay over the block passes -60 (key_prep / key_post's exact path there, the factored one
// elsewhere: log gates uniform in [-5.5, 0] sum to -44 +- 6.4 over 16 rows), a packed batch with head
// dims 128.
TEST(decay_attn_cuda, per_key) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (variant v : {variant::gla, variant::rwkv6}) {
    for (const op_case& c : {sized(v, 1, 300, 64, 256, true, 1.0, 2), sized(v, 2, 200, 128, 192, false, 1.0, 1),
                             sized(v, 1, 300, 128, 128, true, 50.0, 2), sized(v, 1, 300, 128, 128, true, 5.5, 2),
                             varlen(v, {0, 1, 64, 64, 130, 200}, 128, 128)}) {
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << da::variant_name(v) << " " << c.name << ": " << rep.summary();
    }
  }
}

// The scalar decay's gradient scan by blocks of tokens with all heads in one CTA (256 threads: H up to
// 256, H = 3 leaves threads idle) and, past 256 heads, by one CTA per sequence and head; a sequence
// longer than a scan block (256 tokens) among them.
TEST(decay_attn_cuda, scalar_gate_scan_heads) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (variant v : {variant::simple_gla, variant::mlstm}) {
    for (const op_case& c : {sized(v, 2, 300, 16, 16, true, 1.0, 3), sized(v, 1, 40, 16, 16, true, 1.0, 256),
                             sized(v, 2, 300, 16, 16, true, 1.0, 257)}) {
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << da::variant_name(v) << " " << c.name << ": " << rep.summary();
    }
  }
}

// The tensor-core kernels' two-level split of long sequences (forced: 3 segments per sequence, so
// that segment boundaries, empty trailing segments and empty sequences all occur), mLSTM's
// normaliser state among them.
TEST(decay_attn_cuda, segments) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  // (LRNN_TEST_SEGMENTS replaces the 3, e.g. 1 to see the same cases without segments.)
  const char* segs = std::getenv("LRNN_TEST_SEGMENTS");
  const env_scope seg_env("LRNN_DA_SEGMENTS", segs ? segs : "3");
  for (variant v : {variant::retnet, variant::simple_gla, variant::gla, variant::rwkv6, variant::mlstm, variant::mlstm_sig}) {
    for (const op_case& c : {sized(v, 2, 1000, 64, 64, true, 0.2, 2), sized(v, 1, 700, 128, 128, true, 1.0, 2),
                             sized(v, 2, 190, 64, 64, true, 0.2, 2), varlen(v, {0, 1, 64, 64, 130, 200}, 64, 64),
                             varlen(v, {0, 700, 700, 1000}, 128, 64)}) {
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << da::variant_name(v) << " " << c.name << ": " << rep.summary();
    }
  }
}

// The tensor-core kernels with several V tiles, where dq and dk are sums over the tiles (added in
// fp32, converted by finish_backward): V = 256 (two tiles of 128) and V = 192 (three of 64), also
// split into segments.
TEST(decay_attn_cuda, v_tiles) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* segs : {"1", "3"}) {
    const env_scope seg_env("LRNN_DA_SEGMENTS", segs);
    for (variant v : {variant::retnet, variant::simple_gla, variant::gla, variant::rwkv6, variant::mlstm, variant::mlstm_sig}) {
      for (const op_case& c : {sized(v, 1, 300, 64, 256, true, 1.0, 2), sized(v, 2, 200, 128, 192, false, 1.0, 1)}) {
        const auto rep = run_op_case(cuda_family(), c);
        EXPECT_TRUE(rep.pass()) << "segments " << segs << " " << da::variant_name(v) << " " << c.name << ": " << rep.summary();
      }
    }
  }
}

// The scalar-decay forward has two kernels on Hopper: the wgmma one (tc_fwd_wg, the default there;
// LRNN_DA_WG=1 with the threads' stores of O; 2, the default: TMA stores of whole chunks at K = 128)
// and the mma.sync one (every other GPU; LRNN_DA_WG=0 on Hopper): each against the reference, with
// K = 64 and 128, two V tiles of 128 (mLSTM: its unfused normaliser), an initial state, odd lengths, a
// packed batch and forced segments (elsewhere in the suite only the default kernel runs; the segments
// also run the forward-direction segment pass, on wgmma where the forward is). The launch counts show
// which kernel ran: where tc_fwd_wg can run, LRNN_DA_WG=1 / 2 must not fall back.
TEST(decay_attn_cuda, forward_kernels) {
#ifndef LRNN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const bool wg = ops::cuda_chunk::tc_forward_wg_available();
  for (const char* wgv : {"0", "1", "2"}) {
    const env_scope wg_env("LRNN_DA_WG", wgv);
    // (LRNN_DA_WG=2 also runs the reverse segment pass on wgmma: LRNN_DA_SEG_WG=2)
    const env_scope seg_wg_env("LRNN_DA_SEG_WG", wgv[0] == '2' ? "2" : "1");
    int64_t before[ops::cuda_chunk::kLaunchKinds], after[ops::cuda_chunk::kLaunchKinds];
    ops::cuda_chunk::tc_forward_launches(before);
    for (const char* segs : {"1", "3"}) {
      const env_scope seg_env("LRNN_DA_SEGMENTS", segs);
      for (variant v : {variant::retnet, variant::simple_gla, variant::mlstm, variant::mlstm_sig}) {
        for (const op_case& c : {sized(v, 2, 300, 128, 128, true, 1.0, 2), sized(v, 1, 129, 64, 128, false, 0.2, 3),
                                 sized(v, 1, 257, 64, 256, true, 1.0, 1), varlen(v, {0, 1, 64, 64, 130, 200}, 128, 128)}) {
          const auto rep = run_op_case(cuda_family(), c);
          EXPECT_TRUE(rep.pass()) << "LRNN_DA_WG=" << wgv << " segments " << segs << " " << da::variant_name(v) << " " << c.name
                                  << ": " << rep.summary();
        }
      }
    }
    ops::cuda_chunk::tc_forward_launches(after);
    const int64_t mma = after[0] - before[0], wg1 = after[1] - before[1], wg2 = after[2] - before[2];
    const int64_t seg_wg = after[4] - before[4], rev_wg = after[6] - before[6];  // (segment passes on wgmma)
    if (!wg || wgv[0] == '0') {
      EXPECT_GT(mma, 0) << "LRNN_DA_WG=" << wgv;
      EXPECT_EQ(wg1 + wg2 + seg_wg + rev_wg, 0) << "LRNN_DA_WG=" << wgv;
    } else {
      EXPECT_GT(seg_wg, 0) << "LRNN_DA_WG=" << wgv << ": the segment pass did not run on wgmma";
      if (wgv[0] == '2') EXPECT_GT(rev_wg, 0) << "the reverse segment pass did not run on wgmma (LRNN_DA_SEG_WG=2)";
      else EXPECT_EQ(rev_wg, 0) << "the reverse segment pass ran on wgmma without LRNN_DA_SEG_WG=2";
      EXPECT_EQ(mma, 0) << "LRNN_DA_WG=" << wgv << ": the wgmma forward fell back to the mma.sync one";
      EXPECT_GT(wg1, 0) << "LRNN_DA_WG=" << wgv << " (K = 64 and fp32 o' use the threads' stores)";
      if (wgv[0] == '2') EXPECT_GT(wg2, 0) << "no TMA stores of O with LRNN_DA_WG=2";
      else EXPECT_EQ(wg2, 0) << "TMA stores of O with LRNN_DA_WG=1";
    }
  }
#endif
}

// The scalar decays' per-token gate table (tc kernels, forward and backward; gate_table_rows, a warp per
// chunk and 16 heads): H = 2, 16, 17 cover a partial, a whole and a second partial head group; partial last
// chunks; a packed batch with empty and one-token sequences. The launch count shows that it ran.
TEST(decay_attn_cuda, gate_table) {
#ifndef LRNN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  int64_t before[ops::cuda_chunk::kLaunchKinds], after[ops::cuda_chunk::kLaunchKinds];
  ops::cuda_chunk::tc_forward_launches(before);
  for (variant v : {variant::retnet, variant::simple_gla, variant::mlstm, variant::mlstm_sig}) {
    for (const op_case& c : {sized(v, 2, 200, 64, 64, true, 1.0, 17), sized(v, 1, 129, 64, 64, false, 1.0, 16),
                             sized(v, 1, 33, 64, 64, true, 1.0, 2), varlen(v, {0, 1, 64, 64, 130, 200}, 64, 64)}) {
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << da::variant_name(v) << " " << c.name << ": " << rep.summary();
    }
  }
  ops::cuda_chunk::tc_forward_launches(after);
  EXPECT_GT(after[9] - before[9], 0) << "gate_table_rows did not run";
#endif
}

// The fused per-key forward (tc_key_wg: GLA's and RWKV-6's gates, bf16 / f16, K = V tile = 128, Hopper;
// LRNN_DA_KEY_WG=1 on, 0 off) against the reference (f32 takes the SIMT path): an initial state, odd lengths,
// a whole last chunk (TMA stores of O) and partial ones, two V tiles, a packed batch with empty and
// one-token sequences, strong decay (every 16-row block split: P's diagonal blocks from the pairwise
// sums) and log gates uniform in [-5.5, 0] (about half the blocks split), also with the threads' own
// stores of O (LRNN_DA_WG=1); and with forced segments (3 per sequence: the segment pass tc_seg_key_wg,
// empty trailing segments). The launch counts show which kernels ran.
TEST(decay_attn_cuda, key_forward_kernels) {
#ifndef LRNN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const bool wg = ops::cuda_chunk::tc_forward_wg_available();
  struct mode {
    const char *kw, *wgv, *segs, *var;
  };
  // (var: LRNN_DA_KW_VAR, tc_key_wg's register split (1) and overlap (2); bf16 has 0..3, f16 only the default;
  // null: unset)
  for (const mode& md : {mode{"1", "2", "1", nullptr}, mode{"1", "1", "1", nullptr}, mode{"0", "2", "1", nullptr},
                         mode{"1", "2", "3", nullptr}, mode{"1", "2", "1", "0"}, mode{"1", "2", "1", "1"}, mode{"1", "2", "1", "2"},
                         mode{"1", "2", "1", "3"}}) {
    const char *kw = md.kw, *wgv = md.wgv;
    const env_scope var_env("LRNN_DA_KW_VAR", md.var);
    const env_scope key_env("LRNN_DA_KEY_WG", kw);
    const env_scope wg_env("LRNN_DA_WG", wgv);
    const env_scope seg_env("LRNN_DA_SEGMENTS", md.segs);
    for (variant v : {variant::gla, variant::rwkv6}) {
      int64_t before[ops::cuda_chunk::kLaunchKinds], after[ops::cuda_chunk::kLaunchKinds];
      ops::cuda_chunk::tc_forward_launches(before);
      for (const op_case& c : {sized(v, 2, 300, 128, 128, true, 1.0, 2), sized(v, 1, 128, 128, 128, false, 1.0, 3),
                               sized(v, 1, 257, 128, 256, true, 1.0, 1), sized(v, 1, 300, 128, 128, true, 50.0, 2),
                               sized(v, 1, 300, 128, 128, true, 5.5, 2), varlen(v, {0, 1, 64, 64, 130, 200}, 128, 128)}) {
        const auto rep = run_op_case(cuda_family(), c);
        EXPECT_TRUE(rep.pass()) << "LRNN_DA_KEY_WG=" << kw << " LRNN_DA_WG=" << wgv << " LRNN_DA_KW_VAR=" << (md.var ? md.var : "(unset)") << " segments " << md.segs << " "
                                << da::variant_name(v) << " " << c.name << ": " << rep.summary();
      }
      ops::cuda_chunk::tc_forward_launches(after);
      const int64_t fused = after[7] - before[7], seg = after[8] - before[8];
      if (wg && kw[0] == '1') {
        EXPECT_GT(fused, 0) << da::variant_name(v) << " LRNN_DA_WG=" << wgv << ": tc_key_wg did not run";
        // (the cases run bf16 and f16: bf16 takes the variant asked for, f16 always the default)
        const int def = ops::cuda_chunk::kw_var_default(v == variant::rwkv6), var = md.var ? md.var[0] - '0' : def;
        EXPECT_GT(after[10 + var] - before[10 + var], 0) << da::variant_name(v) << ": tc_key_wg's variant " << var << " did not run";
        if (var != def) {
          EXPECT_GT(after[10 + def] - before[10 + def], 0) << da::variant_name(v) << ": f16 did not take variant " << def;
        }
        if (md.segs[0] == '3') EXPECT_GT(seg, 0) << da::variant_name(v) << ": tc_seg_key_wg did not run with segments";
        else EXPECT_EQ(seg, 0) << da::variant_name(v) << ": tc_seg_key_wg ran without segments";
      } else {
        EXPECT_EQ(fused + seg, 0) << da::variant_name(v) << " LRNN_DA_KEY_WG=" << kw;
      }
    }
  }
#endif
}

// mLSTM's stabiliser scans (chunk_aux.cu) each way (LRNN_DA_STAB_LOOK: 0 three launches with the carry
// kernels, 1 two with the look-back, 2 one cooperative launch) against the reference, final state and
// all gradients (d m0 among them): sequences of 1 to 11 blocks of 256 tokens (T = 200, 256, 257, 1000,
// 2600: the look-back over none to 10 blocks before and after a block, two batches of 8 maps at
// H = 257), H = 3 (85 segments per head, a thread idle), H = 257 (one segment per head, two heads for
// one thread), packed batches with empty and one-token sequences, initial state present and absent.
// With way 2, head dims 64 and 128 (a core that writes dq, dk itself) also take the fused backward tail
// (stabilised_backward_tail: the gate scan and the stabiliser's backward in one launch). The launch
// counts show that each call ran the way asked for.
TEST(decay_attn_cuda, stabiliser_scans) {
#ifndef LRNN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const variant v = variant::mlstm;
  for (const char* way : {"0", "1", "2"}) {
    const env_scope way_env("LRNN_DA_STAB_LOOK", way);
    int64_t before[5], after[5];
    ops::cuda_chunk::stabiliser_launches(before);
    for (const op_case& c : {sized(v, 2, 200, 16, 16, true, 1.0, 2), sized(v, 1, 256, 16, 16, false, 1.0, 3),
                             sized(v, 1, 257, 32, 16, true, 1.0, 3), sized(v, 2, 1000, 16, 16, true, 1.0, 16),
                             sized(v, 1, 300, 16, 16, true, 1.0, 257), sized(v, 1, 2600, 16, 16, true, 0.5, 257),
                             varlen(v, {0, 1, 1, 300, 556, 1600}, 16, 16), varlen(v, {0, 0, 1000, 1001}, 16, 16),
                             sized(v, 2, 700, 64, 64, true, 1.0, 3), sized(v, 1, 600, 128, 128, false, 1.0, 2),
                             varlen(v, {0, 0, 1, 300, 556, 1600}, 128, 128)}) {
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << "LRNN_DA_STAB_LOOK=" << way << " " << c.name << ": " << rep.summary();
    }
    ops::cuda_chunk::stabiliser_launches(after);
    const int w = way[0] - '0';
    for (int o = 0; o < 3; ++o) {
      if (o == w) EXPECT_GT(after[o] - before[o], 0) << "LRNN_DA_STAB_LOOK=" << way << " did not run that way";
      else EXPECT_EQ(after[o] - before[o], 0) << "LRNN_DA_STAB_LOOK=" << way << " ran way " << o;
    }
    if (w == 2) EXPECT_GT(after[3] - before[3], 0) << "the fused backward tail did not run";
    else EXPECT_EQ(after[3] - before[3], 0) << "the fused backward tail ran with LRNN_DA_STAB_LOOK=" << way;
  }
#endif
}

// The scalar gate's gradient scan (finish_backward after a core that wrote dq, dk itself: one V tile,
// K = 64 and 128) as one cooperative launch with db (LRNN_DA_STAB_LOOK=2: scalar_scan_cooperative) and as
// the two-launch scan with db_from_xy (=0), against the reference: simple GLA, mLSTM-sig (its input gate's
// db), RetNet's per-head decay with an input gate absent (the core's own sum: no scan either way); an
// initial state present and absent, packed batches with empty and one-token sequences, several blocks
// of 256 tokens. The launch counts show which ran.
TEST(decay_attn_cuda, gate_scan_cooperative) {
#ifndef LRNN_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* way : {"0", "2"}) {
    const env_scope way_env("LRNN_DA_STAB_LOOK", way);
    int64_t before[5], after[5];
    ops::cuda_chunk::stabiliser_launches(before);
    for (variant v : {variant::simple_gla, variant::mlstm_sig, variant::retnet}) {
      for (const op_case& c : {sized(v, 2, 700, 64, 64, true, 1.0, 3), sized(v, 1, 600, 128, 128, false, 1.0, 2),
                               varlen(v, {0, 0, 1, 300, 556, 1600}, 128, 128)}) {
        const auto rep = run_op_case(cuda_family(), c);
        EXPECT_TRUE(rep.pass()) << "LRNN_DA_STAB_LOOK=" << way << " " << da::variant_name(v) << " " << c.name << ": " << rep.summary();
      }
    }
    ops::cuda_chunk::stabiliser_launches(after);
    if (way[0] == '2') EXPECT_GT(after[4] - before[4], 0) << "the cooperative gate scan did not run";
    else EXPECT_EQ(after[4] - before[4], 0) << "the cooperative gate scan ran with LRNN_DA_STAB_LOOK=0";
  }
#endif
}

// Without output_final_state, and a zero-length batch of sequences inside a packed batch only.
TEST(decay_attn_cuda, no_final_state) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  op_case c = sized(variant::gla, 1, 70, 64, 64, false);
  auto p = std::any_cast<da::params>(c.params);
  p.options.output_final_state = false;
  const named_tensors in = on_cuda(c, dtype::f32);
  auto out = ops::decay_attn_forward(p.spec, da::inputs_of(in), {}, ops::decay_attn_form::chunk, p.options);
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_FALSE(out->final_state.s.defined());
  EXPECT_TRUE(out->o.dev().is_cuda());
}

// The paths of a GPU with sm_80's 163 KB of shared memory per block (LRNN_DA_SMEM_LIMIT on the
// H100): the tensor-core backward with 64-column V tiles (dq, dk summed over tiles), the fp32
// kernels with scalar gates; per-key gates at K = 128 (~200 KB) are a clear "unsupported" error,
// at K = 64 they run.
TEST(decay_attn_cuda, sm80_shared_memory) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const env_scope smem_env("LRNN_DA_SMEM_LIMIT", "166912");
  for (variant v : {variant::retnet, variant::simple_gla, variant::mlstm, variant::gla})
    for (const op_case& c : {sized(v, 2, 130, 128, 128, true), sized(v, 1, 100, 64, 128, true)}) {
      const bool too_big = v == variant::gla && std::any_cast<da::params>(c.params).spec.decay == ops::decay_kind::per_token_key &&
                           c.name.find("_K128_") != std::string::npos;
      if (too_big) {
        auto p = std::any_cast<da::params>(c.params);
        const named_tensors in = on_cuda(c, dtype::f32);
        auto out = ops::decay_attn_forward(p.spec, da::inputs_of(in), da::state_of(in, "s0", "n0", "m0"),
                                           ops::decay_attn_form::chunk, p.options);
        ASSERT_FALSE(out.ok());
        EXPECT_EQ(out.error().code(), status_code::unsupported);
        EXPECT_NE(out.error().message().find("shared memory"), std::string::npos) << out.error().message();
        continue;
      }
      const auto rep = run_op_case(cuda_family(), c);
      EXPECT_TRUE(rep.pass()) << da::variant_name(v) << " " << c.name << ": " << rep.summary();
    }
}

// With a current stream set (cuda::set_current_stream, as lrnn_cuda_set_stream does for PyTorch's),
// every kernel, scratch allocation and copy of the op goes to it: the results match the default
// stream's (the tensor-core path with segments, and the fp32 path).
TEST(decay_attn_cuda, current_stream) {
#ifdef LRNN_WITH_CUDA
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const env_scope seg_env("LRNN_DA_SEGMENTS", "2");
  for (dtype t : {dtype::bf16, dtype::f32}) {
    const gpu_case g = gpu_case_of(sized(variant::simple_gla, 2, 700, 128, 128, true), t);
    const auto& [p, in, x, init, d_o] = g;
    auto run = [&] {
      auto out = ops::decay_attn_forward(p.spec, x, init, ops::decay_attn_form::chunk, p.options);
      auto gr = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, p.options);
      EXPECT_TRUE(out.ok() && gr.ok());
      return std::vector<tensor>{out->o, out->final_state.s, gr->dq, gr->dk, gr->dv, gr->dg};
    };
    const auto ref = run();
    cudaStream_t s = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cuda::set_current_stream(0, s);
    const auto got = run();
    std::vector<tensor> host;
    for (const auto& g : got) host.push_back(g.to(device::cpu()).value());  // copies on s
    ASSERT_TRUE(cuda::synchronize(0).ok());
    cuda::set_current_stream(0, nullptr);
    cudaStreamDestroy(s);
    // Equal up to the order of fp32 atomic additions (dq, dk partial sums; per-token sums): the gate
    // gradient, a running sum of differences q.dq - k.dk, moves by up to ~2e-5 of its largest value
    // from run to run in f32 (measured), the rest by < 1e-6.
    for (size_t i = 0; i < ref.size(); ++i) {
      const tensor r = ref[i].to(device::cpu()).value();
      EXPECT_LE(max_abs_diff(r, host[i]), (i == 5 ? 1e-4 : 1e-5) * max_abs(r)) << "result " << i << " in " << dtype_name(t);
    }
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

// The normaliser's saved forward: output_den gives den = s n.q per token (the tensor-core forward's
// own in bf16, o' 's column in f32: the two agree), and the backward with saved_o / saved_den (which
// skips its forward pass on the tensor-core path, so a wrong den shows there) gives the gradients of
// the backward without them.
TEST(decay_attn_cuda, saved_forward) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (variant v : {variant::mlstm, variant::mlstm_sig}) {
    tensor den32;
    for (dtype t : {dtype::f32, dtype::bf16}) {
      const gpu_case g = gpu_case_of(sized(v, 2, 200, 128, 128, true), t);
      const auto& [p, in, x, init, d_o] = g;
      ops::decay_attn_options opt = p.options;
      opt.output_den = true;
      auto out = ops::decay_attn_forward(p.spec, x, init, ops::decay_attn_form::chunk, opt);
      ASSERT_TRUE(out.ok()) << out.error().message();
      ASSERT_TRUE(out->den.defined());
      ASSERT_EQ(out->den.shape(), (shape_t{2, 200, 2}));
      const tensor den = out->den.to(device::cpu()).value();
      if (t == dtype::f32) {
        den32 = den;
      } else {
        EXPECT_LE(max_abs_diff(den, den32), 2e-2 * max_abs(den32)) << da::variant_name(v);
      }
      auto plain = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, p.options);
      ops::decay_attn_options so = p.options;
      so.saved_o = out->o, so.saved_den = out->den;
      auto saved = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, so);
      ASSERT_TRUE(plain.ok() && saved.ok()) << (saved.ok() ? plain.error().message() : saved.error().message());
      for (const auto& [name, ab] : pairs_of(*plain, *saved)) {
        ASSERT_TRUE(ab.first.defined() && ab.second.defined()) << name;
        // Equal up to the order of fp32 atomic additions (decay_attn_cuda.current_stream).
        EXPECT_LE(max_abs_diff(ab.first, ab.second), 1e-4 * max_abs(ab.first))
            << da::variant_name(v) << " " << dtype_name(t) << " " << name;
      }
      if (t == dtype::bf16) {
        // On the tensor-core path the backward does use them (it does not recompute): a wrong den
        // (doubled) moves dq far beyond the tolerance above.
        std::vector<float> d2;
        for (double d : den.to_doubles()) d2.push_back(static_cast<float>(2 * d));
        ops::decay_attn_options wrong = so;
        wrong.saved_den = tensor::from_vector(d2, den.shape(), dtype::f32).to(device::cuda()).value();
        auto wg = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, wrong);
        ASSERT_TRUE(wg.ok()) << wg.error().message();
        EXPECT_GT(max_abs_diff(wg->dq, plain->dq), 1e-2 * max_abs(plain->dq)) << da::variant_name(v);
      }
      // Bad saved tensors are clear errors.
      ops::decay_attn_options bad = p.options;
      bad.saved_o = out->o;
      auto e1 = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, bad);
      ASSERT_FALSE(e1.ok());
      EXPECT_NE(e1.error().message().find("go together"), std::string::npos) << e1.error().message();
      bad.saved_den = out->den.reshape({2, 400}).value();
      auto e2 = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, bad);
      ASSERT_FALSE(e2.ok());
      EXPECT_NE(e2.error().message().find("options.saved_den"), std::string::npos) << e2.error().message();
    }
  }
}

// options.ctx, the forward's context for the backward (mLSTM's stabiliser per token, the segment
// states of long sequences): the forward's o and final state as without it, the backward's gradients
// as without it (up to the order of fp32 atomics) for every tensor-core variant with and without
// segments, mLSTM also with its saved o / den; a zeroed context moves them (the backward reads it,
// no recompute); its size is checked.
TEST(decay_attn_cuda, forward_context) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* segs : {"1", "3"}) {
    const env_scope seg_env("LRNN_DA_SEGMENTS", segs);
    for (variant v : {variant::retnet, variant::simple_gla, variant::gla, variant::mlstm, variant::mlstm_sig}) {
      const bool mlstm = v == variant::mlstm, norm = mlstm || v == variant::mlstm_sig;
      const gpu_case g = gpu_case_of(sized(v, 2, 700, 128, 128, true), dtype::bf16);
      const auto& [p, in, x, init, d_o] = g;
      const std::string what = std::string(da::variant_name(v)) + " segments " + segs;
      auto n = ops::decay_attn_ctx_floats(p.spec, x);
      ASSERT_TRUE(n.ok()) << n.error().message();
      const int64_t stab = mlstm ? 2 * 700 * 2 * 3 : 0, seg = 2 * 3 * 2 * 128 * (128 + (norm ? 1 : 0));
      EXPECT_EQ(*n, stab + (segs[0] == '3' ? seg : 0)) << what;
      if (*n == 0) continue;
      ops::decay_attn_options opt = p.options;
      opt.ctx = tensor::empty({*n}, dtype::f32, device::cuda()).value();  // (NaN-poisoned: every read part is written)
      ops::decay_attn_options fo = opt;
      fo.output_den = norm;
      auto with = ops::decay_attn_forward(p.spec, x, init, ops::decay_attn_form::chunk, fo);
      auto without = ops::decay_attn_forward(p.spec, x, init, ops::decay_attn_form::chunk, p.options);
      ASSERT_TRUE(with.ok() && without.ok()) << (with.ok() ? without.error().message() : with.error().message());
      EXPECT_EQ(max_abs_diff(with->o, without->o), 0.0) << what;
      ASSERT_TRUE(with->final_state.s.defined() && without->final_state.s.defined()) << what;
      EXPECT_EQ(max_abs_diff(with->final_state.s, without->final_state.s), 0.0) << what;
      if (mlstm) {
        ASSERT_TRUE(with->final_state.m.defined() && without->final_state.m.defined()) << what;
        EXPECT_EQ(max_abs_diff(with->final_state.m, without->final_state.m), 0.0) << what;
      }
      auto plain = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, p.options);
      ASSERT_TRUE(plain.ok()) << plain.error().message();
      auto same = [&](const ops::decay_attn_grads& a, const ops::decay_attn_grads& b, const std::string& how, bool equal) {
        double worst = 0;
        for (const auto& [name, ab] : pairs_of(a, b)) {
          if (!ab.first.defined() && !ab.second.defined()) continue;  // (not in this spec)
          ASSERT_TRUE(ab.first.defined() && ab.second.defined()) << what << " " << how << " " << name;
          const double rel = max_abs_diff(ab.first, ab.second) / std::max(max_abs(ab.first), 1e-30);
          if (equal) {
            EXPECT_LE(rel, 1e-4) << what << " " << how << " " << name;  // (atomics' order)
          }
          worst = std::max(worst, rel);
        }
        if (!equal) {
          EXPECT_GT(worst, 1e-2) << what << " " << how << ": a zeroed context changed nothing";
        }
      };
      auto g1 = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, opt);
      ASSERT_TRUE(g1.ok()) << g1.error().message();
      same(*plain, *g1, "ctx", true);
      if (norm) {
        ops::decay_attn_options so = opt;
        so.saved_o = with->o, so.saved_den = with->den;
        auto g2 = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, so);
        ASSERT_TRUE(g2.ok()) << g2.error().message();
        same(*plain, *g2, "ctx + saved o", true);
      }
      ops::decay_attn_options zo = p.options;
      zo.ctx = tensor::zeros({*n}, dtype::f32, device::cuda()).value();
      auto gz = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, zo);
      ASSERT_TRUE(gz.ok()) << gz.error().message();
      same(*plain, *gz, "zeroed ctx", false);
      ops::decay_attn_options bad = p.options;
      bad.ctx = tensor::empty({*n + 1}, dtype::f32, device::cuda()).value();
      auto e = ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, bad);
      ASSERT_FALSE(e.ok()) << what;
      EXPECT_NE(e.error().message().find("options.ctx"), std::string::npos) << e.error().message();
    }
  }
}

// mLSTM's normaliser rows (rs, dn', dm per token) three ways: in the dq sweep from its own products
// (LRNN_DA_ROWS_MODE=1; where the stage of o does not fit; o is not read) or from the staged o (=2;
// the default), and in normalise_backward_rows (LRNN_DA_ROWS_PASS=1): the same
// gradients up to bf16 rounding (o and the products round differently), with and without segments.
// All also meet the f64 reference in the other tests (the defaults) and the runs with those
// variables set.
TEST(decay_attn_cuda, normaliser_rows) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* segs : {"1", "3"}) {
    const env_scope seg_env("LRNN_DA_SEGMENTS", segs);
    for (variant v : {variant::mlstm, variant::mlstm_sig}) {
      const gpu_case g = gpu_case_of(sized(v, 2, 333, 128, 128, true), dtype::bf16);
      const auto& [p, in, x, init, d_o] = g;
      auto pass = [&] {
        const env_scope pass_env("LRNN_DA_ROWS_PASS", "1");
        return ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, p.options);
      }();
      ASSERT_TRUE(pass.ok()) << pass.error().message();
      for (const char* mode : {"1", "2"}) {
        auto sweep = [&] {
          const env_scope mode_env("LRNN_DA_ROWS_MODE", mode);
          return ops::decay_attn_backward(p.spec, x, init, d_o, {}, ops::decay_attn_form::chunk, p.options);
        }();
        ASSERT_TRUE(sweep.ok()) << sweep.error().message();
        for (const auto& [name, ab] : pairs_of(*pass, *sweep)) {
          ASSERT_TRUE(ab.first.defined() && ab.second.defined()) << name;
          EXPECT_GT(max_abs(ab.first), 0.0) << name;
          EXPECT_LE(max_abs_diff(ab.first, ab.second), 2e-2 * max_abs(ab.first))
              << "segments " << segs << " rows mode " << mode << " " << da::variant_name(v) << " " << name;
        }
      }
    }
  }
}

// options.into_*: results written into the caller's tensors where they fit (same values as fresh
// results, the returned tensors are the given ones); a tensor that does not fit, or is an input, is ignored.
TEST(decay_attn_cuda, into_buffers) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (variant v : {variant::simple_gla, variant::gla, variant::mlstm}) {
    SCOPED_TRACE(variant_name(v));
    const gpu_case g = gpu_case_of(sized(v, 2, 130, 64, 128, true), dtype::bf16);  // (d_o: any upstream gradient)
    const auto& [p, in, x, init, d_o] = g;
    const auto F = ops::decay_attn_form::chunk;
    auto fresh = ops::decay_attn_forward(p.spec, x, init, F, p.options);
    auto gfresh = ops::decay_attn_backward(p.spec, x, init, d_o, {}, F, p.options);
    ASSERT_TRUE(fresh.ok() && gfresh.ok());
    ops::decay_attn_options o = p.options;
    o.into_o = tensor::empty(x.v.shape(), dtype::bf16, device::cuda()).value();
    o.into_dq = tensor::empty(x.q.shape(), dtype::bf16, device::cuda()).value();
    o.into_dk = tensor::empty(x.k.shape(), dtype::f16, device::cuda()).value();  // wrong dtype: ignored
    o.into_dv = tensor::empty(x.v.shape(), dtype::bf16, device::cuda()).value();
    o.into_dg = tensor::empty(x.g.shape(), dtype::f32, device::cuda()).value();
    if (x.i.defined()) o.into_di = tensor::empty(x.i.shape(), dtype::f32, device::cuda()).value();
    auto out = ops::decay_attn_forward(p.spec, x, init, F, o);
    auto gr = ops::decay_attn_backward(p.spec, x, init, d_o, {}, F, o);
    ASSERT_TRUE(out.ok()) << out.error().message();
    ASSERT_TRUE(gr.ok()) << gr.error().message();
    EXPECT_EQ(out->o.raw_data(), o.into_o.raw_data());
    EXPECT_EQ(gr->dq.raw_data(), o.into_dq.raw_data());
    EXPECT_NE(gr->dk.raw_data(), o.into_dk.raw_data());
    EXPECT_EQ(gr->dk.type(), dtype::bf16);
    EXPECT_EQ(gr->dv.raw_data(), o.into_dv.raw_data());
    EXPECT_EQ(gr->dg.raw_data(), o.into_dg.raw_data());
    if (x.i.defined()) {
      EXPECT_EQ(gr->di.raw_data(), o.into_di.raw_data());
    }
    // The same values as fresh results: exactly for the forward; for dq, dk up to one bf16 rounding of
    // the largest value (GLA's fp32 kernels add dq, dk over V tiles with atomics in run-dependent order).
    EXPECT_EQ(max_abs_diff(out->o, fresh->o), 0.0);
    EXPECT_LE(max_abs_diff(gr->dq, gfresh->dq), 8e-3 * max_abs(gfresh->dq));
    EXPECT_LE(max_abs_diff(gr->dk, gfresh->dk), 8e-3 * max_abs(gfresh->dk));
    EXPECT_LE(max_abs_diff(gr->dv, gfresh->dv), 8e-3 * max_abs(gfresh->dv));
    EXPECT_LE(max_abs_diff(gr->dg, gfresh->dg), 2e-3 * max_abs(gfresh->dg));  // (fp32 sums in run-dependent order)
    if (x.i.defined()) {
      EXPECT_LE(max_abs_diff(gr->di, gfresh->di), 2e-3 * max_abs(gfresh->di));
    }
    // An input given as its own gradient's buffer (in place): not used (the kernels still read it),
    // so the input is unchanged and the gradient the same.
    const tensor g_before = x.g.clone().value();
    ops::decay_attn_options oi = p.options;
    oi.into_dg = x.g;
    if (x.i.defined()) oi.into_di = x.i;
    auto gi = ops::decay_attn_backward(p.spec, x, init, d_o, {}, F, oi);
    ASSERT_TRUE(gi.ok()) << gi.error().message();
    EXPECT_NE(gi->dg.raw_data(), x.g.raw_data());
    EXPECT_EQ(max_abs_diff(x.g, g_before), 0.0);
    EXPECT_LE(max_abs_diff(gi->dg, gfresh->dg), 2e-3 * max_abs(gfresh->dg));
    if (x.i.defined()) {
      EXPECT_NE(gi->di.raw_data(), x.i.raw_data());
    }
  }
}

// Timing mode for development (bench/decay_attn_cuda.md): LRNN_CHUNK_TIMING=1 times the kernels
// (cuda_chunk::core_forward; core_backward + finish_backward, buffers preallocated) and the whole
// op (forward; forward + backward, allocations included) at the issue #7 sizes, H = 16,
// K = V = 128, bf16, scalar and per-key gates. Medians of CUDA-event / host-clock timings.
TEST(decay_attn_cuda, timing) {
#ifdef LRNN_WITH_CUDA
  const char* e = std::getenv("LRNN_CHUNK_TIMING");
  if (!e || (std::string(e) != "1" && std::string(e) != "quick" && std::string(e) != "key") || cuda_device_count() == 0)
    GTEST_SKIP() << "set LRNN_CHUNK_TIMING=1 (GPU only)";
  namespace cc = ops::cuda_chunk;
  const int64_t H = 16, K = 128, V = 128;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  auto dev_rand = [&](const shape_t& shape, dtype t, float lo, float hi, bool gate) {
    std::vector<float> x(static_cast<size_t>(shape_numel(shape)));
    std::uniform_real_distribution<float> ud(lo, hi);
    for (auto& v : x) v = gate ? ud(rng) : nd(rng);
    return tensor::from_vector(x, shape, t).to(device::cuda()).value();
  };
  auto median = [](std::vector<double> ts) {
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
  };
  auto time_host = [&](auto&& fn, int reps) {
    for (int i = 0; i < 2; ++i) fn();
    cudaDeviceSynchronize();
    std::vector<double> ts;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      cudaDeviceSynchronize();
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return median(ts);
  };
  auto time_dev = [&](auto&& fn, int reps) {
    for (int i = 0; i < 2; ++i) fn();
    cudaEvent_t a0, a1;
    cudaEventCreate(&a0);
    cudaEventCreate(&a1);
    std::vector<double> ts;
    for (int r = 0; r < reps; ++r) {
      cudaEventRecord(a0);
      fn();
      cudaEventRecord(a1);
      cudaEventSynchronize(a1);
      float ms = 0;
      cudaEventElapsedTime(&ms, a0, a1);
      ts.push_back(ms);
    }
    cudaEventDestroy(a0);
    cudaEventDestroy(a1);
    return median(ts);
  };
  int occ[3];
  cc::tc_occupancy(static_cast<int>(K), occ);
  std::printf("tensor-core kernels, CTAs per SM at K = %lld: fwd %d, dq %d, dk/dv %d\n", static_cast<long long>(K), occ[0], occ[1], occ[2]);
  for (auto [B, T] : {std::pair<int64_t, int64_t>{8, 4096}, {2, 16384}}) {
    ops::decay_attn_inputs in;
    in.q = dev_rand({B, T, H, K}, dtype::bf16, 0, 0, false);
    in.k = dev_rand({B, T, H, K}, dtype::bf16, 0, 0, false);
    in.v = dev_rand({B, T, H, V}, dtype::bf16, 0, 0, false);
    const tensor d_o = dev_rand({B, T, H, V}, dtype::bf16, 0, 0, false);
    const tensor gs = dev_rand({B, T, H}, dtype::f32, -1.f, -0.01f, true);
    const tensor gk = dev_rand({B, T, H, K}, dtype::f32, -1.f, -0.01f, true);
    std::vector<int32_t> off;
    for (int64_t n = 0; n <= B; ++n) off.push_back(static_cast<int32_t>(n * T));
    const tensor offsets = tensor::from_vector(off, {B + 1}, dtype::i32).to(device::cuda()).value();
    const tensor o = tensor::empty({B, T, H, V}, dtype::bf16, device::cuda()).value();
    const tensor dqa = tensor::empty({B * T, H, K}, dtype::f32, device::cuda()).value();
    const tensor dka = tensor::empty({B * T, H, K}, dtype::f32, device::cuda()).value();
    const tensor dv = tensor::empty({B, T, H, V}, dtype::bf16, device::cuda()).value();
    const tensor dq = tensor::empty({B, T, H, K}, dtype::bf16, device::cuda()).value();
    const tensor dk = tensor::empty({B, T, H, K}, dtype::bf16, device::cuda()).value();
    const tensor gkb = tensor::empty({B * T, H, K}, dtype::f32, device::cuda()).value();
    const tensor dgs = tensor::empty({B * T, H}, dtype::f32, device::cuda()).value();
    // LRNN_CHUNK_TIMING=quick: the scalar decay at B = 8 only (for profilers); key: the per-key decay.
    const bool quick = std::string(e) == "quick", key_only = std::string(e) == "key";
    if (quick && B != 8) continue;
    for (auto kind : {ops::decay_kind::per_token_scalar, ops::decay_kind::per_token_key}) {
      if (quick && kind == ops::decay_kind::per_token_key) continue;
      if (key_only && kind != ops::decay_kind::per_token_key) continue;
      const bool key = kind == ops::decay_kind::per_token_key;
      ops::decay_attn_spec spec;
      spec.decay = kind;
      in.g = key ? gk : gs;
      ops::decay_attn_options opt;
      opt.output_final_state = false;
      cc::core_args a;
      a.N = static_cast<int>(B), a.H = static_cast<int>(H), a.K = static_cast<int>(K), a.V = a.Vin = static_cast<int>(V);
      a.tokens = B * T;
      a.max_len = T;
      a.offsets = offsets.data<int32_t>();
      a.type = cc::t_bf16;
      a.q = in.q.raw_data(), a.k = in.k.raw_data(), a.v = in.v.raw_data();
      a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(K)));
      a.g = in.g.data<float>();
      a.gmode = key ? cc::g_key : cc::g_scalar;
      cc::fwd_out fo;
      fo.o = o.raw_data();
      cc::bwd_io io;
      io.d_o = d_o.raw_data(), io.dq = dqa.data<float>(), io.dk = dka.data<float>(), io.dv = dv.raw_data();
      cc::finish_io fi;
      fi.dq = dqa.data<float>(), fi.dk = dka.data<float>(), fi.gk = key ? gkb.data<float>() : nullptr, fi.dgs = key ? nullptr : dgs.data<float>();
      fi.dq_out = dq.raw_data(), fi.dk_out = dk.raw_data();
      const tensor scratch = tensor::empty({cc::finish_scratch_floats(a)}, dtype::f32, device::cuda()).value();
      fi.scratch = scratch.data<float>();
      // As the op does: the tensor-core backward (one V tile) writes dq, dk and the per-token sums itself.
      const bool direct = cc::tc_backward_direct(a, io);
      // Per-key gates: the core finishes the backward itself.
      const bool key_core = cc::tc_backward_key(a, io);
      if (key_core) io.dq_out = dq.raw_data(), io.dk_out = dk.raw_data(), io.gk = gkb.data<float>();
      if (direct) {
        io.dq = io.dk = nullptr;
        io.dq_out = dq.raw_data(), io.dk_out = dk.raw_data(), io.xy = scratch.data<float>();
        fi.core_wrote_dqdk = true;
      }
      // The backward's zeroed accumulators (fp32 dq, dk; or the per-token sums).
      auto zero_acc = [&] {
        if (direct) {
          cudaMemsetAsync(io.xy, 0, sizeof(float) * 2 * B * T * H);
        } else if (!key_core) {
          cudaMemsetAsync(io.dq, 0, dqa.nbytes());
          cudaMemsetAsync(io.dk, 0, dka.nbytes());
        }
      };
      const double kf = time_dev([&] { EXPECT_EQ(cc::core_forward(a, fo), 0); }, 10);
      {
        for (const char* segs : {"1", "2", "4", "8"}) {
          const env_scope seg_env("LRNN_DA_SEGMENTS", segs);
          const double f = time_dev([&] { EXPECT_EQ(cc::core_forward(a, fo), 0); }, 10);
          const double b = time_dev([&] {
            zero_acc();
            EXPECT_EQ(cc::core_backward(a, io), 0);
          }, 5);
          std::printf("lrnn %-10s B=%lld T=%lld: %s segment(s): fwd kernels %.3f ms, bwd core %.3f ms\n",
                      key ? "gla" : "simple_gla", static_cast<long long>(B), static_cast<long long>(T), segs, f, b);
        }
      }
      const double kf_simt = [&] {
        const env_scope simt_env("LRNN_DA_NO_TC", "1");
        return time_dev([&] { EXPECT_EQ(cc::core_forward(a, fo), 0); }, 3);
      }();
      const double kb = time_dev([&] {
        zero_acc();
        EXPECT_EQ(cc::core_backward(a, io), 0);
      }, 3);
      const double kfin = key_core ? 0.0 : time_dev([&] { EXPECT_EQ(cc::finish_backward(a, fi), 0); }, 3);
      const double tf = time_host([&] { (void)ops::decay_attn_forward(spec, in, {}, ops::decay_attn_form::chunk, opt).value(); }, 5);
      const double tb = time_host([&] {
        (void)ops::decay_attn_forward(spec, in, {}, ops::decay_attn_form::chunk, opt).value();
        (void)ops::decay_attn_backward(spec, in, {}, d_o, {}, ops::decay_attn_form::chunk, opt).value();
      }, 3);
      const double bytes = 2.0 * B * T * H * (2 * K + 2 * V) + 4.0 * in.g.numel();
      std::printf("lrnn %-10s B=%lld T=%lld: kernels fwd %.3f ms (SIMT fwd %.3f) bwd core %.3f + finish %.3f = fwd+bwd %.3f ms | op fwd %.3f ms, "
                  "op fwd+bwd %.3f ms | fwd HBM floor %.3f ms at 3.0 TB/s\n",
                  key ? "gla" : "simple_gla", static_cast<long long>(B), static_cast<long long>(T), kf, kf_simt, kb, kfin,
                  kf + kb + kfin, tf, tb, bytes / 3.0e9);
    }
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace lrnn::testing
