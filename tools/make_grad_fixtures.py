# Reference gradients for the trainable models: PyTorch autograd through fla on the GPU machine,
# for the fixtures' own tiny models (tests/data/fla_gla, fla_retnet). Loss: mean next-token
# cross-entropy over the fixture ids, logits[:, :-1] against ids[:, 1:], in fp32 with TF32 off.
# On the GPU machine it writes OUT/<fixture>_grads.npz (one array per parameter, named as in
# model.safetensors, plus "loss"; the device returns at most 8 files); here, --split unpacks
# them into tests/data/<fixture>/grads/<name>.npy (tests/train/trainable_test.cpp reads them).
# Usage (GPU machine): PYTHONPATH=<dir holding fla/ and einops/> OUT=<dir> python3 tools/make_grad_fixtures.py [fixture ...]
#       (here):        python3 tools/make_grad_fixtures.py --split <dir holding the .npz files>
#
# The HF-format fixtures (tests/data/hf_rwkv4, hf_recurrentgemma, hf_xlstm, hf_xlstm_qk05) need no
# GPU: --hf runs transformers' own PyTorch modeling code on the CPU in float64, in training mode,
# with the same loss, and writes tests/data/<fixture>/grads/<name>.npy directly (computed in
# float64, stored float32; names as in model.safetensors, plus loss.npy in float64). Made with torch 2.15.0 (PyPI wheel, run on the CPU) and
# transformers 5.17.0 (the version the fixtures were made with):
#   python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch numpy safetensors transformers==5.17.0
#   /tmp/tvenv/bin/python tools/make_grad_fixtures.py --hf [fixture ...]
# xLSTM: the fixture configs name transformers' pure-PyTorch kernels (chunkwise--native_autograd,
# native_sequence__native, native step), which are what runs here; they are kept. hf_xlstm has
# mode "train": the chunkwise native-autograd kernel (chunk 16, 3 chunks of the 48 tokens);
# hf_xlstm_qk05 has mode "inference" (the chunkwise kernel fails for qk dim != v dim): with 48 <
# chunk_size 64 tokens that is the native recurrent sequence kernel, step by step. For float64
# throughout, the recurrent kernels' state dtype is set to float64, the norms' float32 reductions
# are turned off, and the logits are computed without the modeling code's final .float().#
# fla_rwkv7 and fla_gated_deltanet are made without a GPU: --fla-cpu runs fla's models on the CPU in
# float64, in training mode, with the same loss, and writes tests/data/<fixture>/grads/<name>.npy
# directly (like --hf). fla's Triton kernels cannot run on the CPU, so before the models are built
# patch_fla_cpu() replaces the names the layer modules call with PyTorch code (fla's own *_ref
# functions where it has them):
#   fla.layers.rwkv7 / fla.models.rwkv7.modeling_rwkv7: token_shift -> fla.modules.token_shift.token_shift_ref;
#     fused_addcmul_rwkv7 -> fla.ops.rwkv7.fused_addcmul.torch_addcmul_rwkv7; fused_k_rwkv7 ->
#     fla.ops.rwkv7.fused_k_update.k_update_ref; gate_output_correction ->
#     fla.ops.rwkv7.gate_output_correction.gate_output_correction_ref; chunk_rwkv7 -> a step-by-step
#     recurrence, S = exp(w) S + b (a^T S) + k v^T, o = S^T (scale r) (fused_recurrent_rwkv7's kernel).
#     (fuse_norm off: the norms and the k_k l2 normalisation are torch's already.)
#   fla.layers.gated_deltanet: causal_conv1d (the fused q/k/v short convolution) -> F.conv1d depthwise,
#     causal, then SiLU; chunk_gated_delta_rule -> a step-by-step recurrence as in
#     fused_recurrent_gated_delta_rule's kernel: g = -exp(A_log) softplus(g + dt_bias),
#     beta = sigmoid(beta), q and k scaled by rsqrt(sum(x^2) + 1e-6) (the kernels' l2norm),
#     S = exp(g) S; S += beta k (v - S^T k)^T; o = S^T (q K^-1/2).
#   fla.modules.FusedRMSNormGated.forward -> x rsqrt(mean(x^2) + eps) weight silu(g);
#   fla.modules.mlp.swiglu -> silu(a) b.
# The patched models' logits match the fixtures' logits.npy (made by unpatched fla on the GPU, fp32):
# max abs diff 1.0e-6 (fla_rwkv7), 3.0e-6 (fla_gated_deltanet). fla imports Triton: with triton 3.9
# the import fails, so triton 3.5.1 is put first on the path:
#   /tmp/tvenv/bin/pip install --no-deps --target /tmp/triton35 triton==3.5.1
#   PYTHONPATH=/tmp/triton35:<dir holding fla/ and einops/> /tmp/tvenv/bin/python tools/make_grad_fixtures.py --fla-cpu [fixture ...]
import os
import sys

