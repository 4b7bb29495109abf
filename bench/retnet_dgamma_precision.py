"""How precisely can RetNet's per-head decay gradient come out of per-token sums?

The CUDA kernels form the gradient of a per-head constant log decay g as the sum over tokens of the
per-token gate gradient, i.e. sum_s (s + 1) x_s (+ the initial state's term) with x_s = q_s.dq_s -
k_s.dk_s. The exact value is sum_{i >= j} (i - j) A_ij; the per-token form adds terms up to ~T times
larger that cancel. This script measures, in float64 with NumPy, what rounding dq, dk (and x) to fp32
alone does to the result, at the shape of the GPU test case that is flaky in f32
(decay_attn_cuda.segments, RetNet B=1 T=700 K=V=128, head 0: g = log(1 - 2^-5), with s0).

    python3 bench/retnet_dgamma_precision.py
"""
import numpy as np

rng = np.random.default_rng(0)
T, K, V = 700, 128, 128
g = np.log(1 - 2.0 ** -5)
q, k, v = [rng.standard_normal((T, d)) for d in (K, K, V)]
do = rng.standard_normal((T, V))
s0 = 0.5 * rng.standard_normal((K, V))
sc = 1 / np.sqrt(K)
t = np.arange(T)
D = np.where(t[:, None] >= t[None, :], np.exp(g * (t[:, None] - t[None, :])), 0.0)
A = sc * (q @ k.T) * (do @ v.T) * D
dP = sc * (do @ v.T) * D
# o_i = scale q_i (exp(g (i + 1)) s0 + sum_{j <= i} exp(g (i - j)) k_j v_j^T)
dq = dP @ k + sc * np.exp(g * (t + 1))[:, None] * (do @ s0.T)
dk = dP.T @ q
init = (sc * (t + 1) * np.exp(g * (t + 1)) * np.einsum("tk,kv,tv->t", q, s0, do)).sum()
exact = ((t[:, None] - t[None, :]) * A).sum() + init
x = (q * dq).sum(1) - (k * dk).sum(1)
via_x = ((t + 1) * x).sum()
print(f"dg exact {exact:.6f}; via per-token sums (float64) {via_x:.6f}")
print(f"sum_s (s + 1) |x_s| = {((t + 1) * np.abs(x)).sum():.3e}: {((t + 1) * np.abs(x)).sum() / abs(exact):.0f}x the result")


def err(dq_, dk_, x_f32):
    if x_f32:
        f = np.float32
        xx = ((q.astype(f) * dq_.astype(f)).sum(1, dtype=f) - (k.astype(f) * dk_.astype(f)).sum(1, dtype=f)).astype(np.float64)
    else:
        xx = (q * dq_).sum(1) - (k * dk_).sum(1)
    return abs(((t + 1) * xx).sum() - via_x)


for label, x_f32 in (("dq, dk rounded to fp32", False), ("dq, dk rounded to fp32, x summed in fp32", True)):
    e = []
    for trial in range(20):
        r = np.random.default_rng(trial)
        dq32 = dq.astype(np.float32).astype(np.float64) * (1 + (6e-8 if trial else 0) * r.standard_normal(dq.shape))
        dk32 = dk.astype(np.float32).astype(np.float64) * (1 + (6e-8 if trial else 0) * r.standard_normal(dk.shape))
        e.append(err(dq32, dk32, x_f32))
    print(f"{label:44s}: |error| median {np.median(e):.3e}, max {np.max(e):.3e} (20 draws of one-ulp noise)")


# The fix, emulated: the pair sum sum_{i >= j} (i - j) A_ij chunk by chunk in fp32, with positions
# relative to the chunk, the state S and a moment state M = sum_{j < c0} (c0 - 1 - j) gamma^(c0 - 1 - j)
# k_j v_j^T (s0 as a token at position -1) carried from chunk to chunk:
#   row i = c0 + r: scale gamma^(r + 1) ((r + 1) q_i^T S do_i + q_i^T M do_i)  (pairs with earlier chunks)
#   + sum_{r' <= r} (r - r') scale q_i.k_j do_i.v_j gamma^(r - r')           (pairs inside the chunk)
#   M <- gamma^L (M + L S) + sum_r (L - 1 - r) gamma^(L - 1 - r) k_r v_r^T,  S <- gamma^L S + sum_r gamma^(L - 1 - r) k_r v_r^T
def pair_sum_fp32(C=64):
    f = np.float32
    q32, k32, v32, do32 = (a.astype(f) for a in (q, k, v, do))
    gm = f(np.exp(g))
    S = s0.astype(f)          # s0 weighs gamma^(c0 - 1 - (-1)) = 1 at c0 = 0
    M = np.zeros((K, V), f)   # (c0 - 1 - (-1)) = c0 = 0 at the start
    total = np.float64(0)
    for c0 in range(0, T, C):
        L = min(C, T - c0)
        r = np.arange(L)
        qc, kc, vc, dc = q32[c0:c0 + L], k32[c0:c0 + L], v32[c0:c0 + L], do32[c0:c0 + L]
        pw = (gm ** (r + 1)).astype(f)
        qS = np.einsum("rk,kv,rv->r", qc, S, dc, dtype=f)
        qM = np.einsum("rk,kv,rv->r", qc, M, dc, dtype=f)
        inter = (f(sc) * pw * ((r + 1).astype(f) * qS + qM)).astype(f)
        rel = (r[:, None] - r[None, :])
        Dc = np.where(rel >= 0, gm ** np.maximum(rel, 0), 0).astype(f)
        intra = (f(sc) * (qc @ kc.T) * (dc @ vc.T) * Dc * rel.astype(f)).astype(f)
        total += np.float64(inter.sum(dtype=f)) + np.float64(intra.sum(dtype=f))
        wS = (gm ** (L - 1 - r)).astype(f)
        wM = ((L - 1 - r) * gm ** (L - 1 - r)).astype(f)
        M = (gm ** L * (M + f(L) * S) + (kc * wM[:, None]).T @ vc).astype(f)
        S = (gm ** L * S + (kc * wS[:, None]).T @ vc).astype(f)
    return total


pair = pair_sum_fp32()
print(f"{'pair sums in fp32 (chunks of 64, moment state)':44s}: |error| {abs(pair - exact):.3e} (dg {pair:.6f})")
