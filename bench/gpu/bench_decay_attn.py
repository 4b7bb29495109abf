"""decay_attn on the GPU: lrnn (C ABI through ctypes on torch tensors' data_ptr()) against fla's
chunk_simple_gla / chunk_gla / chunk_rwkv6, mlstm_kernels TFLA (xl_chunk) and PyTorch SDPA flash attention, in one
process on identical bf16 inputs; the lrnn decode step's state bandwidth; the memory floor (bytes
that must move / device-to-device copy bandwidth measured in the same run).

Usage (on the GPU machine, scripts/gpu/run_all.sh calls it):
  PYTHONPATH=.carry/py python3 bench/gpu/bench_decay_attn.py --lib path/liblrnn.so --out DIR
Writes DIR/bench.json and DIR/bench.md; prints the table last. Timing: CUDA events around each call
after warm-up, median of the repeats.
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time
import traceback

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/out"))
ap.add_argument("--shapes", default="8x4096 2x16384", help="BxT list")
ap.add_argument("--reps", type=int, default=30)
ap.add_argument("--skip-tfla", action="store_true")
ap.add_argument("--skip", default="", help="comma-separated ops not to time (e.g. fla_chunk_gla)")
ap.add_argument("--only", default="", help="comma-separated ops to time, none else (e.g. lrnn_mlstm, for a profiler)")
ap.add_argument("--tfla-probe", default="", help=argparse.SUPPRESS)
ap.add_argument("--triton-cache", default="",
                help="directory for Triton's kernel cache with autotuning results kept (TRITON_CACHE_AUTOTUNING): "
                     "fla's chunk_gla autotunes for minutes on a fresh machine; a cache carried from an earlier "
                     "run on the same GPU model and Triton skips that (bench/gpu/README.md)")
ap.add_argument("--profile", default="",
                help="comma-separated ops (e.g. lrnn_mlstm) to profile after timing: their forward+backward under "
                     "torch.profiler, the GPU kernels' times into DIR/profile_<op>_<B>x<T>.txt")
args = ap.parse_args()
if args.triton_cache:
    os.makedirs(args.triton_cache, exist_ok=True)
    os.environ["TRITON_CACHE_DIR"] = os.path.abspath(args.triton_cache)
    os.environ["TRITON_CACHE_AUTOTUNING"] = "1"
dev = "cuda"
H, D = 16, 128
bf = torch.bfloat16

# ---------------------------------------------------------------- TFLA probe (child process)
if args.tfla_probe:
    # Compiles and runs TFLA once, fwd + bwd, at one shape: a Triton compiler crash (an LLVM
    # assertion aborts the process) must not take the benchmark down.
    B, T = map(int, args.tfla_probe.split("x"))
    from mlstm_kernels.torch import get_mlstm_kernel
    k = get_mlstm_kernel("chunkwise--triton_xl_chunk")
    q, kk, v = [torch.randn(B, H, T, D, device=dev, dtype=bf, requires_grad=True) for _ in range(3)]
    i = torch.randn(B, H, T, device=dev, dtype=bf, requires_grad=True)
    f = (torch.randn(B, H, T, device=dev, dtype=bf) + 3).requires_grad_(True)
    o = k(q=q, k=kk, v=v, i=i, f=f, chunk_size=128)
    o.backward(torch.randn_like(o))
    torch.cuda.synchronize()
    print("TFLA_PROBE_OK")
    sys.exit(0)

os.makedirs(args.out, exist_ok=True)
results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": [], "notes": []}


def save():
    with open(os.path.join(args.out, "bench.json"), "w") as fh:
        json.dump(results, fh, indent=1)


def note(msg):
    print(msg, flush=True)
    results["notes"].append(msg)
    save()


def time_ms(fn, warmup=5, reps=None):
    reps = reps or args.reps
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in ev:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    ts = sorted(s.elapsed_time(e) for s, e in ev)
    return ts[len(ts) // 2]


# ---------------------------------------------------------------- ceilings
x = torch.empty(2 ** 30, dtype=torch.uint8, device=dev)
y = torch.empty_like(x)
t = time_ms(lambda: y.copy_(x), reps=50)
COPY_BW = 2 * x.numel() / t / 1e6  # GB/s, bytes read + written
del x, y
a = torch.randn(8192, 8192, dtype=bf, device=dev)
b = torch.randn_like(a)
t = time_ms(lambda: a @ b, reps=20)
MM_TFLOPS = 2 * 8192 ** 3 / t / 1e9
del a, b
torch.cuda.empty_cache()
results["copy_bw_GBps"] = COPY_BW
results["bf16_matmul_TFLOPs"] = MM_TFLOPS
note(f"device {results['device']}, torch {torch.__version__}; copy {COPY_BW:.0f} GB/s, bf16 8192^3 matmul {MM_TFLOPS:.0f} TFLOP/s")

# ---------------------------------------------------------------- lrnn through its C ABI
class Spec(ctypes.Structure):
    _fields_ = [("decay", ctypes.c_int32), ("bonus", ctypes.c_int32), ("input_gate", ctypes.c_int32),
                ("normalizer", ctypes.c_int32), ("scale", ctypes.c_double), ("eps", ctypes.c_double)]


class Args(ctypes.Structure):
    _fields_ = [("B", ctypes.c_int64), ("T", ctypes.c_int64), ("H", ctypes.c_int64), ("K", ctypes.c_int64),
                ("V", ctypes.c_int64), ("dtype", ctypes.c_int32), ("gate_dtype", ctypes.c_int32),
                ("device", ctypes.c_int32), ("reserved", ctypes.c_int32), ("q", ctypes.c_void_p),
                ("k", ctypes.c_void_p), ("v", ctypes.c_void_p), ("g", ctypes.c_void_p), ("i", ctypes.c_void_p),
                ("u", ctypes.c_void_p), ("cu_seqlens", ctypes.c_void_p), ("N", ctypes.c_int64),
                ("chunk_size", ctypes.c_int64), ("den", ctypes.c_void_p), ("fwd_o", ctypes.c_void_p),
                ("ctx", ctypes.c_void_p), ("ctx_bytes", ctypes.c_int64)]


class State(ctypes.Structure):
    _fields_ = [("s", ctypes.c_void_p), ("n", ctypes.c_void_p), ("m", ctypes.c_void_p)]


class MemStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("bytes_in_use", "peak_bytes_in_use", "bytes_cached", "bytes_reserved",
                                               "num_cuda_malloc", "num_reused", "num_cuda_free")]


LRNN_F32, LRNN_BF16 = 0, 1
VARIANT = {"retnet": 0, "simple_gla": 1, "gla": 2, "rwkv6": 3, "mlstm": 4, "mlstm_sig": 5}
lib = None
try:
    lib = ctypes.CDLL(os.path.abspath(args.lib))
    lib.lrnn_version.restype = ctypes.c_char_p
    lib.lrnn_last_error.restype = ctypes.c_char_p
    vp = ctypes.c_void_p
    lib.lrnn_decay_attn_forward.argtypes = [ctypes.POINTER(Spec), ctypes.POINTER(Args), ctypes.POINTER(State), vp,
                                            ctypes.POINTER(State)]
    lib.lrnn_decay_attn_backward.argtypes = [ctypes.POINTER(Spec), ctypes.POINTER(Args), ctypes.POINTER(State), vp,
                                             ctypes.POINTER(State), vp, vp, vp, vp, vp, vp, ctypes.POINTER(State)]
    lib.lrnn_decay_attn_step.argtypes = [ctypes.POINTER(Spec), ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                         vp, vp, vp, vp, vp, vp, ctypes.POINTER(State), vp]
    lib.lrnn_cuda_set_stream.argtypes = [ctypes.c_int32, vp]
    lib.lrnn_cuda_memory_stats.argtypes = [ctypes.c_int32, ctypes.POINTER(MemStats)]
    note(f"lrnn {lib.lrnn_version().decode()} loaded from {args.lib}; CUDA devices seen: {lib.lrnn_cuda_device_count()}")
    # lrnn work goes on torch's current stream, so events and ordering agree.
    lib.lrnn_cuda_set_stream(torch.cuda.current_device(), ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
except Exception as e:  # noqa: BLE001
    note(f"lrnn library not loadable: {e!r}")
    lib = None


def lrnn_err():
    return lib.lrnn_last_error().decode(errors="replace")


def spec_for(name):
    s = Spec()
    rc = lib.lrnn_decay_attn_spec_for(VARIANT[name], ctypes.byref(s))
    assert rc == 0, lrnn_err()
    return s


def ptr(t):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


def lrnn_args(q, k, v, g=None, i=None, u=None):
    B, T, Hh, K = q.shape
    a = Args()
    a.B, a.T, a.H, a.K, a.V = B, T, Hh, K, v.shape[-1]
    a.dtype, a.gate_dtype, a.device = LRNN_BF16, LRNN_F32, q.device.index or 0
    a.q, a.k, a.v = q.data_ptr(), k.data_ptr(), v.data_ptr()
    a.g = g.data_ptr() if g is not None else None
    a.i = i.data_ptr() if i is not None else None
    a.u = u.data_ptr() if u is not None else None
    a.chunk_size = 0
    return a


class LrnnOp:
    """lrnn decay_attn through the C ABI; `ok` False with the ABI's message when it refuses."""

    def __init__(self, variant, q, k, v, g=None, i=None, save=True, u=None):
        self.spec = spec_for(variant)
        self.a = lrnn_args(q, k, v, g, i, u)
        self.q, self.k, self.v, self.g, self.i, self.u = q, k, v, g, i, u
        self.o = torch.empty_like(v)
        self.do = torch.randn_like(v)
        self.dq, self.dk, self.dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        self.dg = torch.empty_like(g, dtype=torch.float32) if g is not None else None
        self.di = torch.empty_like(i, dtype=torch.float32) if i is not None else None
        self.du = torch.empty_like(u, dtype=torch.float32) if u is not None else None

        # Training keeps the normaliser's den and the forward's context (args.ctx: mLSTM's stabiliser,
        # the segment-boundary states of long sequences) for the backward, as autograd would.
        # (save=False: the backward recomputes them instead, the A/B of that choice.)
        self.den = torch.empty(q.shape[:3], dtype=torch.float32, device=q.device) if self.spec.normalizer and save else None
        self.at = lrnn_args(q, k, v, g, i, u)
        if self.den is not None:
            self.at.den, self.at.fwd_o = self.den.data_ptr(), self.o.data_ptr()
        self.ctx = None
        if save:
            nb = ctypes.c_int64(0)
            if lib.lrnn_decay_attn_ctx_bytes(ctypes.byref(self.spec), ctypes.byref(self.at), ctypes.byref(nb)) != 0:
                raise RuntimeError(f"lrnn_decay_attn_ctx_bytes: {lrnn_err()}")
            if nb.value > 0:
                self.ctx = torch.empty(nb.value, dtype=torch.uint8, device=q.device)
                self.at.ctx, self.at.ctx_bytes = self.ctx.data_ptr(), nb.value

    def fwd(self, a=None):
        rc = lib.lrnn_decay_attn_forward(ctypes.byref(self.spec), ctypes.byref(a or self.a), None, ptr(self.o), None)
        if rc != 0:
            raise RuntimeError(f"lrnn_decay_attn_forward returned {rc}: {lrnn_err()}")
        return self.o

    def fwdbwd(self):
        self.fwd(self.at)
        rc = lib.lrnn_decay_attn_backward(ctypes.byref(self.spec), ctypes.byref(self.at), None, ptr(self.do), None,
                                          ptr(self.dq), ptr(self.dk), ptr(self.dv), ptr(self.dg), ptr(self.di), ptr(self.du),
                                          None)
        if rc != 0:
            raise RuntimeError(f"lrnn_decay_attn_backward returned {rc}: {lrnn_err()}")


