// delta_rule through the op harness: the recurrent and chunk forms against the f64 reference for
// outputs, final states and all gradients, per kind (DeltaNet, Gated DeltaNet with and without
// in-kernel L2 norm, RWKV-7 DPLR), T in {1, 63, 64, 65, 1000}, K, V in {60, 64, 128}, decays from
// weak to log-gates of -50; finite differences on tiny sizes. Plain tests in delta_rule_extra_test.cpp.
#include "ops/delta_rule_test_util.h"

namespace lrnn::testing {
namespace {

using dr::make_case;
using dr::variant;

op_case fd_case(variant v, bool init) {
  dr::case_opts o;
  o.B = 1, o.T = 6, o.H = 2, o.K = 4, o.V = 5, o.init = init, o.chunk = 16, o.fd = true;
  return make_case(v, o);
}
op_case sized(variant v, int64_t B, int64_t T, int64_t K, int64_t V, bool init, double gmax = 1.0, int64_t H = 2) {
  dr::case_opts o;
  o.B = B, o.T = T, o.H = H, o.K = K, o.V = V, o.init = init, o.gmax = gmax;
  return make_case(v, o);
}
op_case chunked(variant v, int64_t T, int64_t K, int64_t V, int64_t chunk, bool init, double gmax, uint64_t seed = 11) {
  dr::case_opts o;
  o.B = 1, o.T = T, o.H = 1, o.K = K, o.V = V, o.init = init, o.gmax = gmax, o.chunk = chunk, o.seed = seed;
  return make_case(v, o);
}

#define DR_CASES(V)                                                                                          \
  LRNN_OP_CASE(delta_rule_##V, fd_init, dr::family(), fd_case(variant::V, true))                           \
  LRNN_OP_CASE(delta_rule_##V, fd_no_init, dr::family(), fd_case(variant::V, false))                       \
  LRNN_OP_CASE(delta_rule_##V, t1_k60_v64, dr::family(), sized(variant::V, 2, 1, 60, 64, false))           \
  LRNN_OP_CASE(delta_rule_##V, t63_init_k64_v60, dr::family(), sized(variant::V, 1, 63, 64, 60, true))     \
  LRNN_OP_CASE(delta_rule_##V, t64_k60_v64, dr::family(), sized(variant::V, 2, 64, 60, 64, false))         \
  LRNN_OP_CASE(delta_rule_##V, t65_init, dr::family(), sized(variant::V, 1, 65, 64, 60, true, 1.0, 1))

DR_CASES(delta)
DR_CASES(gated)
DR_CASES(gated_l2)
DR_CASES(dplr)

// Head dim 128 and K != V.
LRNN_OP_CASE(delta_rule_gated, t130_k128_v64_init, dr::family(), sized(variant::gated, 1, 130, 128, 64, true, 1.0, 1))
LRNN_OP_CASE(delta_rule_dplr, t70_k64_v128_init, dr::family(), sized(variant::dplr, 1, 70, 64, 128, true, 0.6, 1))

// Long sequences.
LRNN_OP_CASE(delta_rule_gated, t1000_init, dr::family(), sized(variant::gated, 1, 1000, 64, 64, true, 0.2, 1))
LRNN_OP_CASE(delta_rule_dplr, t1000, dr::family(), sized(variant::dplr, 1, 1000, 64, 64, false, 0.6, 1))

// Decays from weak to very strong (log decays down to -50 per token): finite, and equal.
LRNN_OP_CASE(delta_rule_gated, weak_gates, dr::family(), sized(variant::gated, 1, 70, 32, 32, true, 0.01, 2))
LRNN_OP_CASE(delta_rule_gated, strong_gates, dr::family(), sized(variant::gated, 1, 70, 32, 32, true, 50.0, 2))
LRNN_OP_CASE(delta_rule_dplr, strong_decay, dr::family(), sized(variant::dplr, 1, 70, 32, 32, true, 50.0, 2))

// DPLR chunk form (cpu/dplr_chunk.cpp): head dims 128 and 60, chunk sizes 16 to 256 (partial last
// chunks and blocks), decays from weak to log decays of -50 per key (off-diagonal blocks underflow to 0).
LRNN_OP_CASE(delta_rule_dplr, t130_k128_v128_init, dr::family(), chunked(variant::dplr, 130, 128, 128, 64, true, 0.6))
LRNN_OP_CASE(delta_rule_dplr, t1000_k128_init, dr::family(), chunked(variant::dplr, 1000, 128, 64, 64, true, 0.6, 5))
LRNN_OP_CASE(delta_rule_dplr, t100_k60_chunk16, dr::family(), chunked(variant::dplr, 100, 60, 40, 16, true, 1.0))
LRNN_OP_CASE(delta_rule_dplr, t77_k60_chunk32, dr::family(), chunked(variant::dplr, 77, 60, 60, 32, false, 1.0))
LRNN_OP_CASE(delta_rule_dplr, t300_chunk256, dr::family(), chunked(variant::dplr, 300, 32, 24, 256, true, 0.3))
LRNN_OP_CASE(delta_rule_dplr, weak_decay, dr::family(), chunked(variant::dplr, 150, 32, 32, 64, true, 0.001))
LRNN_OP_CASE(delta_rule_dplr, strong_decay_k60_chunk32, dr::family(), chunked(variant::dplr, 100, 60, 32, 32, true, 50.0))

// Packed variable-length batches (every form, gradients included).
LRNN_OP_CASE(delta_rule_gated, varlen, dr::family(), dr::varlen_case(variant::gated, {0, 17, 17 + 64, 17 + 64 + 70}))
LRNN_OP_CASE(delta_rule_delta, varlen, dr::family(), dr::varlen_case(variant::delta, {0, 5, 80, 81}))
LRNN_OP_CASE(delta_rule_dplr, varlen, dr::family(), dr::varlen_case(variant::dplr, {0, 33, 33, 99}))

}  // namespace
}  // namespace lrnn::testing
