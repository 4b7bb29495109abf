"""Writes the decay_attn cross-check fixtures (tests/data/decay_attn/, float64 .npy) from NumPy
float64 ports of the public references named in OPS.md section 1, written from their published
behaviour (no code copied): fla (fla-org/flash-linear-attention @ bc3b101) and NX-AI mlstm_kernels.
The real PyTorch functions could not be run here (the PyPI torch wheel needs the CUDA libraries).

    python3 tools/decay_attn_crosscheck.py --out tests/data/decay_attn
"""
import argparse
import os

import numpy as np

B, T, H, K, V = 1, 37, 2, 8, 12


def logsigmoid(x):
    return np.where(x > 0, -np.log1p(np.exp(-x)), x - np.log1p(np.exp(x)))


def bthd_to_bhtd(x):
    return np.ascontiguousarray(np.swapaxes(x, 1, 2))


# ---------------------------------------------------------------- fla (layouts as in each file)

def fla_naive_retention(q, k, v):
    """fla/ops/retention/naive.py naive_retention on [B, H, T, D]: gamma_h = 1 - 2^(-5-h), scale
    D^-0.5, o = ((q k^T) * gamma^(t-s) [s <= t]) v. (fla evaluates the decay in float32.)"""
    _, nh, nt, d = q.shape
    log_gamma = np.log(1.0 - 2.0 ** (-5.0 - np.arange(nh)))
    idx = np.arange(nt)
    dist = idx[:, None] - idx[None, :]
    decay = np.where(dist >= 0, np.exp(np.maximum(dist, 0)[None] * log_gamma[:, None, None]), 0.0)
    scores = np.einsum('bhtd,bhsd->bhts', q * d ** -0.5, k) * decay[None]
    return np.einsum('bhts,bhsv->bhtv', scores, v)


def fla_naive_recurrent_simple_gla(q, k, v, g, scale, s0):
    """fla/ops/simple_gla/naive.py naive_recurrent_simple_gla on [B, T, H, *], g [B, T, H] (log)."""
    q, k, v, g = (bthd_to_bhtd(x) for x in (q, k, v, g))
    S = s0.copy()
    o = np.zeros(v.shape)
    for t in range(q.shape[2]):
        S = S * np.exp(g[:, :, t])[..., None, None] + k[:, :, t, :, None] * v[:, :, t, None, :]
        o[:, :, t] = np.einsum('bhk,bhkv->bhv', q[:, :, t] * scale, S)
    return np.swapaxes(o, 1, 2), S


def fla_naive_chunk_simple_gla(q, k, v, g, scale, s0, C):
    """fla/ops/simple_gla/naive.py naive_chunk_simple_gla: zero-padded chunks of C, pairwise decay
    mask inside a chunk, state passed between chunks (used here to check the recurrent port)."""
    q, k, v, g = (bthd_to_bhtd(x) for x in (q, k, v, g))
    nt = q.shape[2]
    pad = (C - nt % C) % C
    q, k, v = (np.pad(x, [(0, 0), (0, 0), (0, pad), (0, 0)]) for x in (q, k, v))
    g = np.pad(g, [(0, 0), (0, 0), (0, pad)])
    S = s0.copy()
    o = np.zeros(v.shape)
    for c0 in range(0, nt + pad, C):
        sl = slice(c0, c0 + C)
        qc, kc, vc, G = q[:, :, sl] * scale, k[:, :, sl], v[:, :, sl], np.cumsum(g[:, :, sl], -1)
        mask = np.tril(np.exp(np.tril(G[..., :, None] - G[..., None, :])))
        attn = np.einsum('bhik,bhjk->bhij', qc, kc) * mask
        o[:, :, sl] = np.einsum('bhik,bhkv->bhiv', qc * np.exp(G)[..., None], S) + attn @ vc
        S = S * np.exp(G[..., -1])[..., None, None] + \
            np.einsum('bhjk,bhjv->bhkv', kc * np.exp(G[..., -1:] - G)[..., None], vc)
    return np.swapaxes(o[:, :, :nt], 1, 2), S


def fla_naive_recurrent_gla(q, k, v, gk, s0):
    """fla/ops/gla/naive.py naive_recurrent_gla on [B, T, H, *], gk log gate per key, scale K^-0.5."""
    q, k, v, gk = (bthd_to_bhtd(x) for x in (q, k, v, gk))
    scale = q.shape[-1] ** -0.5
    S = s0.copy()
    o = np.zeros(v.shape)
    for t in range(q.shape[2]):
        S = S * np.exp(gk[:, :, t])[..., None] + k[:, :, t, :, None] * v[:, :, t, None, :]
        o[:, :, t] = (q[:, :, t, :, None] * scale * S).sum(-2)
    return np.swapaxes(o, 1, 2), S