import numpy as np

FIXTURES = ["fla_gla", "fla_retnet", "fla_gla_conv", "fla_rwkv6", "fla_rwkv7", "fla_gated_deltanet", "fla_gated_deltanet_gva"]
# fla's layers refuse their fused_recurrent mode in training (Gated DeltaNet asserts it): these run
# the chunk kernels. (fla_gla / fla_retnet keep their configs' mode, as when their gradients were made.)
FORCE_CHUNK = {"fla_rwkv6", "fla_rwkv7", "fla_gated_deltanet", "fla_gated_deltanet_gva"}
FLA_CPU_FIXTURES = ["fla_rwkv7", "fla_gated_deltanet"]
HF_FIXTURES = ["hf_rwkv4", "hf_recurrentgemma", "hf_xlstm", "hf_xlstm_qk05"]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def make(out, names):
    import torch
    import torch.nn.functional as F
    import fla  # noqa: F401  (registers the fla model types with transformers)
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name in names:
        d = os.path.join(ROOT, name)
        cfg = AutoConfig.from_pretrained(d)
        if name in FORCE_CHUNK:
            cfg.attn_mode = "chunk"
        for k in ("fuse_cross_entropy", "fuse_linear_cross_entropy", "fuse_norm", "fuse_swiglu"):
            if hasattr(cfg, k):
                setattr(cfg, k, False)
        m = AutoModelForCausalLM.from_config(cfg).float().cuda()
        sd = load_file(os.path.join(d, "model.safetensors"))
        missing, unexpected = m.load_state_dict(sd, strict=False)
        assert not unexpected, unexpected
        assert all(k.endswith("lm_head.weight") for k in missing), missing
        m.train()
        ids = torch.from_numpy(np.load(os.path.join(d, "input_ids.npy"))).cuda()
        logits = m(input_ids=ids, use_cache=False).logits.float()
        ref = np.load(os.path.join(d, "logits.npy"))
        print(name, "logits vs fixture max abs diff", float(np.abs(logits.detach().cpu().numpy() - ref).max()), flush=True)
        V = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        arrays = {"loss": np.array([loss.item()], dtype=np.float64)}
        for pname, p in m.named_parameters():
            if p.grad is None:
                print(name, "no gradient for", pname, flush=True)
                continue
            arrays[pname] = p.grad.detach().float().cpu().numpy()
        print(name, "loss", loss.item(), "parameters with gradients", len(arrays) - 1, flush=True)
        np.savez(os.path.join(out, f"{name}_grads.npz"), **arrays)


