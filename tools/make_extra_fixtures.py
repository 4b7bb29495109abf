# Makes parity fixtures for config options the shared fixtures do not cover, in their format
# (config.json, model.safetensors, input_ids.npy, logits.npy, greedy.npy; see
# ../shared/fixtures/README.md), with the reference implementations on the GPU machine:
#   fla_gla_conv            fla GLA with use_short_conv=true (q/k/v ShortConvolution, conv_size 4)
#   fla_gated_deltanet_gva  fla Gated DeltaNet with grouped value heads (num_heads 2, num_v_heads 4)
#   hf_xlstm_qk05           HF xLSTM with qk_dim_factor 0.5 (as xLSTM-7B). transformers' native
#                           chunkwise kernel fails when the qk and v head dims differ, so the model
#                           runs mode="inference" with chunk_size 64 > T: every forward goes
#                           through its native recurrent sequence kernel.
# greedy.npy is the true greedy continuation, by full forward passes without a cache.
# Usage (GPU machine): PYTHONPATH=<dir holding fla/ and einops/> OUT=<dir> python3 tools/make_extra_fixtures.py
import os
import sys
import traceback

import numpy as np
import torch

from fixture_util import OUT, dev, greedy_full, ids, perturb  # seeds torch, draws ids


def dump(name, m):
    from safetensors.torch import save_file
    m = m.float().eval().to(dev)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    m.config.to_json_file(os.path.join(d, "config.json"))
    with torch.no_grad():
        logits = m(input_ids=ids.to(dev), use_cache=False).logits.float().cpu().numpy()
        # The same logits token by token through the reference's own cache, as a cross-check of
        # the reference (printed, not saved).
        try:
            out = m(input_ids=ids[:, :1].to(dev), use_cache=True)
            cache, steps = out.past_key_values, [out.logits.float()]
            for t in range(1, ids.shape[1]):
                out = m(input_ids=ids[:, t:t + 1].to(dev), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                steps.append(out.logits.float())
            step_logits = torch.cat(steps, dim=1).cpu().numpy()
            print(name, "full vs step-by-step max abs diff", float(np.abs(step_logits - logits).max()), flush=True)
        except Exception as e:
            print(name, "step-by-step check failed:", repr(e)[:300], flush=True)
    np.save(os.path.join(d, "input_ids.npy"), ids.numpy().astype(np.int64))
    np.save(os.path.join(d, "logits.npy"), logits)
    np.save(os.path.join(d, "greedy.npy"), greedy_full(m, ids[:1]))
    print("fixture", name, logits.shape, float(np.abs(logits).mean()), flush=True)


common = dict(vocab_size=256, hidden_size=128, num_hidden_layers=2, fuse_cross_entropy=False, fuse_norm=False)


def gla_conv():
    from fla.models import GLAConfig, GLAForCausalLM
    c = GLAConfig(**common, num_heads=2, attn_mode="fused_recurrent", use_short_conv=True, conv_size=4)
    m = GLAForCausalLM(c)
    perturb(m)
    dump("fla_gla_conv", m)


def gated_deltanet_gva():
    from fla.models import GatedDeltaNetConfig, GatedDeltaNetForCausalLM
    c = GatedDeltaNetConfig(**common, num_heads=2, num_v_heads=4, head_dim=64, expand_v=1.0, attn_mode="fused_recurrent")
    m = GatedDeltaNetForCausalLM(c)
    perturb(m)
    dump("fla_gated_deltanet_gva", m)


def xlstm_qk05():
    from transformers import xLSTMConfig, xLSTMForCausalLM
    c = xLSTMConfig(vocab_size=256, hidden_size=64, embedding_dim=64, num_heads=4, num_blocks=2, chunk_size=64,
                    mode="inference", qk_dim_factor=0.5, v_dim_factor=1.0)
    c.chunkwise_kernel = "chunkwise--native_autograd"
    c.sequence_kernel = "native_sequence__native"
    c.step_kernel = "native"
    m = xLSTMForCausalLM(c)
    perturb(m)
    dump("hf_xlstm_qk05", m)


if __name__ == "__main__":
    import transformers
    import fla  # noqa: F401  (registers the fla model classes)
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    failed = 0
    for f in [gla_conv, gated_deltanet_gva, xlstm_qk05]:
        try:
            f()
        except Exception:
            failed += 1
            print("FAILED", f.__name__, flush=True)
            traceback.print_exc()
    sys.exit(1 if failed else 0)
