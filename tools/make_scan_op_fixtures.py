"""Writes the cross-check fixtures of the wkv4, linear_scan and conv1d op tests (tests/data/{wkv4,
linear_scan,conv1d}/*.npy) by running the public reference implementations named in OPS.md:

* wkv4: HF transformers' rwkv_linear_attention_cpu (models/rwkv/modeling_rwkv.py);
* linear_scan: recurrentgemma's torch RGLRU (recurrentgemma/torch/layers.py), its gates fed
  with given pre-activations, the scan accumulating in float64;
* conv1d: recurrentgemma's torch Conv1D, prefill with document masks, then decoding steps.

Gradients come from torch autograd through those same functions (SqrtBoundDerivative included).
Needs torch and transformers (the GPU machine has both) and a recurrentgemma checkout:

    python3 tools/make_scan_op_fixtures.py --recurrentgemma PATH --out tests/data

PATH holds recurrentgemma/torch/{layers,array_typing}.py. einops and jaxtyping are stubbed when
absent (layers.py uses them only in parts replaced here and in type annotations).
"""
import argparse
import os
import sys
import types

import numpy as np


def stub_missing_modules():
    try:
        import jaxtyping  # noqa: F401
    except ImportError:
        jt = types.ModuleType("jaxtyping")

        class _Any:
            def __getitem__(self, item):
                return object

        for name in ("Float", "Integer", "Bool", "Int"):
            setattr(jt, name, _Any())
        sys.modules["jaxtyping"] = jt
    try:
        import einops  # noqa: F401
    except ImportError:
        sys.modules["einops"] = types.ModuleType("einops")


def save(folder, name, array):
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, name + ".npy"), np.ascontiguousarray(array))


def wkv4_fixture(out, rng, torch):
    from transformers.models.rwkv.modeling_rwkv import rwkv_linear_attention_cpu

    B, T, C = 2, 37, 24
    # Keys rounded to float32: the reference casts k with .float(); everything else runs in float64.
    k = (rng.standard_normal((B, T, C)) * 3.0).astype(np.float32).astype(np.float64)
    k[0, 5, :4] = [60.0, -60.0, 45.0, -45.0]
    v = rng.standard_normal((B, T, C))
    time_decay = rng.uniform(-4.0, 2.0, C)
    time_decay[:3] = [-40.0, 6.0, 0.0]
    time_first = rng.standard_normal(C)
    b0 = rng.uniform(0.5, 3.0, (B, C))
    a0 = rng.standard_normal((B, C)) * b0
    p0 = rng.standard_normal((B, C))
    dy = rng.standard_normal((B, T, C))
    da, db, dp = (rng.standard_normal((B, C)) for _ in range(3))

    leaves = {n: torch.tensor(x, dtype=torch.float64, requires_grad=True)
              for n, x in dict(k=k, v=v, time_decay=time_decay, time_first=time_first, a0=a0, b0=b0, p0=p0).items()}
    y, state = rwkv_linear_attention_cpu(leaves["time_decay"], leaves["time_first"], leaves["k"], leaves["v"],
                                         state=[leaves["a0"], leaves["b0"], leaves["p0"]], return_state=True)
    loss = ((y * torch.tensor(dy)).sum() + (state[0] * torch.tensor(da)).sum() + (state[1] * torch.tensor(db)).sum()
            + (state[2] * torch.tensor(dp)).sum())
    loss.backward()
    folder = os.path.join(out, "wkv4")
    for n, x in dict(k=k, v=v, time_decay=time_decay, time_first=time_first, a0=a0, b0=b0, p0=p0, dy=dy, da=da,
                     db=db, dp=dp).items():
        save(folder, n, x)
    save(folder, "y", y.detach().numpy())
    for n, s in zip("abp", state):
        save(folder, n, s.detach().numpy())
    for n in ("k", "v", "time_decay", "time_first", "a0", "b0", "p0"):
        save(folder, "d" + n, leaves[n].grad.numpy())
    with torch.no_grad():
        y_fresh, _ = rwkv_linear_attention_cpu(leaves["time_decay"], leaves["time_first"], leaves["k"], leaves["v"])
    save(folder, "y_fresh", y_fresh.numpy())