def patch_fla_cpu():
    import torch
    import torch.nn.functional as F
    import fla.layers.rwkv7 as L7
    import fla.models.rwkv7.modeling_rwkv7 as M7
    import fla.layers.gated_deltanet as LG
    import fla.modules.mlp as MLP
    from fla.modules import FusedRMSNormGated
    from fla.modules.token_shift import token_shift_ref
    from fla.ops.rwkv7.fused_addcmul import torch_addcmul_rwkv7
    from fla.ops.rwkv7.fused_k_update import k_update_ref
    from fla.ops.rwkv7.gate_output_correction import gate_output_correction_ref

    def token_shift(x, cu_seqlens=None, cache=None, output_cache=False, **kw):
        assert cu_seqlens is None and cache is None
        d = token_shift_ref(x)
        return (d, None) if output_cache else d

    def chunk_rwkv7(r, w, k, v, a, b, scale=1.0, initial_state=None, output_final_state=False,
                    cu_seqlens=None, **kw):
        # [B, T, H, D]; S [B, H, K, V]: S = exp(w) * S + b (a^T S) + k v^T ; o = S^T (scale r)
        # (the recurrence of fla/ops/rwkv7/fused_recurrent.py's kernel)
        assert initial_state is None and cu_seqlens is None
        B, T, H, K = r.shape
        V = v.shape[-1]
        S = r.new_zeros(B, H, K, V)
        o = []
        for t in range(T):
            S = w[:, t].exp()[..., None] * S + b[:, t][..., None] * (a[:, t][..., None] * S).sum(-2, keepdim=True) \
                + k[:, t][..., None] * v[:, t][..., None, :]
            o.append(torch.einsum('bhk,bhkv->bhv', r[:, t] * scale, S))
        return torch.stack(o, 1), None

    L7.token_shift = token_shift
    M7.token_shift = token_shift
    L7.fused_addcmul_rwkv7 = torch_addcmul_rwkv7
    L7.fused_k_rwkv7 = lambda k, a, ka, **kw: k_update_ref(k, a, ka)
    L7.chunk_rwkv7 = chunk_rwkv7
    L7.gate_output_correction = gate_output_correction_ref

    def causal_conv1d(x, weight=None, bias=None, activation=None, **kw):
        # x [B, T, D], weight [D, W]: depthwise causal convolution (ShortConvolution's math)
        W = weight.shape[-1]
        y = F.conv1d(F.pad(x.transpose(1, 2), (W - 1, 0)), weight.unsqueeze(1), bias, groups=x.shape[-1])
        y = y.transpose(1, 2)
        if activation in ("silu", "swish"):
            y = F.silu(y)
        else:
            assert activation is None, activation
        return y, None

    def chunk_gated_delta_rule(q, k, v, g, beta, A_log=None, dt_bias=None, initial_state=None,
                               output_final_state=False, use_qk_l2norm_in_kernel=False,
                               use_gate_in_kernel=False, use_beta_sigmoid_in_kernel=False,
                               allow_neg_eigval=False, cu_seqlens=None, scale=None, **kw):
        # the gated delta rule, step by step: g = -exp(A_log) softplus(g + dt_bias), beta = sigmoid(beta),
        # q, k l2-normalised; S = exp(g) S; S += beta k (v - S^T k)^T; o = S^T (q K^-1/2)
        assert initial_state is None and cu_seqlens is None and not allow_neg_eigval
        assert use_qk_l2norm_in_kernel and use_gate_in_kernel and use_beta_sigmoid_in_kernel
        B, T, H, K = q.shape
        HV = v.shape[2]
        assert HV == H
        V = v.shape[-1]
        q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)  # the kernels' in-kernel l2norm
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        g = -A_log.exp() * F.softplus(g + dt_bias)
        beta = beta.sigmoid()
        scale = K ** -0.5 if scale is None else scale
        S = q.new_zeros(B, H, K, V)
        o = []
        for t in range(T):
            S = S * g[:, t].exp()[..., None, None]
            kt = k[:, t]
            u = (v[:, t] - torch.einsum('bhk,bhkv->bhv', kt, S)) * beta[:, t][..., None]
            S = S + kt[..., None] * u[..., None, :]
            o.append(torch.einsum('bhk,bhkv->bhv', q[:, t] * scale, S))
        return torch.stack(o, 1), None

    LG.causal_conv1d = causal_conv1d
    LG.chunk_gated_delta_rule = chunk_gated_delta_rule

    def rmsgated_forward(self, x, g, residual=None, prenorm=False, residual_in_fp32=False):
        assert residual is None and not prenorm and self.bias is None
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        if self.activation in ("swish", "silu"):
            return y * F.silu(g)
        return y * torch.sigmoid(g)

    FusedRMSNormGated.forward = rmsgated_forward
    MLP.swiglu = lambda a, b: F.silu(a) * b


