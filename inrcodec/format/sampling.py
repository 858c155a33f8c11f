"""Sampling latent grids at pixel centres with separable bicubic taps.

One function serves training (float weights = Q12 taps / 4096, differentiable)
and decoding (integer taps, exact), so the encoder trains on exactly the
interpolation the decoder will run.
"""

from __future__ import annotations

import torch

from .fixedpoint import ACT_ONE, bicubic_taps


class AxisTaps:
    """Bicubic taps of one axis of one latent level for a given output size."""

    def __init__(self, n_out: int, n_in: int, device: torch.device | str = "cpu") -> None:
        index, weight = bicubic_taps(n_out, n_in)
        self.identity = n_out == n_in  # u = j exactly: weights (0, 1, 0, 0)
        self.index = torch.as_tensor(index, device=device)
        self.weight_q12 = torch.as_tensor(weight, dtype=torch.float64, device=device)

    def slice(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices [n, 4] and Q12 weights [n, 4] of outputs start..stop-1."""
        return self.index[start:stop], self.weight_q12[start:stop]


def sample_float(grid: torch.Tensor, rows: AxisTaps, cols: AxisTaps,
                 r0: int, r1: int, c0: int, c1: int, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Differentiable sample of `grid` at outputs [r0:r1, c0:c1].

    `grid` may be a sub-grid whose element [0, 0] is level cell `origin`; it
    must hold every cell the taps of those outputs touch.
    """
    gy, gx = origin
    if rows.identity and cols.identity:
        return grid[r0 - gy : r1 - gy, c0 - gx : c1 - gx]
    ri, rw = rows.slice(r0, r1)
    ci, cw = cols.slice(c0, c1)
    rw = (rw / ACT_ONE).to(grid.dtype)
    cw = (cw / ACT_ONE).to(grid.dtype)
    tmp = (grid[ri - gy] * rw[:, :, None]).sum(1)  # [n_rows, sub-grid width]
    return (tmp[:, ci - gx] * cw[None]).sum(-1)  # [n_rows, n_cols]


def sample_exact(grid: torch.Tensor, rows: AxisTaps, cols: AxisTaps, r0: int, r1: int) -> torch.Tensor:
    """Exact Q12 sample of integer `grid` (float64) at output rows r0..r1-1, all columns.

    Integer latents times Q12 taps in both axes give Q24 integers below 2**33;
    flooring by 4096 brings the result back to Q12.
    """
    if rows.identity and cols.identity:  # taps (0, 4096, 0, 0): the cells themselves, in Q12
        return grid[r0:r1] * ACT_ONE
    ri, rw = rows.slice(r0, r1)
    lo, hi = int(ri.min()), int(ri.max()) + 1
    band = grid[lo:hi]
    tmp = (band[ri - lo] * rw[:, :, None]).sum(1)  # [n_rows, Wg], Q12
    out = (tmp[:, cols.index] * cols.weight_q12[None]).sum(-1)  # Q24
    return torch.floor(out / ACT_ONE)


def pixel_taps(height: int, width: int, sizes: list[tuple[int, int]],
               device: torch.device | str = "cpu") -> list[tuple[AxisTaps, AxisTaps]]:
    """Row and column taps of every level for an output of height x width."""
    return [(AxisTaps(height, h, device), AxisTaps(width, w, device)) for h, w in sizes]