def rg_lru_fixture(out, rng, torch, layers):
    B, T, C = 2, 37, 24
    x = rng.standard_normal((B, T, C))
    gate_x = rng.standard_normal((B, T, C)) * 2.0
    gate_a = rng.standard_normal((B, T, C)) * 2.0
    a_param = rng.uniform(-2.0, 6.0, C)
    a_param[:3] = [-18.0, -25.0, 12.0]  # a near 1 (the sqrt derivative is clipped) and a near 0
    h0 = rng.standard_normal((B, C))
    segment_pos = np.stack([np.arange(5, 5 + T), np.concatenate([np.arange(20), np.arange(T - 20)])]).astype(np.int32)
    dy = rng.standard_normal((B, T, C))
    dh = rng.standard_normal((B, C))

    scan = layers.rnn_scan
    layers.rnn_scan = lambda *a, **kw: scan(*a, **{**kw, "acc_dtype": torch.float64})
    lru = layers.RGLRU(width=C, num_heads=4, dtype=torch.float64)
    leaves = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for n, v in dict(x=x, gate_x=gate_x, gate_a=gate_a, a_param=a_param, h0=h0).items()}

    class given(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, _):
            return self.value

    lru.input_gate = given(leaves["gate_x"])
    lru.a_gate = given(leaves["gate_a"])
    lru.a_param = torch.nn.Parameter(leaves["a_param"])
    y, h = lru(leaves["x"], torch.tensor(segment_pos, dtype=torch.int64), cache=leaves["h0"], return_cache=True)
    ((y * torch.tensor(dy)).sum() + (h * torch.tensor(dh)).sum()).backward()
    layers.rnn_scan = scan
    folder = os.path.join(out, "linear_scan")
    for n, v in dict(x=x, gate_x=gate_x, gate_a=gate_a, a_param=a_param, h0=h0, segment_pos=segment_pos, dy=dy,
                     dh=dh).items():
        save(folder, n, v)
    save(folder, "y", y.detach().numpy())
    save(folder, "h", h.detach().numpy())
    save(folder, "dx", leaves["x"].grad.numpy())
    save(folder, "dgate_x", leaves["gate_x"].grad.numpy())
    save(folder, "dgate_a", leaves["gate_a"].grad.numpy())
    save(folder, "da_param", lru.a_param.grad.numpy())
    save(folder, "dh0", leaves["h0"].grad.numpy())


def conv1d_fixture(out, rng, torch, layers):
    B, T, C, W, steps = 2, 37, 24, 4, 3
    x = rng.standard_normal((B, T, C))
    w = rng.standard_normal((W, C)) * 0.5
    b = rng.standard_normal(C)
    # Document starts inside the prompt, one of them among its last W - 1 tokens (the cache then
    # holds zeros before it: the reference's in-place window masking leaves x so).
    segment_pos = np.stack([np.concatenate([np.arange(T - 2), np.arange(2)]),
                            np.concatenate([np.arange(9), np.arange(2), np.arange(T - 11)])]).astype(np.int32)
    x_steps = rng.standard_normal((B, steps, C))
    dy = rng.standard_normal((B, T, C))

    conv = layers.Conv1D(width=C, temporal_width=W, dtype=torch.float64)
    conv.w = torch.nn.Parameter(torch.tensor(w))
    conv.b = torch.nn.Parameter(torch.tensor(b))
    xl = torch.tensor(x, requires_grad=True)
    # A non-leaf copy: Conv1D masks its windows in place.
    y, cache = conv(xl * 1.0, torch.tensor(segment_pos, dtype=torch.int64), cache=None, return_cache=True)
    (y * torch.tensor(dy)).sum().backward()
    cache_prefill = cache.detach().numpy().copy()
    ys = []
    with torch.no_grad():
        for s in range(steps):
            pos = torch.tensor(segment_pos[:, -1:] + 1 + s, dtype=torch.int64)
            yt, cache = conv(torch.tensor(x_steps[:, s:s + 1]), pos, cache=cache, return_cache=True)
            ys.append(yt.detach().numpy())
    folder = os.path.join(out, "conv1d")
    for n, v in dict(x=x, weight=w, bias=b, segment_pos=segment_pos, x_steps=x_steps, dy=dy).items():
        save(folder, n, v)
    save(folder, "y", y.detach().numpy())
    save(folder, "dx", xl.grad.numpy())
    save(folder, "dweight", conv.w.grad.numpy())
    save(folder, "dbias", conv.b.grad.numpy())
    save(folder, "cache", cache_prefill)
    save(folder, "y_steps", np.concatenate(ys, axis=1))
    save(folder, "cache_after_steps", cache.detach().numpy())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recurrentgemma", required=True, help="folder holding recurrentgemma/torch/layers.py")
    ap.add_argument("--out", default="tests/data")
    args = ap.parse_args()
    import torch
    import transformers

    stub_missing_modules()
    sys.path.insert(0, args.recurrentgemma)
    from recurrentgemma.torch import layers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    rng = np.random.default_rng(20240607)
    wkv4_fixture(args.out, rng, torch)
    rg_lru_fixture(args.out, rng, torch, layers)
    conv1d_fixture(args.out, rng, torch, layers)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