def make_hf(names, fla_cpu=False):
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    import transformers

    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    if fla_cpu:
        import fla  # noqa: F401  (registers the fla model types with transformers)

        patch_fla_cpu()
    for name in names:
        d = os.path.join(ROOT, name)
        cfg = AutoConfig.from_pretrained(d)
        if fla_cpu:
            cfg.attn_mode = "chunk"  # training mode; the patched chunk ops are the step-by-step recurrences
            for k in ("fuse_cross_entropy", "fuse_linear_cross_entropy", "fuse_norm", "fuse_swiglu"):
                if hasattr(cfg, k):
                    setattr(cfg, k, False)
        if cfg.model_type == "xlstm":
            # float64 throughout: the norms' reductions off float32 (autocast_kernel_dtype is not used
            # by the native kernels).
            cfg.norm_reduction_force_float32 = False
            # The recurrent kernels' state dtype: the config validator allows only 16/32-bit types,
            # so it is set past the validator.
            object.__setattr__(cfg, "inference_state_dtype", "float64")
        m = AutoModelForCausalLM.from_config(cfg).double()
        sd = {k: v.double() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
        missing, unexpected = m.load_state_dict(sd, strict=False)
        assert not unexpected, unexpected
        tied = bool(getattr(cfg, "tie_word_embeddings", False))
        assert all(tied and k.endswith("lm_head.weight") for k in missing), missing
        if tied:
            m.tie_weights()
        m.train()
        ids = torch.from_numpy(np.load(os.path.join(d, "input_ids.npy")))
        if cfg.model_type == "xlstm":
            # xLSTMForCausalLM.forward casts the logits to float32 (.float()) before the soft cap;
            # the same computation without that cast, to stay in float64.
            from transformers.models.xlstm.modeling_xlstm import soft_cap

            h = m.backbone(ids, use_cache=False)[0]
            logits = soft_cap(m.lm_head(h), cfg.output_logit_soft_cap)
            # sanity: the model's own forward gives the same logits (to float32 rounding)
            assert float((m(input_ids=ids, use_cache=False).logits.double() - logits).abs().max()) < 1e-5
        else:
            logits = m(input_ids=ids, use_cache=False).logits
        assert logits.dtype == torch.float64, logits.dtype
        ref = np.load(os.path.join(d, "logits.npy"))
        print(name, "logits vs fixture max abs diff", float(np.abs(logits.detach().numpy() - ref).max()), flush=True)
        V = logits.shape[-1]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        gd = os.path.join(d, "grads")
        os.makedirs(gd, exist_ok=True)
        np.save(os.path.join(gd, "loss.npy"), np.array([loss.item()], dtype=np.float64))
        n = 0
        for pname, p in m.named_parameters():
            assert pname in sd, pname
            if p.grad is None:
                print(name, "no gradient for", pname, flush=True)
                continue
            np.save(os.path.join(gd, pname + ".npy"), p.grad.detach().numpy().astype(np.float32))
            n += 1
        print(name, "loss", loss.item(), "parameters with gradients", n, "of", len(sd), "->", gd, flush=True)


def split(src):
    for name in sorted(f[: -len("_grads.npz")] for f in os.listdir(src) if f.endswith("_grads.npz")):
        path = os.path.join(src, f"{name}_grads.npz")
        if not os.path.exists(path):
            print("missing", path)
            continue
        z = np.load(path)
        gd = os.path.join(ROOT, name, "grads")
        os.makedirs(gd, exist_ok=True)
        for k in z.files:
            np.save(os.path.join(gd, k + ".npy"), z[k])
        print(name, len(z.files), "arrays ->", gd)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--hf":
        make_hf(sys.argv[2:] or HF_FIXTURES)
    elif len(sys.argv) >= 2 and sys.argv[1] == "--fla-cpu":
        make_hf(sys.argv[2:] or FLA_CPU_FIXTURES, fla_cpu=True)
    elif len(sys.argv) == 3 and sys.argv[1] == "--split":
        split(sys.argv[2])
    else:
        make(os.environ.get("OUT", "/tmp/out"), sys.argv[1:] or FIXTURES)