# ---------------------------------------------------------------- peers
ok_fla = ok_tfla = True
try:
    # fla refuses its gated backward on Hopper with Triton 3.4-3.7.0 (it reports wrong results
    # there); as in ANCHORS.md the guard is bypassed so that its time can be measured.
    import fla.ops.common.chunk_o as _co
    _co.IS_NVIDIA_HOPPER = False
    from fla.ops.gla import chunk_gla
    from fla.ops.simple_gla import chunk_simple_gla
except Exception as e:  # noqa: BLE001
    ok_fla = False
    note(f"fla import failed: {e!r}")
chunk_rwkv6 = None
if ok_fla:
    try:
        from fla.ops.rwkv6 import chunk_rwkv6
    except Exception as e:  # noqa: BLE001
        note(f"fla chunk_rwkv6 import failed: {e!r}")
tfla = None


def probe_tfla(B, T):
    try:
        r = subprocess.run([sys.executable, __file__, "--lib", args.lib, "--tfla-probe", f"{B}x{T}"],
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "probe timed out after 300 s"
    if r.returncode == 0 and "TFLA_PROBE_OK" in r.stdout:
        return True, ""
    tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
    how = f"signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
    return False, f"{how}: " + " | ".join(tail)[:400]


def row(**kw):
    results["rows"].append(kw)
    save()
    print(json.dumps(kw), flush=True)


def wanted(op):
    """Whether op is timed in this run (--skip, --only)."""
    return op not in args.skip.split(",") and (not args.only or op in args.only.split(","))


def bench(op, B, T, nbytes_fwd, nbytes_fb, fwd, fwdbwd, reps_fb=None):
    if not wanted(op):
        return
    r = {"op": op, "B": B, "T": T}
    try:
        r["fwd_ms"] = time_ms(fwd)
        r["fwd_floor_frac"] = nbytes_fwd / COPY_BW / 1e6 / r["fwd_ms"]
    except Exception as e:  # noqa: BLE001
        r["fwd_error"] = str(e)[:300]
    if "fwd_error" not in r and fwdbwd is not None:
        try:
            r["fwdbwd_ms"] = time_ms(fwdbwd, warmup=3, reps=reps_fb or max(10, args.reps // 2))
            r["fwdbwd_floor_frac"] = nbytes_fb / COPY_BW / 1e6 / r["fwdbwd_ms"]
        except Exception as e:  # noqa: BLE001
            r["fwdbwd_error"] = str(e)[:300]
    row(**r)
    if op in args.profile.split(",") and fwdbwd is not None and "fwdbwd_error" not in r:
        profile_kernels(op, B, T, fwdbwd)
    torch.cuda.empty_cache()


def profile_kernels(op, B, T, fn, reps=5):
    """GPU kernel times of `reps` calls of fn (CUPTI through torch.profiler), largest total first."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    tot = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            t = tot.setdefault(ev.name, [0, 0.0])
            t[0] += 1
            t[1] += ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
    lines = [f"# {op} B={B} T={T}: GPU kernels of {reps} forward+backward calls (us per call)"]
    allk = sum(v[1] for v in tot.values()) / reps
    lines.append(f"total {allk:.1f} us per call")
    for name, (cnt, us) in sorted(tot.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"{us / reps:10.1f}  x{cnt / reps:g}  {name[:150]}")
    # The timeline: the GPU's idle time between consecutive kernels (and memsets / copies), where wall
    # time beyond the kernels' sum goes; the largest gaps by the pair of kernels around them.
    try:
        evs = sorted(((e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                      if e.device_type == torch.autograd.DeviceType.CUDA), key=lambda x: x[0])
    except Exception as e:  # noqa: BLE001
        lines.append(f"(no timeline: {e})")
        evs = []
    def short(name):  # (a kernel's name without its namespaces and template arguments)
        return name.replace("(anonymous namespace)", "").split("<")[0].split("(")[0].split("::")[-1].replace("void ", "")[:50]

    if len(evs) > 1:
        gaps, end, prev = {}, evs[0][1], evs[0][2]
        for st, en, name in evs[1:]:
            gap = st - end
            if gap > 0:
                k = f"{short(prev)} -> {short(name)}"
                gaps.setdefault(k, [0, 0.0])
                gaps[k][0] += 1
                gaps[k][1] += gap
            if en > end:
                end, prev = en, name
        idle = sum(v[1] for v in gaps.values()) / reps
        lines.append(f"span {(evs[-1][1] - evs[0][0]) / reps:.1f} us per call (first start to last end), "
                     f"idle between kernels {idle:.1f} us per call, {len(evs) / reps:g} GPU events per call")
        for k, (cnt, us) in sorted(gaps.items(), key=lambda kv: -kv[1][1])[:12]:
            lines.append(f"  gap {us / reps:8.1f}  x{cnt / reps:g}  {k}")
    with open(os.path.join(args.out, f"profile_{op}_{B}x{T}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def rel(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split()]
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

for B, T in shapes:
    io = B * T * H * D * 2  # one bf16 [B, T, H, D] tensor
    gsc = B * T * H * 4     # fp32 [B, T, H] gate
    gkey = B * T * H * D * 4  # fp32 [B, T, H, K] gate
    floors = {  # bytes read + written, fwd and fwd+bwd (fwd, then bwd reads q, k, v, g, do and writes dq, dk, dv, dg)
        "scalar": (3 * io + gsc + io, 3 * io + gsc + io + 4 * io + gsc + 3 * io + gsc),
        "key": (3 * io + gkey + io, 3 * io + gkey + io + 4 * io + gkey + 3 * io + gkey),
        "none": (4 * io, 4 * io + 4 * io + 3 * io),
    }
    results.setdefault("floors", {})[f"{B}x{T}"] = {k: {"fwd_bytes": v[0], "fwdbwd_bytes": v[1],
                                                        "fwd_ms": v[0] / COPY_BW / 1e6,
                                                        "fwdbwd_ms": v[1] / COPY_BW / 1e6} for k, v in floors.items()}
    torch.manual_seed(0)
    q = torch.randn(B, T, H, D, device=dev, dtype=bf)
    k = torch.randn(B, T, H, D, device=dev, dtype=bf)
    v = torch.randn(B, T, H, D, device=dev, dtype=bf)
    gs = F.logsigmoid(torch.randn(B, T, H, device=dev) + 4)
    gk = F.logsigmoid(torch.randn(B, T, H, D, device=dev) + 4)
    gh = torch.log(1 - 2.0 ** (-5.0 - torch.arange(H, device=dev, dtype=torch.float32)))  # RetNet's decays
    ub = 0.1 * torch.randn(H, D, device=dev)  # RWKV-6's bonus u (fp32; scale 1 as RWKV-6 has)

    # SDPA flash (causal), [B, H, T, D]
    qs, ks, vs = [x.transpose(1, 2).contiguous().requires_grad_(True) for x in (q, k, v)]
    do_s = torch.randn_like(qs)

    def sdpa():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)

    def sdpa_fb():
        torch.autograd.grad(sdpa(), [qs, ks, vs], do_s)

    bench("sdpa_flash_causal", B, T, *floors["none"], sdpa, sdpa_fb)
    del qs, ks, vs, do_s

    ref_sgla = None
    if ok_fla:
        qf, kf, vf = [x.detach().clone().requires_grad_(True) for x in (q, k, v)]
        gsf, gkf = gs.clone().requires_grad_(True), gk.clone().requires_grad_(True)
        uf = ub.to(bf).requires_grad_(True)
        do_f = torch.randn_like(vf)

        def sgla():
            return chunk_simple_gla(qf, kf, vf, g=gsf)[0]

        def sgla_fb():
            torch.autograd.grad(sgla(), [qf, kf, vf, gsf], do_f)

        def gla():
            return chunk_gla(qf, kf, vf, gkf)[0]

        def gla_fb():
            torch.autograd.grad(gla(), [qf, kf, vf, gkf], do_f)

        def rwkv6():
            return chunk_rwkv6(qf, kf, vf, gkf, uf, scale=1.0)[0]

        def rwkv6_fb():
            torch.autograd.grad(rwkv6(), [qf, kf, vf, gkf, uf], do_f)

        bench("fla_chunk_simple_gla", B, T, *floors["scalar"], sgla, sgla_fb)
        # (fla's output as the reference for lrnn's where both run: a fla kernel not timed here is not
        # compiled and autotuned only for that, which takes minutes on a fresh machine)
        ref_sgla = sgla().detach() if wanted("fla_chunk_simple_gla") else None

    # lrnn before fla's chunk_gla is first called: Triton's autotuning of chunk_gla's kernels takes
    # minutes on a fresh machine, and a run cut short by its time limit should still have lrnn's rows.
    # The GLA output's difference to fla's is filled in once fla has run.
    lrnn_gla_out, lrnn_gla_row, lrnn_rwkv6_out, lrnn_rwkv6_row = None, None, None, None
    if lib is not None:
        for name, g, fl in (("simple_gla", gs, floors["scalar"]), ("retnet", gh, floors["none"]), ("gla", gk, floors["key"]),
                            ("rwkv6", gk, floors["key"])):
            op = LrnnOp(name, q, k, v, g=g, u=ub if name == "rwkv6" else None)
            try:
                op.fwd()
                torch.cuda.synchronize()
            except RuntimeError as e:
                row(op=f"lrnn_{name}", B=B, T=T, status="not available", error=str(e)[:300])
                continue
            bench(f"lrnn_{name}", B, T, *fl, op.fwd, op.fwdbwd)
            this_row = results["rows"][-1] if results["rows"] and results["rows"][-1].get("op") == f"lrnn_{name}" else None
            if name == "simple_gla" and ref_sgla is not None and this_row is not None:
                this_row["rel_diff_vs_fla_fwd"] = rel(op.o, ref_sgla)
                save()
            if name == "gla":
                lrnn_gla_out, lrnn_gla_row = op.o.clone(), this_row
            if name == "rwkv6":
                lrnn_rwkv6_out, lrnn_rwkv6_row = op.o.clone(), this_row
            del op
            if name == "simple_gla":
                # The same without the forward's context: the backward recomputes the segment states.
                op = LrnnOp(name, q, k, v, g=g, save=False)
                bench(f"lrnn_{name}_recompute", B, T, *fl, op.fwd, op.fwdbwd)
                del op

    if ok_fla:
        bench("fla_chunk_gla", B, T, *floors["key"], gla, gla_fb)
        if wanted("fla_chunk_gla") and lrnn_gla_row is not None:
            lrnn_gla_row["rel_diff_vs_fla_fwd"] = rel(lrnn_gla_out, gla().detach())
            save()
        if chunk_rwkv6 is not None:
            bench("fla_chunk_rwkv6", B, T, *floors["key"], rwkv6, rwkv6_fb)
            if wanted("fla_chunk_rwkv6") and lrnn_rwkv6_row is not None:
                lrnn_rwkv6_row["rel_diff_vs_fla_fwd"] = rel(lrnn_rwkv6_out, rwkv6().detach())
                save()
        del qf, kf, vf, gsf, gkf, uf, do_f
    del lrnn_gla_out, lrnn_rwkv6_out

    if not args.skip_tfla and tfla is None and ok_tfla:
        ok, why = probe_tfla(B, T)
        if ok:
            from mlstm_kernels.torch import get_mlstm_kernel
            tfla = get_mlstm_kernel("chunkwise--triton_xl_chunk")
        else:
            ok_tfla = False
            row(op="tfla_mlstm_xl_chunk", B=B, T=T, status="crashed", error=why)
    iraw = torch.randn(B, T, H, device=dev)
    fraw = torch.randn(B, T, H, device=dev) + 3
    if tfla is not None:
        qm, km, vm = [x.transpose(1, 2).contiguous().requires_grad_(True) for x in (q, k, v)]
        im = iraw.to(bf).transpose(1, 2).contiguous().requires_grad_(True)
        fm = fraw.to(bf).transpose(1, 2).contiguous().requires_grad_(True)
        do_m = torch.randn_like(vm)

        def ml():
            return tfla(q=qm, k=km, v=vm, i=im, f=fm, chunk_size=128)

        def ml_fb():
            torch.autograd.grad(ml(), [qm, km, vm, im, fm], do_m)

        bench("tfla_mlstm_xl_chunk", B, T, *floors["scalar"], ml, ml_fb)
        ref_ml = ml().detach().transpose(1, 2)
        del qm, km, vm, im, fm, do_m
    if lib is not None:
        # mLSTM (exponential input gate + normaliser): g = logsigmoid(f~), i = i~ as TFLA takes them.
        gm = F.logsigmoid(fraw.to(bf).float())
        op = LrnnOp("mlstm", q, k, v, g=gm, i=iraw.to(bf).float())
        try:
            op.fwd()
            torch.cuda.synchronize()
            bench("lrnn_mlstm", B, T, floors["scalar"][0] + gsc, floors["scalar"][1] + 3 * gsc, op.fwd, op.fwdbwd)
            if tfla is not None:
                results["rows"][-1]["rel_diff_vs_tfla_fwd"] = rel(op.o, ref_ml)
                save()
        except RuntimeError as e:
            row(op="lrnn_mlstm", B=B, T=T, status="not available", error=str(e)[:300])
        del op
        # The same without the saved den / o: the backward recomputes the forward (A/B, same run).
        op = LrnnOp("mlstm", q, k, v, g=gm, i=iraw.to(bf).float(), save=False)
        try:
            bench("lrnn_mlstm_recompute", B, T, floors["scalar"][0] + gsc, floors["scalar"][1] + 3 * gsc, op.fwd, op.fwdbwd)
        except RuntimeError as e:
            row(op="lrnn_mlstm_recompute", B=B, T=T, status="not available", error=str(e)[:300])
        del op
        # mLSTM with the sigmoid input gate (no stabiliser): i = logsigmoid(i~), a scalar-decay target.
        op = LrnnOp("mlstm_sig", q, k, v, g=gm, i=F.logsigmoid(iraw.to(bf).float()))
        try:
            op.fwd()
            torch.cuda.synchronize()
            bench("lrnn_mlstm_sig", B, T, floors["scalar"][0] + gsc, floors["scalar"][1] + 3 * gsc, op.fwd, op.fwdbwd)
        except RuntimeError as e:
            row(op="lrnn_mlstm_sig", B=B, T=T, status="not available", error=str(e)[:300])
        del op
    del q, k, v, gs, gk, gh
    torch.cuda.empty_cache()

# ---------------------------------------------------------------- decode step bandwidth
step_rows = []
if lib is not None:
    for variant, Bs in (("simple_gla", (64, 256)), ("gla", (64, 256)), ("mlstm", (64,))):
        for Bst in Bs:
            K = V = 128
            sp = spec_for(variant)
            qd = torch.randn(Bst, H, K, device=dev, dtype=bf)
            kd = torch.randn(Bst, H, K, device=dev, dtype=bf)
            vd = torch.randn(Bst, H, V, device=dev, dtype=bf)
            if variant == "gla":
                gd = F.logsigmoid(torch.randn(Bst, H, K, device=dev) + 4)
            else:
                gd = F.logsigmoid(torch.randn(Bst, H, device=dev) + 4)
            idd = torch.randn(Bst, H, device=dev) if variant == "mlstm" else None
            s = torch.randn(Bst, H, K, V, device=dev) * 0.1
            n = torch.zeros(Bst, H, K, device=dev) if variant == "mlstm" else None
            m = torch.zeros(Bst, H, device=dev) if variant == "mlstm" else None
            od = torch.empty(Bst, H, V, device=dev, dtype=bf)
            st = State(s.data_ptr(), n.data_ptr() if n is not None else None, m.data_ptr() if m is not None else None)

            def step():
                rc = lib.lrnn_decay_attn_step(ctypes.byref(sp), LRNN_BF16, LRNN_F32, 0, Bst, H, K, V, ptr(qd), ptr(kd),
                                              ptr(vd), ptr(gd), ptr(idd), None, ctypes.byref(st), ptr(od))
                if rc != 0:
                    raise RuntimeError(f"lrnn_decay_attn_step returned {rc}: {lrnn_err()}")

            r = {"op": f"lrnn_step_{variant}", "B": Bst, "BH": Bst * H}
            try:
                step()
                torch.cuda.synchronize()
                # Calls queued back to back (the host runs ahead of the GPU), CUDA events around 50.
                inner = 50
                t_ms = time_ms(lambda: [step() for _ in range(inner)], warmup=2, reps=10) / inner
                t0 = time.perf_counter()
                for _ in range(200):
                    step()
                host_us = (time.perf_counter() - t0) / 200 * 1e6
                torch.cuda.synchronize()
                state_bytes = 2 * s.numel() * 4
                r.update(step_us=t_ms * 1e3, state_GBps=state_bytes / t_ms / 1e6,
                         frac_of_copy_bw=state_bytes / t_ms / 1e6 / COPY_BW, host_us_per_call=host_us)
            except RuntimeError as e:
                r.update(status="not available", error=str(e)[:300])
            row(**r)
            step_rows.append(r)
            del qd, kd, vd, gd, idd, s, n, m, od
    ms = MemStats()
    if lib.lrnn_cuda_memory_stats(0, ctypes.byref(ms)) == 0:
        results["lrnn_allocator"] = {f: getattr(ms, f) for f, _ in MemStats._fields_}
        save()

# ---------------------------------------------------------------- report
L = []
L.append(f"# decay_attn GPU benchmark\n")
L.append(f"{results['device']}, PyTorch {torch.__version__}; same process, identical bf16 inputs, H={H}, K=V={D}; "
         f"median of CUDA-event timings after warm-up.\n")
L.append(f"Ceilings measured in this run: device-to-device copy {COPY_BW:.0f} GB/s (read + write), "
         f"bf16 8192^3 matmul {MM_TFLOPS:.0f} TFLOP/s.\n")
L.append("| op | B | T | fwd ms | fwd floor frac | fwd+bwd ms | fwd+bwd floor frac | note |")
L.append("|---|---|---|---|---|---|---|---|")
for r in results["rows"]:
    if "T" not in r:
        continue

    def f(key, fmt="{:.3f}"):
        return fmt.format(r[key]) if key in r else "-"
    nt = r.get("status", "")
    err = r.get("fwd_error") or r.get("fwdbwd_error") or r.get("error") or ""
    for kx in ("rel_diff_vs_fla_fwd", "rel_diff_vs_tfla_fwd"):
        if kx in r:
            nt += f" {kx}={r[kx]:.2e}"
    if err:
        nt += " " + err.replace("|", "/")[:160]
    L.append(f"| {r['op']} | {r['B']} | {r['T']} | {f('fwd_ms')} | {f('fwd_floor_frac', '{:.0%}')} | "
             f"{f('fwdbwd_ms')} | {f('fwdbwd_floor_frac', '{:.0%}')} | {nt.strip()} |")
L.append("\nfloor frac = (bytes that must move / measured copy bandwidth) / time. Memory floors (ms):")
for sh, fl in results.get("floors", {}).items():
    L.append(f"* {sh}: " + ", ".join(f"{k} gate fwd {v['fwd_ms']:.3f} / fwd+bwd {v['fwdbwd_ms']:.3f}" for k, v in fl.items()))
if step_rows:
    L.append("\n## Decode step (lrnn_decay_attn_step, bf16 tokens, fp32 state [B, H, 128, 128] updated in place)\n")
    L.append("| variant | B | B*H | us/step | state GB/s (read+write) | fraction of copy bandwidth | host us/call |")
    L.append("|---|---|---|---|---|---|---|")
    for r in step_rows:
        if "step_us" in r:
            L.append(f"| {r['op'][10:]} | {r['B']} | {r['BH']} | {r['step_us']:.1f} | {r['state_GBps']:.0f} | "
                     f"{r['frac_of_copy_bw']:.0%} | {r['host_us_per_call']:.1f} |")
        else:
            L.append(f"| {r['op'][10:]} | {r['B']} | {r['BH']} | {r.get('status')} | | | {r.get('error', '')[:100]} |")
if "lrnn_allocator" in results:
    a = results["lrnn_allocator"]
    L.append(f"\nlrnn allocator at the end: peak {a['peak_bytes_in_use'] / 2**30:.2f} GiB in use, "
             f"{a['num_cuda_malloc']} cudaMalloc calls, {a['num_reused']} allocations served from the cache.")
L.append("\nNotes:\n" + "\n".join(f"* {n}" for n in results["notes"]))
md = "\n".join(L) + "\n"
with open(os.path.join(args.out, "bench.md"), "w") as fh:
    fh.write(md)
save()
print(md)
