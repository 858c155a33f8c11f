"""Our Adam against torch.optim.Adam, and the import it exists to avoid."""

from __future__ import annotations

import subprocess
import sys

import torch

from inrcodec.train.optim import Adam


def _params(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen)) for shape in ((5, 7), (7,), (3, 2, 4))]


def test_it_takes_the_steps_torch_optim_adam_takes() -> None:
    ours, theirs = _params(0), _params(0)
    mine = Adam([ours[:2], ours[2:]], betas=(0.9, 0.999))
    reference = torch.optim.Adam([{"params": theirs[:2]}, {"params": theirs[2:]}], betas=(0.9, 0.999))
    gen = torch.Generator().manual_seed(1)
    for step in range(25):
        lrs = (0.1 * 0.9**step, 0.01)
        for optimizer, group_lr in ((mine, lrs), (reference, lrs)):
            for group, lr in zip(optimizer.param_groups, group_lr):
                group["lr"] = lr
        grads = [torch.randn(p.shape, generator=gen) for p in ours]
        if step % 5 == 4:
            grads[1] = None  # a parameter may miss a step: both skip it, moments and count included
        for params, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            for p, g in zip(params, grads):
                p.grad = None if g is None else g.clone()
            optimizer.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours[0], _params(0)[0])  # it moved


def test_an_encode_never_imports_torch_dynamo() -> None:
    # torch.optim imports it on first use, ~1.5 s of every encode (see inrcodec.train.optim).
    code = (
        "import sys, numpy as np\n"
        "from inrcodec.train.encoder import EncodeOptions, encode_array\n"
        "pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)\n"
        "encode_array(pixels, EncodeOptions(bpp=1.0, iterations=20))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
