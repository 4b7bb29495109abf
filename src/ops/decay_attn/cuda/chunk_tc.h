// Tensor-core chunk kernels (chunk_tc.cu): which calls they take and their entry points.
#pragma once

#include "ops/decay_attn/cuda/chunk_api.h"

namespace lrnn::ops::cuda_chunk {

// bf16/f16, K in {64, 128}, Vin % 64 == 0: scalar / per-head / no decay without the bonus, with or
// without the normaliser column (V = Vin + 1, forward with o in fp32; a per-head decay's backward only
// without it), per-key gates with or without the bonus (LRNN_DA_NO_TC=1 turns the path off).
bool tc_forward_eligible(const core_args& a, const fwd_out& o);
// Whether the forward normalises itself (fwd_out::den): the normaliser column with one V tile.
bool tc_forward_fused_norm(const core_args& a);
bool tc_backward_eligible(const core_args& a, const bwd_io& io);
// Whether the tensor-core backward takes this call's normaliser column (V = Vin + 1), folded in: d_o
// in the input dtype with the per-row bwd_io::rs and dn (normalise_backward_rows).
bool tc_backward_normaliser(const core_args& a);
int tc_forward(const core_args& a, const fwd_out& o);
// Bytes of core_args::gate_tab the tensor-core path uses.
inline int64_t tc_table_bytes(const core_args& a) { return 16 * a.tokens * a.H; }
// Whether the backward can write dq, dk in the input dtype itself (bwd_io::dq_out, dk_out, xy): the
// tensor-core path with one V tile (V = 64 or 128). Otherwise it adds fp32 partials into bwd_io::dq, dk.
bool tc_backward_direct(const core_args& a, const bwd_io& io);
// Whether the backward takes per-key gates on tensor cores, finishing the gradients itself (bwd_io::gk).
bool tc_backward_key(const core_args& a, const bwd_io& io);
int tc_backward(const core_args& a, const bwd_io& io);
// Floats of fwd_out::seg_ctx for this call: the forward's segment-boundary states [N, nseg, H, K, V]
// where the tensor-core forward cuts sequences into segments; 0 otherwise.
int64_t tc_ctx_floats(const core_args& a);
// Launches of the scalar-decay forward's kernels in this process, by kind: [0] the mma.sync one (tc_fwd),
// [1] the wgmma one (tc_fwd_wg) with the threads' own stores of O, [2] tc_fwd_wg with TMA stores of O;
// the forward-direction segment pass (forward and backward, any decay): [3] tc_seg, [4] tc_seg_wg; the
// backward's reverse segment pass: [5] tc_seg, [6] tc_seg_wg; the fused per-key forward: [7] tc_key_wg,
// [8] its segment pass tc_seg_key_wg; [9] gate tables (gate_table_rows, forward and backward);
// [10 + v] tc_key_wg's variant v = 0..3 (LRNN_DA_KW_VAR, also counted in [7]).
constexpr int kLaunchKinds = 14;
// tc_key_wg's variant where LRNN_DA_KW_VAR is unset, and f16's always (chunk_tc.cu, key_wg_kernel): GLA
// 0, RWKV-6 (bonus) 1, the fastest in run 31 (H100: 0.313 and 0.400 ms at B=8).
constexpr int kw_var_default(bool bonus) { return bonus ? 1 : 0; }
void tc_forward_launches(int64_t out[kLaunchKinds]);
// Whether tc_fwd_wg can run here: a Hopper GPU and this build's sm_90a code (LRNN_DA_WG aside).
bool tc_forward_wg_available();
// CTAs per SM of the forward, dq and dk/dv kernels (bf16, head size K, V = 128), -1 on error (diagnostics).
void tc_occupancy(int K, int out[3]);

}  // namespace lrnn::ops::cuda_chunk
