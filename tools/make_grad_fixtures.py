# Reference gradients for the trainable models: PyTorch autograd through fla on the GPU machine,
# for the fixtures' own tiny models (tests/data/fla_gla, fla_retnet). Loss: mean next-token
# cross-entropy over the fixture ids, logits[:, :-1] against ids[:, 1:], in fp32 with TF32 off.
# On the GPU machine it writes OUT/<fixture>_grads.npz (one array per parameter, named as in
# model.safetensors, plus "loss"; the device returns at most 8 files); here, --split unpacks
# them into tests/data/<fixture>/grads/<name>.npy (tests/train/trainable_test.cpp reads them).
# Usage (GPU machine): PYTHONPATH=<dir holding fla/ and einops/> OUT=<dir> python3 tools/make_grad_fixtures.py
#       (here):        python3 tools/make_grad_fixtures.py --split <dir holding the .npz files>
import os
import sys

import numpy as np

FIXTURES = ["fla_gla", "fla_retnet"]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def make(out):
    import torch
    import torch.nn.functional as F
    import fla  # noqa: F401  (registers the fla model types with transformers)
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name in FIXTURES:
        d = os.path.join(ROOT, name)
        cfg = AutoConfig.from_pretrained(d)
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


def split(src):
    for name in FIXTURES:
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
    if len(sys.argv) == 3 and sys.argv[1] == "--split":
        split(sys.argv[2])
    else:
        make(os.environ.get("OUT", "/tmp/out"))
