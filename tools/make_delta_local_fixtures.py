"""Writes the cross-check fixtures of the delta_rule and local_attn op tests (tests/data/delta_rule/
and tests/data/local_attn/, float64 .npy) from NumPy float64 ports of the public references named
in OPS.md, written from their published behaviour (no code copied):

* delta_rule: fla's fla/ops/delta_rule/naive.py (delta_rule_recurrence),
  fla/ops/gated_delta_rule/naive.py (naive_recurrent_gated_delta_rule and the chunked
  naive_chunk_gated_delta_rule), fla/ops/generalized_delta_rule/dplr/naive.py (dplr_recurrence);
* local_attn: recurrentgemma's torch LocalAttentionBlock (recurrentgemma/torch/modules.py):
  _apply_rope on the first half of each head, the forward-pass mask with segment ids from
  segment_pos == 0, the cache built from the prompt and decoding steps with the cache mask.

    python3 tools/make_delta_local_fixtures.py --out tests/data
"""
import argparse
import os

import numpy as np


# ---------------------------------------------------------------- delta rule (fla layouts noted)

def delta_recurrence(q, k, v, beta, s0):
    """fla delta_rule_recurrence on [B, H, T, *]: scale K^-0.5, u = beta (v - S^T k), S += k u^T."""
    b, h, l, dk = q.shape
    S = s0.copy()
    o = np.zeros(v.shape)
    q = q * dk ** -0.5
    for i in range(l):
        kk, vv = k[:, :, i], v[:, :, i]
        u = (vv - np.einsum('bhk,bhkv->bhv', kk, S)) * beta[:, :, i][..., None]
        S = S + kk[..., None] * u[..., None, :]
        o[:, :, i] = np.einsum('bhk,bhkv->bhv', q[:, :, i], S)
    return o, S


def gated_recurrence(q, k, v, beta, g, s0, scale):
    """fla naive_recurrent_gated_delta_rule on [B, T, H, *]: S *= e^g first, then the delta step."""
    q, k, v, beta, g = (x.transpose(0, 2, 1, *range(3, x.ndim)) for x in (q, k, v, beta, g))
    b, h, l, dk = q.shape
    S = s0.copy()
    o = np.zeros(v.shape)
    q = q * scale
    for i in range(l):
        S = S * np.exp(g[:, :, i])[..., None, None]
        kk = k[:, :, i]
        u = (v[:, :, i] - np.einsum('bhk,bhkv->bhv', kk, S)) * beta[:, :, i][..., None]
        S = S + kk[..., None] * u[..., None, :]
        o[:, :, i] = np.einsum('bhk,bhkv->bhv', q[:, :, i], S)
    return o.transpose(0, 2, 1, 3), S


