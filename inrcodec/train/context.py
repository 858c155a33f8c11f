"""The entropy model's context features for training: torch, differentiable.

The same functions of the latents as the format defines (formats/coco.md,
LATS; `format.context`): training computes them on float latents on crops,
the decoder on exact integers with its own batched paths
(`format.entropy.phase_parameters`, `format.wavefront`). On integer latents
both give the same features (tests/test_entropy.py, tests/test_wavefront.py),
which is what lets the decoder rebuild the encoder's probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..format.context import N_CONTEXT, N_WAVEFRONT_CONTEXT, WAVEFRONT_NEIGHBOURS


def context_features(grid: torch.Tensor, parent: torch.Tensor | None,
                     window: tuple[int, int, int, int] | None = None,
                     grid_origin: tuple[int, int] = (0, 0),
                     parent_origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Context features of the cells of one latent level.

    Args:
        grid: [H, W] latent values of this level. Only anchor values are read
            (non-anchor features are built from anchors), so a half-decoded grid
            gives the same features as the full one.
        parent: [ceil(H/2), ceil(W/2)] latents of the next coarser level, or
            None for the coarsest level (its parent features are zero).
        window: (r0, r1, c0, c1) to compute only cells [r0:r1, c0:c1]
            (training on crops); None for the whole level.
        grid_origin, parent_origin: level coordinates of element [0, 0] of
            `grid` and `parent` when they are sub-grids (training on crops).
            They must extend one cell beyond the window (and its parents)
            except at the true border of the level, where zeros are right.

    Returns:
        [n_cells, 14] features in raster order: parent 3x3 neighbourhood (row
        major, zero outside the grid), same-level N, S, W, E (zero for anchors
        and outside the grid), then 1 for non-anchors and 0 for anchors.
    """
    gy, gx = grid_origin
    r0, r1, c0, c1 = window or (gy, gy + grid.shape[0], gx, gx + grid.shape[1])
    y = torch.arange(r0, r1, device=grid.device)[:, None]
    x = torch.arange(c0, c1, device=grid.device)[None, :]
    mask = ((x + y) % 2 == 1).to(grid.dtype)
    feats = [parent_features(grid, parent, (r0, r1, c0, c1), parent_origin)]
    padded = F.pad(grid[None, None], (1, 1, 1, 1))[0, 0]
    r0, r1, c0, c1 = r0 - gy, r1 - gy, c0 - gx, c1 - gx
    neighbours = (
        padded[r0 : r1, c0 + 1 : c1 + 1],
        padded[r0 + 2 : r1 + 2, c0 + 1 : c1 + 1],
        padded[r0 + 1 : r1 + 1, c0 : c1],
        padded[r0 + 1 : r1 + 1, c0 + 2 : c1 + 2],
    )
    feats.append(torch.stack([n * mask for n in neighbours] + [mask]))
    return torch.cat(feats).reshape(N_CONTEXT, -1).T


def parent_features(grid: torch.Tensor, parent: torch.Tensor | None, window: tuple[int, int, int, int],
                    parent_origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """[9, r1 - r0, c1 - c0]: the 3x3 neighbourhood of each window cell's parent.

    Zero outside the parent level; all zero without one (the coarsest level).
    """
    r0, r1, c0, c1 = window
    if parent is None:
        return torch.zeros((9, r1 - r0, c1 - c0), dtype=grid.dtype, device=grid.device)
    # Parent of cell (y, x) is (y >> 1, x >> 1): gather the 3x3
    # neighbourhoods of the parent cells under the window in one unfold,
    # upsample by repetition, then align to the window.
    pr0, pr1 = r0 >> 1, ((r1 - 1) >> 1) + 1
    pc0, pc1 = c0 >> 1, ((c1 - 1) >> 1) + 1
    padded = F.pad(parent[None, None], (1, 1, 1, 1))
    oy, ox = r0 - 2 * pr0, c0 - 2 * pc0
    pr0, pr1 = pr0 - parent_origin[0], pr1 - parent_origin[0]
    pc0, pc1 = pc0 - parent_origin[1], pc1 - parent_origin[1]
    block = padded[:, :, pr0 : pr1 + 2, pc0 : pc1 + 2]
    hood = F.unfold(block, 3).reshape(9, pr1 - pr0, pc1 - pc0)  # row-major 3x3
    up = hood.repeat_interleave(2, 1).repeat_interleave(2, 2)
    return up[:, oy : oy + r1 - r0, ox : ox + c1 - c0]


def wavefront_context_features(grid: torch.Tensor, parent: torch.Tensor | None, tile: tuple[int, int],
                               window: tuple[int, int, int, int] | None = None,
                               grid_origin: tuple[int, int] = (0, 0),
                               parent_origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Format 2.0's context features of the cells of one latent level: [n_cells, 21], raster order.

    The parent cell's 3x3 neighbourhood (as `context_features`' first nine),
    then the level's WAVEFRONT_NEIGHBOURS that lie in the cell's own tile
    (`tile` = (width, height) cells, tiles start at cell 0 of each axis), zero for those
    outside the tile or the level. Arguments as `context_features`'; a
    sub-grid must reach two cells beyond the window (or the level's border).
    """
    gy, gx = grid_origin
    r0, r1, c0, c1 = window or (gy, gy + grid.shape[0], gx, gx + grid.shape[1])
    h, w = r1 - r0, c1 - c0
    tile_w, tile_h = tile
    ly = torch.arange(r0, r1, device=grid.device) % tile_h
    lx = torch.arange(c0, c1, device=grid.device) % tile_w
    # A neighbour is in the cell's tile when its row and its column are:
    # separable masks, one per row offset and one per column offset.
    row_in = {dy: (ly + dy >= 0).to(grid.dtype)[:, None] for dy in (-2, -1)}
    col_in = {dx: ((lx + dx >= 0) & (lx + dx < tile_w)).to(grid.dtype)[None, :] for dx in (-2, -1, 1, 2)}
    padded = F.pad(grid, (2, 2, 2, 0))
    top, left = r0 - gy + 2, c0 - gx + 2
    feats = [parent_features(grid, parent, (r0, r1, c0, c1), parent_origin)]
    same_level = []
    for dy, dx in WAVEFRONT_NEIGHBOURS:
        value = padded[top + dy : top + dy + h, left + dx : left + dx + w]
        if dy:
            value = value * row_in[dy]
        if dx:
            value = value * col_in[dx]
        same_level.append(value)
    feats.append(torch.stack(same_level))
    return torch.cat(feats).reshape(N_WAVEFRONT_CONTEXT, -1).T


def level_context(tile: tuple[int, int] | None, grid: torch.Tensor, parent: torch.Tensor | None,
                  window: tuple[int, int, int, int] | None = None, grid_origin: tuple[int, int] = (0, 0),
                  parent_origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """The context features of an architecture's `context_tile`: format 1.0's for None, format 2.0's otherwise."""
    if tile:
        return wavefront_context_features(grid, parent, tile, window, grid_origin, parent_origin)
    return context_features(grid, parent, window, grid_origin, parent_origin)