def fla_naive_recurrent_rwkv6(q, k, v, w, u, scale, s0):
    """fla/ops/rwkv6/recurrent_naive.py naive_recurrent_rwkv6 on [B, H, T, *] (head first): w is the
    log decay (exp(w) multiplies the state), the output reads S_{t-1} + u k_t v_t^T, then the update."""
    S = s0.copy()
    o = np.zeros(v.shape)
    for t in range(q.shape[2]):
        kv = k[:, :, t, :, None] * v[:, :, t, None, :]
        o[:, :, t] = ((S + u[None, :, :, None] * kv) * (q[:, :, t] * scale)[..., None]).sum(-2)
        S = S * np.exp(w[:, :, t])[..., None] + kv
    return o, S


# ---------------------------------------------------------------- mlstm_kernels ([B, NH, S, D])

def mlstm_recurrent_step(C, n, m, q, k, v, i_pre, f_pre, eps=1e-6):
    """mlstm_kernels/torch/recurrent/native_step.py mlstm_recurrent_step__native_fw: one token;
    i_pre, f_pre are pre-activations [B, NH, 1]; logsigmoid on f inside; stabiliser m."""
    log_f = logsigmoid(f_pre)
    m_next = np.maximum(log_f + m, i_pre)
    f_act = np.exp(log_f + m - m_next)
    i_act = np.exp(i_pre - m_next)
    qs = q * q.shape[-1] ** -0.5
    C_next = f_act[..., None] * C + i_act[..., None] * (k[..., :, None] * v[..., None, :])
    n_next = f_act * n + i_act * k
    num = np.einsum('bhk,bhkv->bhv', qs, C_next)
    qn = np.einsum('bhk,bhk->bh', qs, n_next)[..., None]
    den = np.maximum(np.abs(qn), np.exp(-m_next)) + eps
    return num / den, C_next, n_next, m_next


def mlstm_recurrent_sequence(q, k, v, i_pre, f_pre, C0, n0, m0):
    """The step above applied token by token (mlstm_kernels' recurrent sequence loop)."""
    C, n, m = C0.copy(), n0.copy(), m0[..., None].copy()
    h = np.zeros(v.shape)
    for t in range(q.shape[2]):
        h[:, :, t], C, n, m = mlstm_recurrent_step(C, n, m, q[:, :, t], k[:, :, t], v[:, :, t],
                                                   i_pre[:, :, t, None], f_pre[:, :, t, None])
    return h, C, n, m[..., 0]


def mlstm_parallel_fw(q, k, v, i_pre, f_pre, eps=1e-6):
    """mlstm_kernels/torch/parallel/native/fw.py mlstm_parallel_fw: log D_ts = sum_{r=s+1..t}
    logsigmoid(f_r) + i_s (s <= t), m_t = max_s log D_ts (no initial term), normaliser
    max(|rowsum|, exp(-m_t)). Returns h and m."""
    nt, d = q.shape[2], q.shape[3]
    F = np.cumsum(logsigmoid(f_pre), -1)
    log_d = np.where(np.tril(np.ones((nt, nt), bool)), F[..., :, None] - F[..., None, :], -np.inf) + i_pre[..., None, :]
    m = log_d.max(-1, keepdims=True)
    c_tilde = np.einsum('bhtd,bhsd->bhts', q, k) * d ** -0.5 * np.exp(log_d - m)
    den = np.maximum(np.abs(c_tilde.sum(-1, keepdims=True)), np.exp(-m))
    return (c_tilde / (den + eps)) @ v, m[..., 0]


def mlstm_siging_parallel_fw(q, k, v, i_pre, f_pre, eps=1e-6):
    """mlstm_kernels/torch/parallel/native_siging/fw.py mlstm_siging_parallel_fw with
    stable_fgate=True, normalize=True: log D_ts = sum_{r=s+1..t} logsigmoid(f_r) + logsigmoid(i_s),
    no stabiliser, normaliser max(|rowsum|, 1)."""
    nt, d = q.shape[2], q.shape[3]
    lf = logsigmoid(f_pre)
    # stable_fgate: sum over r in (s, t] by a cumulative sum down the lower triangle (no differences).
    tri = np.tril(np.broadcast_to(lf[..., :, None], lf.shape + (nt,)), -1)
    log_f = np.cumsum(tri, -2)
    log_d = np.where(np.tril(np.ones((nt, nt), bool)), log_f, -np.inf) + logsigmoid(i_pre)[..., None, :]
    c_tilde = np.einsum('bhtd,bhsd->bhts', q, k) * d ** -0.5 * np.exp(log_d)
    den = np.maximum(np.abs(c_tilde.sum(-1, keepdims=True)), 1.0)
    return (c_tilde / (den + eps)) @ v


