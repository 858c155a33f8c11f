"""Analytic start: latents that already hold the image's luminance.

Fitting from zero latents spends most of a CPU budget discovering the image
structure one Adam step at a time. Instead the latent pyramid starts as a
Laplacian-style decomposition of the luminance (coarse levels the local
means, finer levels the residual detail, all in units of `step`) and the
synthesis MLP starts as the linear map that sums the levels back into grey:
step one already renders a grey version of the image, and training only has
to add colour and trade detail for rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import CocoNet

LUMA = (0.299, 0.587, 0.114)
OFFSET = 1.0  # keeps the carrier units' ReLUs in their linear range


@torch.no_grad()
def analytic_init(model: CocoNet, image: torch.Tensor, step: float) -> None:
    """Set `model`'s latents and synthesis MLP from `image` ([H, W, 3] in [0, 1]).

    Args:
        step: luminance change per latent unit; smaller is finer (more bits).
    """
    luma = (image * torch.tensor(LUMA, device=image.device)).sum(-1) - 0.5
    recon = torch.zeros_like(luma)
    win = model.full_window()
    levels = list(range(model.arch.n_levels))
    for level in reversed(levels):
        residual = (luma - recon)[None, None]
        k = 2**level
        # Area average over each cell's 2**level square (ceil_mode: partial
        # border cells average what they cover), matching grid_sizes.
        mean = F.avg_pool2d(residual, k, k, ceil_mode=True)[0, 0] if k > 1 else residual[0, 0]
        grid = torch.round(mean / step)
        model.latents[level].copy_(grid)
        crops = [g if i == level else torch.zeros_like(g) for i, g in enumerate(model.latents)]
        recon += step * model.sample(list(crops), win)[:, level].reshape(luma.shape)
    _linear_synthesis(model, step)


def _linear_synthesis(model: CocoNet, step: float) -> None:
    """Make the synthesis MLP output 0.5 + step * sum(features) in all colours.

    One unit per hidden layer carries the sum (shifted by OFFSET so ReLU is the
    identity on it); the other units keep their random input weights but get
    zero output weights, so they start silent and learn colour and detail.
    """
    linears = [m for m in model.synthesis if isinstance(m, torch.nn.Linear)]
    first, hidden, last = linears[0], linears[1:-1], linears[-1]
    first.weight[0].fill_(step)
    first.bias[0] = OFFSET
    for lin in hidden:
        lin.weight[0].zero_()
        lin.weight[:, 0].zero_()
        lin.weight[0, 0] = 1.0
        lin.bias[0] = 0.0
    last.weight.zero_()
    last.weight[:, 0] = 1.0
    last.bias.fill_(0.5 - OFFSET)
