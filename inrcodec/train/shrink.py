"""The landing's rate cut: move the rounded latents that buy least one step towards zero.

A trained file slightly over its rate can lose bits without retraining by
rounding some latents one step nearer zero. The rounding dead zone
(`model.round_latents`) picks them by their fractional part alone: every
level and every place alike, and whether or not the step saves bits. Here
each latent is scored by what the step costs in distortion per bit it
saves, and the cheapest go first (rate-distortion-optimised quantization,
made cheap by two approximations):

- distortion: the whole-image MSE to second order around the trained
  (float) latent x, with the others held: h * ((q' - x)**2 - (q - x)**2) / 2
  for the rounded value q and q' one step nearer zero, h being the MSE's
  Gauss-Newton curvature in that latent: 2 / (3 * pixels) times the sum
  over the pixels it reaches of the squared derivative of their colours by
  it (the synthesis Jacobian's column times the sampling tap). The dead
  zone is this with h and the rate alike everywhere. ReLU switches and the
  clamp to [0, 1] beyond the current ones are ignored. (The MSE's gradient
  at the rounded latents instead of the float ones did worse on busy
  images: neighbours that each could absorb a shared error all moved;
  bench/results/shrink-cut-2026-12-03.)
- rate: the latent's own code under the context model's prediction for it
  now (`CocoNet.bits_saved_by_shrinking`); the move also changes what its
  neighbours and children are predicted from. Under format 1.0's
  checkerboard that is too much for the anchors (half the cells, whose
  values predict the other half): moving the ones ranked cheapest raised
  the rate, so they are not candidates there.

The landing bisects how many of the ranked latents move on the exact
whole-image rate estimate (`encoder._shrink_to`), so the approximations
only decide the order.
"""

from __future__ import annotations

import torch

from ..format.context import phase_mask
from ..format.fixedpoint import LATENT_MAX, LATENT_MIN
from .model import CocoNet, Window, mlp_columns

COLOURS = 3


def shrink_costs(model: CocoNet, image: torch.Tensor, bands: list[Window]) -> list[torch.Tensor]:
    """Per level, each latent's distortion added per bit saved one step nearer zero (inf: not a candidate).

    Candidates are the non-zero rounded latents whose step saves bits (in
    format 1.0 models, outside the checkerboard anchors). `bands`
    split every level's cells exactly (`Fitter.bands`); `image` is [H, W, 3]
    in [0, 1]. The model's own shrink is ignored (and left as it is).
    """
    shrink, model.shrink = model.shrink, None
    try:
        return _costs(model, image, bands)
    finally:
        model.shrink = shrink


def _costs(model: CocoNet, image: torch.Tensor, bands: list[Window]) -> list[torch.Tensor]:
    device = image.device
    curvatures = [torch.zeros(h, w, device=device) for h, w in model.sizes]
    saved = [torch.zeros(h, w, device=device) for h, w in model.sizes]
    norm = 2.0 / (COLOURS * model.height * model.width)
    for win in bands:
        with torch.no_grad():  # only the synthesis Jacobian needs autograd, and only from the features on
            crops = model.crop_latents(win, "round")
            features = model.sample(crops, win)
            bits = model.bits_saved_by_shrinking(crops, win)
            matrices = model.sampling_matrices(crops, win)
        jacobian_sq = _jacobian_squares(model, features)
        with torch.no_grad():
            for level, ((grid, (gy, gx)), level_bits) in enumerate(zip(crops, bits)):
                h, w = grid.shape
                saved[level][gy : gy + h, gx : gx + w] += level_bits
                per_pixel = jacobian_sq[:, level].view(win.r1 - win.r0, win.c1 - win.c0)
                if matrices[level] is None:  # sampled at its own cells
                    curvatures[level][win.r0 : win.r1, win.c0 : win.c1] += norm * per_pixel
                else:
                    rows, cols = matrices[level]
                    curvatures[level][gy : gy + h, gx : gx + w] += norm * (rows**2).T @ per_pixel @ cols**2
    costs = []
    with torch.no_grad():
        rounded = model.quantized_latents("round")
        for q, x, h, bits in zip(rounded, model.latents, curvatures, saved):
            x = x.detach().clamp(LATENT_MIN, LATENT_MAX)
            step = -torch.sign(q)
            added = h / 2 * ((q + step - x) ** 2 - (q - x) ** 2)
            movable = (step != 0) & (bits > 0)
            if not model.arch.context_tile:
                movable &= ~torch.from_numpy(phase_mask(0, q.shape[0], q.shape[1], non_anchors=False)).to(q.device)
            costs.append(torch.where(movable, added / bits.clamp_min(1e-9), torch.inf))
    return costs


def _jacobian_squares(model: CocoNet, features: torch.Tensor) -> torch.Tensor:
    """Per pixel and latent level, the squared derivatives of the decoded colours summed over colours: [N, L].

    The clamp to [0, 1] counts: a colour held at a bound does not move.
    """
    features = features.clone().requires_grad_()
    colours = mlp_columns(model.synthesis, features.T)  # [3, N]
    moving = ((colours > 0) & (colours < 1)).float()
    total = torch.zeros_like(features)
    for c in range(COLOURS):
        (grad,) = torch.autograd.grad(colours[c].sum(), features, retain_graph=c < COLOURS - 1)
        total += (grad * moving[c][:, None]) ** 2
    return total


def shrink_masks(costs: list[torch.Tensor], count: int) -> list[torch.Tensor]:
    """The `count` cheapest latents of `costs` as per-level 0/1 masks (ties may add a few)."""
    flat = torch.cat([c.reshape(-1) for c in costs])
    finite = int(torch.isfinite(flat).sum())
    count = max(0, min(count, finite))
    if count == 0:
        return [torch.zeros_like(c) for c in costs]
    threshold = torch.kthvalue(flat, count).values
    return [(c <= threshold).float() for c in costs]


def n_candidates(costs: list[torch.Tensor]) -> int:
    """How many latents may move."""
    return int(sum(int(torch.isfinite(c).sum()) for c in costs))


def n_moved(shrink: list[torch.Tensor] | None) -> int:
    """How many latents a model's shrink (`CocoNet.shrink`) moves."""
    return 0 if shrink is None else sum(int(mask.sum()) for mask in shrink)
