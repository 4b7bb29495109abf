// decay_attn through the op harness: every form (recurrent, parallel, chunk) against the f64
// reference for outputs, final states and all gradients, per spec variant (RetNet, simple GLA,
// GLA, RWKV-6, mLSTM exp / sig), T in {1, 2, 63, 64, 65, 1000}, K, V in {60, 64, 128}, gates from
// weak to very strong; finite differences on tiny sizes. Plain tests in decay_attn_extra_test.cpp.
#include "ops/decay_attn_test_util.h"

namespace lrnn::testing {
namespace {

using da::make_case;
using da::variant;

op_case fd_case(variant v, bool init) {
  da::case_opts o;
  o.B = 1, o.T = 6, o.H = 2, o.K = 4, o.V = 5, o.init = init, o.chunk = 16, o.fd = true;
  return make_case(v, o);
}
// mLSTM (exponential gate): its gradients pass through 1 / den, and the f32 forms' error in grad i
// sits near the 2 x naive + atol bound on every form (T = 1, K = 60: recurrent 1.04e-4, chunk 1.52e-4
// against 1.32e-4, naive f32 4.4e-6; the chunk form's figure depends on the BLAS kernels OpenBLAS
// picks for the CPU: 1.52e-4 on an AVX-512 EPYC, within the bound with OPENBLAS_CORETYPE=Haswell,
// 2026-12-07). atol x4 as in the CUDA test (decay_attn_cuda_test.cpp, mlstm_atol).
op_case sized(variant v, int64_t B, int64_t T, int64_t K, int64_t V, bool init, double gmax = 1.0, int64_t H = 2) {
  da::case_opts o;
  o.B = B, o.T = T, o.H = H, o.K = K, o.V = V, o.init = init, o.gmax = gmax;
  op_case c = make_case(v, o);
  if (v == variant::mlstm) c.atol_scale = 4;
  return c;
}

#define DA_CASES(V)                                                                                            \
  LRNN_OP_CASE(decay_attn_##V, fd_init, da::family(variant::V), fd_case(variant::V, true))                   \
  LRNN_OP_CASE(decay_attn_##V, fd_no_init, da::family(variant::V), fd_case(variant::V, false))               \
  LRNN_OP_CASE(decay_attn_##V, t1_k60_v64, da::family(variant::V), sized(variant::V, 2, 1, 60, 64, false))   \
  LRNN_OP_CASE(decay_attn_##V, t2_init, da::family(variant::V), sized(variant::V, 1, 2, 64, 60, true))       \
  LRNN_OP_CASE(decay_attn_##V, t63_init_k64_v60, da::family(variant::V), sized(variant::V, 1, 63, 64, 60, true)) \
  LRNN_OP_CASE(decay_attn_##V, t64_k60_v64, da::family(variant::V), sized(variant::V, 2, 64, 60, 64, false))  \
  LRNN_OP_CASE(decay_attn_##V, t65_init, da::family(variant::V), sized(variant::V, 1, 65, 64, 60, true, 1.0, 1))

DA_CASES(retnet)
DA_CASES(simple_gla)
DA_CASES(gla)
DA_CASES(rwkv6)
DA_CASES(mlstm)
DA_CASES(mlstm_sig)

// Head dim 128 and K != V.
LRNN_OP_CASE(decay_attn_gla, t130_k128_v64_init, da::family(variant::gla, false), sized(variant::gla, 1, 130, 128, 64, true, 1.0, 1))
LRNN_OP_CASE(decay_attn_mlstm, t100_k64_v128_init, da::family(variant::mlstm, false), sized(variant::mlstm, 1, 100, 64, 128, true, 1.0, 1))
LRNN_OP_CASE(decay_attn_simple_gla, t70_k128_v128, da::family(variant::simple_gla, false), sized(variant::simple_gla, 1, 70, 128, 128, false, 1.0, 1))

// Long sequences (no parallel form: it is O(T^2 K)).
LRNN_OP_CASE(decay_attn_gla, t1000_init, da::family(variant::gla, false), sized(variant::gla, 1, 1000, 64, 64, true, 0.2, 1))
LRNN_OP_CASE(decay_attn_mlstm, t1000_init, da::family(variant::mlstm, false), sized(variant::mlstm, 1, 1000, 64, 64, true, 1.0, 1))
LRNN_OP_CASE(decay_attn_rwkv6, t1000, da::family(variant::rwkv6, false), sized(variant::rwkv6, 1, 1000, 64, 64, false, 1.0, 1))
// mLSTM's d m0 with a batch of two sequences: the shape whose d m0 went astray (CPU f32 8.4e-5, CUDA
// 4.1e-3 against naive 1.2e-5) while m's gradient came from differences of the long gate-gradient
// sums; now from per-token terms (decay_attn.cpp, stabiliser backward).
LRNN_OP_CASE(decay_attn_mlstm, b2_t190_init, da::family(variant::mlstm, false), sized(variant::mlstm, 2, 190, 64, 64, true, 0.2, 2))
// RetNet's per-head decay gradient sums over the whole sequence (bench/retnet_dgamma_precision.py):
// the shape of the GPU case that was flaky in f32.
LRNN_OP_CASE(decay_attn_retnet, t700_k128_init, da::family(variant::retnet, false), sized(variant::retnet, 1, 700, 128, 128, true, 1.0, 2))

// Gate strength from weak to very strong (log gates down to -50 per token): finite, and equal.
LRNN_OP_CASE(decay_attn_gla, weak_gates, da::family(variant::gla), sized(variant::gla, 1, 70, 32, 32, true, 0.01, 2))
LRNN_OP_CASE(decay_attn_gla, strong_gates, da::family(variant::gla), sized(variant::gla, 1, 70, 32, 32, true, 50.0, 2))
LRNN_OP_CASE(decay_attn_simple_gla, strong_gates, da::family(variant::simple_gla), sized(variant::simple_gla, 1, 70, 32, 32, true, 50.0, 2))
LRNN_OP_CASE(decay_attn_rwkv6, strong_gates, da::family(variant::rwkv6), sized(variant::rwkv6, 1, 70, 32, 32, true, 50.0, 2))
LRNN_OP_CASE(decay_attn_mlstm, strong_gates, da::family(variant::mlstm), sized(variant::mlstm, 1, 70, 32, 32, true, 50.0, 2))
LRNN_OP_CASE(decay_attn_mlstm_sig, strong_gates, da::family(variant::mlstm_sig), sized(variant::mlstm_sig, 1, 70, 32, 32, true, 50.0, 2))

// Packed variable-length batch through the harness (every form, gradients included).
LRNN_OP_CASE(decay_attn_gla, varlen, da::family(variant::gla), da::varlen_case(variant::gla, {0, 17, 17 + 64, 17 + 64 + 70}))
LRNN_OP_CASE(decay_attn_mlstm, varlen, da::family(variant::mlstm), da::varlen_case(variant::mlstm, {0, 5, 80, 81}))
LRNN_OP_CASE(decay_attn_rwkv6, varlen, da::family(variant::rwkv6), da::varlen_case(variant::rwkv6, {0, 33, 99}))

}  // namespace
}  // namespace lrnn::testing
