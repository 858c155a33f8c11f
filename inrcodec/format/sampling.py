"""Sampling latent grids at pixel centres with separable bicubic taps.

The decoder samples exactly (integer latents times Q12 taps, `sample_exact`);
training builds dense float matrices from the same taps
(`train.model.CocoNet.taps`), so the encoder trains on exactly the
interpolation the decoder will run.
"""

from __future__ import annotations

import numpy as np
import torch

from .fixedpoint import ACT_ONE, bicubic_taps

# Taps of an output sample whose source grid is an exact integer factor
# smaller reach at most two cells either side of its block's own cell.
PHASE_REACH = 2
PHASE_TAPS = 2 * PHASE_REACH + 1


class AxisTaps:
    """Bicubic taps of one axis of one latent level for a given output size."""

    def __init__(self, n_out: int, n_in: int, device: torch.device | str = "cpu") -> None:
        index, weight = bicubic_taps(n_out, n_in)
        self.identity = n_out == n_in  # u = j exactly: weights (0, 1, 0, 0)
        self.index = torch.as_tensor(index, device=device)
        self.weight_q12 = torch.as_tensor(weight, dtype=torch.float64, device=device)
        phases = polyphase(index, weight, n_out, n_in)
        self.phases = None if phases is None else torch.as_tensor(phases, dtype=torch.float64, device=device)
        self.n_in = n_in

    def slice(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices [n, 4] and Q12 weights [n, 4] of outputs start..stop-1."""
        return self.index[start:stop], self.weight_q12[start:stop]


def polyphase(index: np.ndarray, weight: np.ndarray, n_out: int, n_in: int) -> np.ndarray | None:
    """The taps as s phases of one 5-tap filter, when the output is s times the input.

    Output j = s * k + p then reads source cells k - 2 .. k + 2 (clamped to
    the grid) with the weights of row p of the result, [s, 5] Q12 integers:
    a small dense product instead of gathering four cells per output. The
    phases are read off an interior block and then checked against every
    output's own taps (edges included); None if the factor is not an integer
    of at least 2, or if any output differs (then the general path runs).
    """
    if n_out <= n_in or n_out % n_in or n_in < PHASE_TAPS:
        return None
    s = n_out // n_in
    k = n_in // 2
    phases = np.zeros((s, PHASE_TAPS), dtype=np.int64)
    rows = s * k + np.arange(s)
    np.add.at(phases, (np.repeat(np.arange(s), 4), (index[rows] - k + PHASE_REACH).reshape(-1)),
              weight[rows].reshape(-1))
    # Every output's taps and the phase filter's, as weights over the seven
    # cells k - 3 .. k + 3 around its block (both clamp at the grid's edges).
    j = np.arange(n_out)
    block = j // s
    mine = np.zeros((n_out, PHASE_TAPS + 2), dtype=np.int64)
    offset = index - (block[:, None] - PHASE_REACH - 1)
    if offset.min() < 0 or offset.max() > PHASE_TAPS + 1:
        return None
    np.add.at(mine, (np.repeat(j, 4), offset.reshape(-1)), weight.reshape(-1))
    theirs = np.zeros_like(mine)
    cells = np.clip(block[:, None] + np.arange(-PHASE_REACH, PHASE_REACH + 1)[None, :], 0, n_in - 1)
    np.add.at(theirs, (np.repeat(j, PHASE_TAPS), (cells - (block[:, None] - PHASE_REACH - 1)).reshape(-1)),
              phases[j % s].reshape(-1))
    return phases if np.array_equal(mine, theirs) else None


def sample_exact(grid: torch.Tensor, rows: AxisTaps, cols: AxisTaps, r0: int, r1: int) -> torch.Tensor:
    """Exact Q12 sample of integer `grid` (float64) at output rows r0..r1-1, all columns.

    Integer latents times Q12 taps in both axes give Q24 integers below 2**33;
    flooring by 4096 brings the result back to Q12. Every partial sum is an
    exact integer in float64, so the order in which the two axes and the taps
    are summed cannot change a result.
    """
    if rows.identity and cols.identity:  # taps (0, 4096, 0, 0): the cells themselves, in Q12
        return grid[r0:r1] * ACT_ONE
    x = _along_rows(grid, rows, r0, r1)
    if cols.phases is None:  # the column pass's weights over 4096 leave the Q24 sum over 4096, exactly
        return _weighted_sum(x, 1, cols.index, cols.weight_q12).floor_()
    return torch.floor(_along_columns(x, cols) / ACT_ONE)


def resample_q12(planes: torch.Tensor, lo: int, rows: AxisTaps, cols: AxisTaps, r0: int, r1: int) -> torch.Tensor:
    """Bicubic samples of Q12 `planes` [m, rows lo.., n_in] at output rows r0..r1-1, all columns: [m, r1 - r0, n_out].

    Format 3.0's resampling of its full-resolution planes: each axis pass
    sums four Q12 tap x Q12 value products (below 2**35) and floors them
    divided by 4096, rows first.
    """
    index, weight = rows.slice(r0, r1)
    x = _weighted_sum(planes, 1, index - lo, weight).floor_()
    return _weighted_sum(x, 2, cols.index, cols.weight_q12).floor_()


def _weighted_sum(x: torch.Tensor, dim: int, index: torch.Tensor, weight_q12: torch.Tensor) -> torch.Tensor:
    """Sum over the 4 taps of x's lines index[:, a] along `dim`, times weight_q12[:, a] / 4096, tap by tap.

    The Q12 weights over 4096 are exact dyadic numbers, and so is every
    partial sum: the result is the Q24 sum divided by 4096, exactly, with no
    [.., 4, ..] temporary. The lines are gathered with `dim` moved to the
    front, where each is a contiguous block (gathering single elements
    along the last dimension ran ~4x slower).
    """
    front = x.movedim(dim, 0).contiguous()
    weight = (weight_q12 / ACT_ONE).reshape(*weight_q12.shape[:1], *([1] * (x.dim() - 1)), weight_q12.shape[1])
    out = front.index_select(0, index[:, 0]).mul_(weight[..., 0])
    for a in range(1, index.shape[1]):
        out.addcmul_(front.index_select(0, index[:, a]), weight[..., a])
    return out.movedim(0, dim).contiguous()


def _along_rows(grid: torch.Tensor, taps: AxisTaps, r0: int, r1: int) -> torch.Tensor:
    """Output rows r0..r1-1 resampled from the grid's rows: [r1 - r0, grid width], taps' scale."""
    if taps.phases is not None:
        s = taps.phases.shape[0]
        k0, k1 = r0 // s, (r1 - 1) // s + 1
        source = torch.arange(k0 - PHASE_REACH, k1 + PHASE_REACH, device=grid.device).clamp_(0, taps.n_in - 1)
        width = grid.shape[1]
        windows = grid.index_select(0, source).unfold(0, PHASE_TAPS, 1).reshape(-1, PHASE_TAPS)  # [blocks * width, 5]
        out = (windows @ taps.phases.T).view(k1 - k0, width, s).transpose(1, 2)  # [blocks, s, width]
        return out.reshape(-1, width)[r0 - k0 * s : r1 - k0 * s]
    ri, rw = taps.slice(r0, r1)
    lo, hi = int(ri.min()), int(ri.max()) + 1
    return (grid[lo:hi][ri - lo] * rw[:, :, None]).sum(1)


def _along_columns(x: torch.Tensor, taps: AxisTaps) -> torch.Tensor:
    """Every output column resampled from the columns of `x` by its polyphase taps: [rows, n_out], times their scale."""
    source = torch.arange(-PHASE_REACH, taps.n_in + PHASE_REACH, device=x.device).clamp_(0, taps.n_in - 1)
    windows = x.index_select(1, source).unfold(1, PHASE_TAPS, 1).reshape(-1, PHASE_TAPS)  # [rows * n_in, 5]
    return (windows @ taps.phases.T).view(x.shape[0], -1)  # [rows, n_in * s]


def pixel_taps(height: int, width: int, sizes: list[tuple[int, int]],
               device: torch.device | str = "cpu") -> list[tuple[AxisTaps, AxisTaps]]:
    """Row and column taps of every level for an output of height x width."""
    return [(AxisTaps(height, h, device), AxisTaps(width, w, device)) for h, w in sizes]
