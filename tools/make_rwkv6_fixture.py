# Makes the fla RWKV-6 parity fixture (tests/data/fla_rwkv6) on the GPU machine, in the format
# of ../shared/fixtures (config.json, model.safetensors, input_ids.npy, logits.npy, greedy.npy),
# and recomputes greedy continuations for the fla fixtures by full forward passes (no cache):
# fla's generate() under transformers 5.17 saw only the last prompt token (see
# tests/models/model_fixture_test.cpp), so greedy_full.npy is the reference continuation.
# Usage (GPU machine): PYTHONPATH=<dir holding fla/> OUT=<dir> python3 tools/make_rwkv6_fixture.py
import os, sys
import numpy as np, torch

from fixture_util import OUT, dev, greedy_full, ids, perturb  # seeds torch, draws ids


def rwkv6():
    from fla.models import RWKV6Config, RWKV6ForCausalLM
    c = RWKV6Config(vocab_size=256, hidden_size=128, num_hidden_layers=2, head_dim=64, attn_mode="fused_recurrent",
                    fuse_cross_entropy=False, fuse_norm=False)
    m = RWKV6ForCausalLM(c)
    perturb(m)
    m = m.float().eval().to(dev)
    d = os.path.join(OUT, "fla_rwkv6")
    os.makedirs(d, exist_ok=True)
    try:
        m.save_pretrained(d, safe_serialization=True)
    except Exception as e:  # fla's RWKV-6 lists _tied_weights_keys, transformers 5 wants a dict
        print("save_pretrained failed, writing state_dict:", repr(e)[:120], flush=True)
        from safetensors.torch import save_file
        sd = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        m.config.to_json_file(os.path.join(d, "config.json"))
    with torch.no_grad():
        logits = m(input_ids=ids.to(dev)).logits.float().cpu().numpy()
    np.save(os.path.join(d, "input_ids.npy"), ids.numpy().astype(np.int64))
    np.save(os.path.join(d, "logits.npy"), logits)
    np.save(os.path.join(d, "greedy.npy"), greedy_full(m, ids[:1]))
    print("fla_rwkv6", logits.shape, float(np.abs(logits).mean()), flush=True)


def regreedy(name, cls):
    src = os.path.join("tests/data", name)
    m = cls.from_pretrained(src).float().eval().to(dev)
    g = greedy_full(m, ids[:1])
    os.makedirs(os.path.join(OUT, name), exist_ok=True)
    np.save(os.path.join(OUT, name, "greedy_full.npy"), g)
    print(name, "greedy_full", g[0, 48:].tolist(), flush=True)


if __name__ == "__main__":
    import fla  # noqa: F401  (registers the fla model classes)
    from fla.models import GLAForCausalLM, RetNetForCausalLM, GatedDeltaNetForCausalLM, RWKV7ForCausalLM
    try:
        rwkv6()
    except Exception as e:  # report and go on to the other fixtures
        import traceback
        traceback.print_exc()
    if os.environ.get("ONLY_RWKV6"):
        sys.exit(0)
    for name, cls in [("fla_gla", GLAForCausalLM), ("fla_retnet", RetNetForCausalLM),
                      ("fla_gated_deltanet", GatedDeltaNetForCausalLM), ("fla_rwkv7", RWKV7ForCausalLM)]:
        try:
            regreedy(name, cls)
        except Exception:
            import traceback
            traceback.print_exc()
