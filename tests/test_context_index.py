"""The training context model's gather indices (`model._WavefrontIndex`) against a cell-by-cell construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrcodec.format.architecture import Architecture
from inrcodec.format.context import WAVEFRONT_NEIGHBOURS
from inrcodec.train.model import CocoNet, Window, _WavefrontIndex


def reference_index(grids: list[tuple[tuple[int, int], tuple[int, int]]], sizes: list[tuple[int, int]],
                    win: Window, tile: tuple[int, int]) -> dict[str, np.ndarray]:
    """`_WavefrontIndex.of`'s arrays, every index and test worked out on whole arrays (its implementation
    until 2026-12-05), as flat int64 / bool arrays."""
    tile_w, tile_h = tile
    hood_dy, hood_dx = np.repeat(np.arange(-1, 2), 3)[:, None, None], np.tile(np.arange(-1, 2), 3)[:, None, None]
    near_dy = np.array([dy for dy, _ in WAVEFRONT_NEIGHBOURS])[:, None, None]
    near_dx = np.array([dx for _, dx in WAVEFRONT_NEIGHBOURS])[:, None, None]
    children = ((0, 0), (0, 1), (1, 0), (1, 1))
    bases = np.cumsum([0] + [h * w for (h, w), _ in grids])
    zero = int(bases[-1])
    hoods, neighbours = [], [[] for _ in children]
    values, inside = [[] for _ in children], [[] for _ in children]
    for level, ((h, w), (gy, gx)) in enumerate(grids):
        cells = win.at_level(level)
        level_h, level_w = sizes[level]
        prow = np.arange(cells.r0 >> 1, (cells.r1 + 1) >> 1)[:, None]
        pcol = np.arange(cells.c0 >> 1, (cells.c1 + 1) >> 1)[None, :]
        if level + 1 < len(grids):
            (ph, pw), (py0, px0) = grids[level + 1]
            up_h, up_w = sizes[level + 1]
            py, px = prow[None] + hood_dy, pcol[None] + hood_dx
            in_level = (py >= 0) & (py < up_h) & (px >= 0) & (px < up_w)
            hood = np.where(in_level, bases[level + 1] + (py - py0) * pw + (px - px0), zero)
        else:
            hood = np.full((9, prow.size, pcol.size), zero)
        hoods.append(hood.reshape(9, -1))
        for slot, (dy, dx) in enumerate(children):
            y, x = 2 * prow + dy, 2 * pcol + dx
            in_level = (y < level_h) & (x < level_w)
            values[slot].append(np.where(in_level, bases[level] + (y - gy) * w + (x - gx), zero).reshape(-1))
            under = (y >= cells.r0) & (y < cells.r1) & (x >= cells.c0) & (x < cells.c1)
            inside[slot].append(np.broadcast_to(under, in_level.shape).reshape(-1))
            ny, nx = y[None] + near_dy, x[None] + near_dx
            in_tile = ((ny // tile_h == y[None] // tile_h) & (nx // tile_w == x[None] // tile_w)
                       & (ny >= 0) & (nx >= 0) & (nx < level_w) & in_level[None])
            neighbours[slot].append(np.where(in_tile, bases[level] + (ny - gy) * w + (nx - gx), zero)
                                    .reshape(len(WAVEFRONT_NEIGHBOURS), -1))
    return {"hoods": np.concatenate(hoods, axis=-1).reshape(-1),
            "neighbours": np.concatenate(sum(neighbours, []), axis=-1).reshape(-1),
            "values": np.concatenate(sum(values, []), axis=-1).reshape(-1),
            "inside": np.concatenate(sum(inside, []), axis=-1).reshape(-1)}


@pytest.mark.parametrize("size, tile, learned", [((512, 768), (64, 64), True), ((77, 53), (8, 8), False),
                                                 ((130, 200), (16, 32), True), ((5, 3), (2, 2), False),
                                                 ((64, 64), (128, 128), True)])
def test_the_wavefront_gather_indices_are_the_cell_by_cell_ones(size: tuple[int, int], tile: tuple[int, int],
                                                                learned: bool) -> None:
    height, width = size
    model = CocoNet(height, width, Architecture(7, (16, 16), (16, 16), tile, learned))
    rng = np.random.default_rng(1)
    crop = 256
    for _ in range(40):  # windows drawn as the fit draws them, clipped at the border
        r0, c0 = int(rng.integers(1 - crop, height)), int(rng.integers(1 - crop, width))
        win = Window(max(0, r0), min(height, r0 + crop), max(0, c0), min(width, c0 + crop))
        crops = model.crop_latents(win, "round")
        grids = [(tuple(g.shape), origin) for g, origin in crops]
        index = _WavefrontIndex.of(grids, model.sizes, win, tile, torch.device("cpu"))
        expected = reference_index(grids, model.sizes, win, tile)
        for name, array in expected.items():
            got = getattr(index, name).numpy()
            assert got.shape == array.shape, name
            assert np.array_equal(got, array.astype(got.dtype)), (name, win)
