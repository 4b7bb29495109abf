# Shared preamble of the GPU-machine fixture scripts (make_extra_fixtures.py,
# make_rwkv6_fixture.py): output dir, device, the shared fixtures' input ids, weight perturbation
# and greedy decoding by full forward passes. Importing it seeds torch (1234) and draws the ids,
# exactly as each script did at its top before.
import os

import numpy as np
import torch

OUT = os.environ.get("OUT", "/tmp/out")
dev = "cuda"
torch.manual_seed(1234)
ids = torch.randint(0, 250, (2, 48))  # the same ids as the shared fixtures


def perturb(model, s=0.02):
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn_like(p) * s)


def greedy_full(model, prompt, n=16):
    seq = prompt.clone().to(dev)
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=seq, use_cache=False).logits.float()
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq.cpu().numpy().astype(np.int64)
