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