# ---------------------------------------------------------------- fixtures (lrnn layout [B, T, H, *])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/data/decay_attn')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(20260822)
    files = {}
    q = rng.standard_normal((B, T, H, K))
    k = rng.standard_normal((B, T, H, K))
    v = rng.standard_normal((B, T, H, V))
    s0 = 0.5 * rng.standard_normal((B, H, K, V))
    n0 = 0.5 * rng.standard_normal((B, H, K))
    m0 = rng.standard_normal((B, H))
    files.update(q=q, k=k, v=v, s0=s0, n0=n0, m0=m0)
    zero_s = np.zeros_like(s0)
    to_bthd = lambda x: np.ascontiguousarray(np.swapaxes(x, 1, 2))

    # RetNet: fla naive_retention (no initial state); lrnn g = log(gamma_h).
    files['retnet_g'] = np.log(1.0 - 2.0 ** (-5.0 - np.arange(H)))
    files['retnet_o'] = to_bthd(fla_naive_retention(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v)))

    # simple GLA (scalar gate), initial state, default scale.
    g = logsigmoid(rng.standard_normal((B, T, H)) + 1.0)
    o, s = fla_naive_recurrent_simple_gla(q, k, v, g, K ** -0.5, s0)
    oc, sc = fla_naive_chunk_simple_gla(q, k, v, g, K ** -0.5, s0, 16)
    assert np.abs(o - oc).max() < 1e-12 and np.abs(s - sc).max() < 1e-12, 'simple_gla ports disagree'
    files.update(simple_gla_g=g, simple_gla_o=o, simple_gla_s=s)

    # GLA (per-key gate, log space), initial state.
    gk = logsigmoid(rng.standard_normal((B, T, H, K)) + 1.0)
    o, s = fla_naive_recurrent_gla(q, k, v, gk, s0)
    files.update(gla_g=gk, gla_o=o, gla_s=s)

    # RWKV-6: w = -exp(d) is the log decay; bonus u; scale 1 (RWKV); initial state.
    w = -np.exp(0.5 * rng.standard_normal((B, T, H, K)) - 1.0)
    u = 0.5 * rng.standard_normal((H, K))
    o, s = fla_naive_recurrent_rwkv6(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), bthd_to_bhtd(w), u, 1.0, s0)
    files.update(rwkv6_g=w, rwkv6_u=u, rwkv6_o=to_bthd(o), rwkv6_s=s)

    # mLSTM, exponential input gate: recurrent steps from (s0, n0, m0); lrnn g = logsigmoid(f~), i = i~.
    f_pre = rng.normal(2.0, 1.5, (B, T, H))
    i_pre = rng.normal(0.0, 2.0, (B, T, H))
    fh, ih = bthd_to_bhtd(f_pre), bthd_to_bhtd(i_pre)
    h, C, n, m = mlstm_recurrent_sequence(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), ih, fh, s0, n0, m0)
    files.update(mlstm_g=logsigmoid(f_pre), mlstm_i=i_pre, mlstm_o=to_bthd(h), mlstm_s=C, mlstm_n=n, mlstm_m=m)

    # mLSTM parallel form (no state; m_t = max_s log D_ts). lrnn reproduces it from the initial state
    # S = 0, n = 0, m0 = -1e4 (then m_1 = i_1). Also measured: lrnn's default m0 = 0 against it.
    hp, mp = mlstm_parallel_fw(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), ih, fh)
    files.update(mlstm_par_o=to_bthd(hp), mlstm_par_m=mp[..., -1])
    h0, _, _, _ = mlstm_recurrent_sequence(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), ih, fh, zero_s,
                                           np.zeros_like(n0), np.zeros_like(m0))
    hm, _, _, _ = mlstm_recurrent_sequence(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), ih, fh, zero_s,
                                           np.zeros_like(n0), np.full_like(m0, -1e4))
    print(f'mlstm parallel vs recurrent(m0=-1e4): {np.abs(hp - hm).max():.3e}   vs recurrent(m0=0): {np.abs(hp - h0).max():.3e}')

    # mLSTM with sigmoid input gate (parallel, normalised); lrnn i = logsigmoid(i~).
    fs_pre = rng.normal(2.0, 1.5, (B, T, H))
    is_pre = rng.normal(0.0, 2.0, (B, T, H))
    hs = mlstm_siging_parallel_fw(bthd_to_bhtd(q), bthd_to_bhtd(k), bthd_to_bhtd(v), bthd_to_bhtd(is_pre), bthd_to_bhtd(fs_pre))
    files.update(mlstm_sig_g=logsigmoid(fs_pre), mlstm_sig_i=logsigmoid(is_pre), mlstm_sig_o=to_bthd(hs))

    total = 0
    for name, arr in files.items():
        path = os.path.join(a.out, name + '.npy')
        np.save(path, np.ascontiguousarray(arr, dtype=np.float64))
        total += os.path.getsize(path)
    print(f'wrote {len(files)} files, {total} bytes, to {a.out}')


if __name__ == '__main__':
    main()
