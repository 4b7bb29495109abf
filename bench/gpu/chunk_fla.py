#!/usr/bin/env python3
"""Times fla's chunk_simple_gla and chunk_gla (forward, forward+backward) at the issue #7 sizes,
for comparison with lrnn's CUDA chunk kernels (bench/decay_attn_cuda.md). On the GPU machine:
  PYTHONPATH=<dir holding fla> python3 bench/gpu/chunk_fla.py
Prints one line per (op, B, T): median ms of forward and of forward+backward (triton do_bench)."""
import sys
import torch
import torch.nn.functional as F
import triton

from fla.ops.simple_gla import chunk_simple_gla
from fla.ops.gla import chunk_gla
import fla.ops.common.chunk_o as fla_chunk_o

# fla refuses the gated chunk_bwd_dqkwg on Hopper with Triton 3.4-3.7.0 (its issue #640: wrong
# results). For timing only, let it run (the device image has Triton 3.6): the kernels and their
# run time are the same, the dq/dk/dg values may be wrong. Reported as such in decay_attn_cuda.md.
fla_chunk_o.TRITON_ABOVE_3_7_1 = True

H, K, V = 16, 128, 128
dev = "cuda"


def bench(fn, rep=200):
    return triton.testing.do_bench(fn, warmup=50, rep=rep, return_mode="median")


def main():
    torch.manual_seed(0)
    for B, T in [(8, 4096), (2, 16384)]:
        q = torch.randn(B, T, H, K, device=dev, dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(B, T, H, K, device=dev, dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(B, T, H, V, device=dev, dtype=torch.bfloat16, requires_grad=True)
        gs = F.logsigmoid(torch.randn(B, T, H, device=dev, dtype=torch.float32)).requires_grad_(True)
        gk = F.logsigmoid(torch.randn(B, T, H, K, device=dev, dtype=torch.float32)).requires_grad_(True)
        do = torch.randn(B, T, H, V, device=dev, dtype=torch.bfloat16)
        for name, fn, g in [("simple_gla", chunk_simple_gla, gs), ("gla", chunk_gla, gk)]:
            def fwd():
                with torch.no_grad():
                    return fn(q, k, v, g, output_final_state=False)[0]

            def fwdbwd():
                o = fn(q, k, v, g, output_final_state=False)[0]
                o.backward(do)

            try:
                tf = bench(fwd)
            except Exception as e:  # noqa: BLE001
                print(f"fla {name} fwd failed: {e}", flush=True)
                tf = float("nan")
            try:
                tfb = bench(fwdbwd)
            except Exception as e:  # noqa: BLE001
                print(f"fla {name} fwd+bwd failed: {str(e)[:200]}", flush=True)
                tfb = float("nan")
            # HBM floor of the forward: q, k, v, o (bf16) + g (fp32) read/written once.
            nbytes = 2 * B * T * H * (2 * K + 2 * V) + 4 * g.numel()
            print(f"fla {name:10s} B={B} T={T}: fwd {tf:.3f} ms  fwd+bwd {tfb:.3f} ms  fwd bytes {nbytes/1e9:.3f} GB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
