"""Latent grid geometry and the context the entropy model sees.

Shared verbatim by training (float, differentiable) and decoding (exact
integers in float64): the same function on the same values gives the same
features, which is what lets the decoder rebuild the encoder's probabilities.

Decoding order: levels from coarsest to finest; within a level, first the
"anchor" cells ((x + y) even), then the others, as in checkerboard context
models (He et al., CVPR 2021). An anchor sees the 3x3 neighbourhood of its
parent cell in the next coarser level; a non-anchor also sees its four
same-level neighbours, which are all anchors and hence already decoded. Two
batched steps per level keep decoding to a handful of entropy-coder calls,
instead of one per pixel row as with a raster-order context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_CONTEXT = 14  # 9 parent neighbourhood + 4 same-level neighbours + phase flag


def grid_sizes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """Sizes of the latent pyramid: level i is ceil(H / 2**i) x ceil(W / 2**i)."""
    return [(-(-height // 2**i), -(-width // 2**i)) for i in range(n_levels)]


def non_anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean [H, W] mask of the cells decoded in the second step ((x + y) odd)."""
    y = torch.arange(height, device=device)[:, None]
    x = torch.arange(width, device=device)[None, :]
    return (x + y) % 2 == 1


def context_features(grid: torch.Tensor, parent: torch.Tensor | None) -> torch.Tensor:
    """Context features of every cell of one latent level.

    Args:
        grid: [H, W] latent values of this level. Only anchor values are read
            (non-anchor features are built from anchors), so a half-decoded grid
            gives the same features as the full one.
        parent: [ceil(H/2), ceil(W/2)] latents of the next coarser level, or
            None for the coarsest level (its parent features are zero).

    Returns:
        [H * W, 14] features in raster order: parent 3x3 neighbourhood (row
        major, zero outside the grid), same-level N, S, W, E (zero for anchors
        and outside the grid), then 1 for non-anchors and 0 for anchors.
    """
    height, width = grid.shape
    mask = non_anchor_mask(height, width, grid.device).to(grid.dtype)
    feats = []
    if parent is None:
        feats.extend([torch.zeros_like(grid)] * 9)
    else:
        hp, wp = parent.shape
        padded = F.pad(parent[None, None], (1, 1, 1, 1))[0, 0]
        for dy in range(3):
            for dx in range(3):
                shifted = padded[dy : dy + hp, dx : dx + wp]
                up = shifted.repeat_interleave(2, 0).repeat_interleave(2, 1)
                feats.append(up[:height, :width])
    padded = F.pad(grid[None, None], (1, 1, 1, 1))[0, 0]
    neighbours = (
        padded[0:height, 1 : width + 1],
        padded[2 : height + 2, 1 : width + 1],
        padded[1 : height + 1, 0:width],
        padded[1 : height + 1, 2 : width + 2],
    )
    feats.extend(n * mask for n in neighbours)
    feats.append(mask)
    return torch.stack(feats, dim=-1).reshape(height * width, N_CONTEXT)