def gated_chunk(q, k, v, beta, g, s0, scale, C):
    """fla naive_chunk_gated_delta_rule: padded chunks of C, (I + A)^{-1} by forward substitution."""
    q, k, v, beta, g = (x.transpose(0, 2, 1, *range(3, x.ndim)) for x in (q, k, v, beta, g))
    T = q.shape[2]
    pad = (C - T % C) % C
    padw = lambda x: np.pad(x, [(0, 0), (0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 3))
    q, k, v, beta, g = map(padw, (q, k, v, beta, g))
    b, h, l, dk = q.shape
    n = l // C
    q = q * scale
    vb = v * beta[..., None]
    kb = k * beta[..., None]
    r = lambda x: x.reshape(b, h, n, C, *x.shape[3:])
    q, k, vb, kb, g = map(r, (q, k, vb, kb, g))
    G = np.cumsum(g, -1)
    diff = G[..., :, None] - G[..., None, :]
    Lm = np.where(np.tril(np.ones((C, C), bool)), np.exp(np.where(np.tril(np.ones((C, C), bool)), diff, 0)), 0)
    strict = np.tril(np.ones((C, C), bool), -1)
    A = np.where(strict, -(kb @ np.swapaxes(k, -1, -2)) * Lm, 0)
    for i in range(1, C):
        A[..., i, :i] = A[..., i, :i] + (A[..., i, :i, None] * A[..., :i, :i]).sum(-2)
    A = A + np.eye(C)
    U = A @ vb
    Wm = A @ (kb * np.exp(G)[..., None])
    S = s0.copy()
    o = np.zeros(U.shape)
    for i in range(n):
        att = np.where(np.tril(np.ones((C, C), bool)), (q[:, :, i] @ np.swapaxes(k[:, :, i], -1, -2)) * Lm[:, :, i], 0)
        vnew = U[:, :, i] - Wm[:, :, i] @ S
        o[:, :, i] = (q[:, :, i] * np.exp(G[:, :, i])[..., None]) @ S + att @ vnew
        last = G[:, :, i, -1]
        S = S * np.exp(last)[..., None, None] + np.swapaxes(k[:, :, i] * np.exp(last[..., None] - G[:, :, i])[..., None], -1, -2) @ vnew
    o = o.reshape(b, h, l, -1)[:, :, :T]
    return o.transpose(0, 2, 1, 3), S


def dplr_recurrence(q, k, v, alpha, beta, gk, s0):
    """fla dplr_recurrence on [B, H, T, *]: S = S e^gk + k v^T + beta (alpha^T S_old); scale K^-0.5."""
    b, h, l, dk = q.shape
    S = s0.copy()
    o = np.zeros(v.shape)
    q = q * dk ** -0.5
    for i in range(l):
        kv = k[:, :, i][..., None] * v[:, :, i][..., None, :]
        kv = kv + np.einsum('bhk,bhkv->bhv', alpha[:, :, i], S)[..., None, :] * beta[:, :, i][..., None]
        S = S * np.exp(gk[:, :, i])[..., None] + kv
        o[:, :, i] = np.einsum('bhk,bhkv->bhv', q[:, :, i], S)
    return o, S


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_delta(out, rng):
    d = os.path.join(out, 'delta_rule')
    os.makedirs(d, exist_ok=True)
    save = lambda name, x: np.save(os.path.join(d, name + '.npy'), np.ascontiguousarray(x, dtype=np.float64))
    B, T, H, K, V = 2, 37, 2, 16, 12
    bthk = lambda: rng.standard_normal((B, T, H, K))
    q, k = unit(bthk()), unit(bthk())
    v = rng.standard_normal((B, T, H, V))
    beta = rng.uniform(0.05, 1.0, (B, T, H))
    g = rng.uniform(-1.0, 0.0, (B, T, H))
    s0 = 0.5 * rng.standard_normal((B, H, K, V))
    for name, x in dict(q=q, k=k, v=v, beta=beta, g=g, s0=s0).items():
        save(name, x)
    tr = lambda x: x.transpose(0, 2, 1, *range(3, x.ndim))
    o, S = delta_recurrence(tr(q), tr(k), tr(v), tr(beta), s0)
    save('delta_o', tr(o)), save('delta_s', S)
    o, S = gated_recurrence(q, k, v, beta, g, s0, K ** -0.5)
    save('gated_o', o), save('gated_s', S)
    o2, S2 = gated_chunk(q, k, v, beta, g, s0, K ** -0.5, 16)
    assert np.abs(o2 - o).max() < 1e-10 and np.abs(S2 - S).max() < 1e-10
    save('gated_chunk_o', o2), save('gated_chunk_s', S2)
    kappa = unit(bthk())
    alpha = -kappa
    bb = kappa * rng.uniform(0, 1, (B, T, H, K))
    w = -np.exp(-0.5) / (1 + np.exp(-rng.standard_normal((B, T, H, K))))
    kd = 0.3 * bthk()
    for name, x in dict(dplr_k=kd, dplr_a=alpha, dplr_b=bb, dplr_w=w).items():
        save(name, x)
    o, S = dplr_recurrence(tr(q), tr(kd), tr(v), tr(alpha), tr(bb), tr(w), s0)
    save('dplr_o', tr(o)), save('dplr_s', S)


# ---------------------------------------------------------------- local attention (recurrentgemma)

MIN_LOGIT = -2.3819763e38


def apply_rope(x, positions, max_wavelength=10000):
    """_apply_rope: rotate_half on the first half of the head dim; positions [B, T]."""
    b, t = positions.shape
    half = x.shape[-1] // 2
    x_rope, rest = x[..., :half], x[..., half:]
    pos = positions.reshape(b, t, 1, 1).astype(np.float64)
    freq = np.arange(half // 2)
    inv = 1.0 / max_wavelength ** (2 * freq / half)
    ang = pos * inv
    s, c = np.sin(ang), np.cos(ang)
    x1, x2 = x_rope[..., :half // 2], x_rope[..., half // 2:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s, rest], -1)


def causal_mask(qp, kp, window, qs, ks):
    same = qs[..., :, None] == ks[..., None, :] if qs is not None else (kp >= 0)[..., None, :]
    return same & (qp[..., :, None] >= kp[..., None, :]) & (qp[..., :, None] <= kp[..., None, :] + window)


def attend(q, k, v, mask):
    hq = q.shape[2]
    k = np.repeat(k, hq, 2) if k.shape[2] == 1 else k
    v = np.repeat(v, hq, 2) if v.shape[2] == 1 else v
    logits = np.einsum('btnh,bsnh->bnts', q, k) * q.shape[-1] ** -0.5
    logits = np.where(mask[:, None], logits, MIN_LOGIT)
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    p = p / p.sum(-1, keepdims=True)
    return np.einsum('bnts,bsnh->btnh', p, v)


def write_local(out, rng):
    d = os.path.join(out, 'local_attn')
    os.makedirs(d, exist_ok=True)
    save = lambda name, x, dt=np.float64: np.save(os.path.join(d, name + '.npy'), np.ascontiguousarray(x, dtype=dt))
    B, T, Hq, D, W, steps = 2, 12, 3, 8, 4, 3
    q = rng.standard_normal((B, T, Hq, D))
    k = rng.standard_normal((B, T, 1, D))
    v = rng.standard_normal((B, T, 1, D))
    seg = np.stack([np.arange(T), np.concatenate([np.arange(5), np.arange(T - 5)])]).astype(np.int32)
    qr, kr = apply_rope(q, seg), apply_rope(k, seg)
    seg_ids = np.cumsum(seg == 0, -1)
    pos = np.repeat(np.arange(T)[None], B, 0)
    o = attend(qr, kr, v, causal_mask(pos, pos, W, seg_ids, seg_ids))
    for name, x in dict(q=q, k=k, v=v, o=o).items():
        save(name, x)
    save('segment_pos', seg, np.int32)
    save('window', np.array([W]), np.int64)
    # Cache from the prompt (_attention_cache_from_prompt), then decoding steps.
    num = seg[:, -1] + 1
    kc = np.zeros((B, W, 1, D))
    vc = np.zeros((B, W, 1, D))
    for b in range(B):
        kc[b] = np.roll(kr[b, -W:], num[b] % W, 0)
        vc[b] = np.roll(v[b, -W:], num[b] % W, 0)
    sq = rng.standard_normal((B, steps, Hq, D))
    sk = rng.standard_normal((B, steps, 1, D))
    sv = rng.standard_normal((B, steps, 1, D))
    spos = (num[:, None] + np.arange(steps)[None]).astype(np.int32)
    so = np.zeros((B, steps, Hq, D))
    for s in range(steps):
        p1 = spos[:, s:s + 1]
        q1, k1 = apply_rope(sq[:, s:s + 1], p1), apply_rope(sk[:, s:s + 1], p1)
        qpos = num[:, None]
        kk_ = num[:, None] // W
        idx = np.arange(W)[None]
        now, prev = idx + kk_ * W, idx + (kk_ - 1) * W
        kpos = np.where(now < num[:, None], now, prev)
        kpos = np.concatenate([kpos, qpos], -1)
        mask = causal_mask(qpos, kpos, W, None, None)
        so[:, s:s + 1] = attend(q1, np.concatenate([kc, k1], 1), np.concatenate([vc, sv[:, s:s + 1]], 1), mask)
        slot = num % W
        kc[np.arange(B), slot] = k1[:, 0]
        vc[np.arange(B), slot] = sv[:, s]
        num = num + 1
    for name, x in dict(step_q=sq, step_k=sk, step_v=sv, step_o=so).items():
        save(name, x)
    save('step_pos', spos, np.int32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/data')
    args = ap.parse_args()
    rng = np.random.default_rng(20240611)
    write_delta(args.out, rng)
    write_local(args.out, rng)


if __name__ == '__main__':
    main()
