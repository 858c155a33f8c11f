"""Sampling latent grids at pixel centres with separable bicubic taps.

The decoder samples exactly (integer latents times Q12 taps, `sample_exact`)
in numpy float64 arrays; training builds dense float matrices from the same
taps (`train.model.CocoNet.taps`), so the encoder trains on exactly the
interpolation the decoder will run.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .fixedpoint import ACT_ONE, bicubic_taps

# Taps of an output sample whose source grid is an exact integer factor
# smaller reach at most two cells either side of its block's own cell.
PHASE_REACH = 2
PHASE_TAPS = 2 * PHASE_REACH + 1
# Outputs a weighted sum computes at a time (`_weighted_sum`): the chunk,
# its scratch and its source lines stay in a core's L2 cache.
CHUNK_ELEMENTS = 1 << 16


class AxisTaps:
    """Bicubic taps of one axis of one latent level for a given output size.

    Attributes:
        identity: whether n_out == n_in (u = j exactly: weights (0, 1, 0, 0)).
        index: int64 array [n_out, 4] of source cells.
        weight_q12: float64 array [n_out, 4] of Q12 integer weights.
        phases: float64 array [s, 5] of Q12 integers (see `polyphase`), or None.
        n_in: the source's size along the axis.
    """

    def __init__(self, n_out: int, n_in: int) -> None:
        index, weight = bicubic_taps(n_out, n_in)
        self.identity = n_out == n_in
        self.index = index
        self.weight_q12 = weight.astype(np.float64)
        phases = polyphase(index, weight, n_out, n_in)
        self.phases = None if phases is None else phases.astype(np.float64)
        self.n_in = n_in

    def slice(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
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


def sample_exact(grid: np.ndarray, rows: AxisTaps, cols: AxisTaps, r0: int, r1: int) -> np.ndarray:
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
        out = _weighted_sum(x, 1, cols.index, cols.weight_q12)
    else:
        out = _along_columns(x, cols)
        out /= ACT_ONE  # a power of two: exact
    return np.floor(out, out=out)


def resample_q12(planes: np.ndarray, lo: int, rows: AxisTaps, cols: AxisTaps, r0: int, r1: int) -> np.ndarray:
    """Bicubic samples of Q12 `planes` [m, rows lo.., n_in] at output rows r0..r1-1, all columns: [m, r1 - r0, n_out].

    Format 3.0's resampling of its full-resolution planes: each axis pass
    sums four Q12 tap x Q12 value products (below 2**35) and floors them
    divided by 4096, rows first.
    """
    index, weight = rows.slice(r0, r1)
    x = _weighted_sum(planes, 1, index - lo, weight)
    np.floor(x, out=x)
    out = _weighted_sum(x, 2, cols.index, cols.weight_q12)
    return np.floor(out, out=out)


def _weighted_sum(x: np.ndarray, axis: int, index: np.ndarray, weight_q12: np.ndarray) -> np.ndarray:
    """Sum over the 4 taps of x's lines index[:, a] along `axis`, times weight_q12[:, a] / 4096, tap by tap.

    The Q12 weights over 4096 are exact dyadic numbers, and so is every
    partial sum: the result is the Q24 sum divided by 4096, exactly, with no
    [.., 4, ..] temporary. x is seen as [before, lines, after] (the axes
    before and after `axis` flattened; a view for the arrays the decoder
    passes) and summed a chunk of about CHUNK_ELEMENTS outputs at a time, so
    the gathers, products and sums of a chunk run while it is in cache.
    Gathering in place along the last axis, chunked, beat moving that axis
    to the front and back (two transposing copies of the planes): 333 x
    500 from 512 x 768, ~16 -> ~8 ms a band (ad hoc, numpy 2.4).
    """
    shape = x.shape
    lines = x.reshape(int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1 :])))
    n_out = index.shape[0]
    out = np.empty((lines.shape[0], n_out, lines.shape[2]))
    weight = weight_q12 / ACT_ONE
    per_line = lines.shape[2]
    outputs_per_chunk = min(n_out, max(1, CHUNK_ELEMENTS // per_line))
    befores_per_chunk = max(1, CHUNK_ELEMENTS // (outputs_per_chunk * per_line))
    term = np.empty((min(befores_per_chunk, lines.shape[0]), outputs_per_chunk, per_line))
    for p0 in range(0, lines.shape[0], befores_per_chunk):
        p1 = min(lines.shape[0], p0 + befores_per_chunk)
        for c0 in range(0, n_out, outputs_per_chunk):
            c1 = min(n_out, c0 + outputs_per_chunk)
            _add_taps(lines[p0:p1], index[c0:c1], weight[c0:c1], out[p0:p1, c0:c1], term[: p1 - p0, : c1 - c0])
    return out.reshape(*shape[:axis], n_out, *shape[axis + 1 :])


def _add_taps(lines: np.ndarray, index: np.ndarray, weight: np.ndarray, out: np.ndarray, term: np.ndarray) -> None:
    """out [b, n, a] = sum over taps t of lines[:, index[:, t]] times weight[:, t]; term: scratch like out."""
    # mode="clip" (the indices are in range): with the default "raise", take
    # buffers `out` and copies it over once more.
    np.take(lines, index[:, 0], axis=1, out=out, mode="clip")
    out *= weight[:, 0, None]
    for t in range(1, index.shape[1]):
        np.take(lines, index[:, t], axis=1, out=term, mode="clip")
        term *= weight[:, t, None]
        out += term


def _along_rows(grid: np.ndarray, taps: AxisTaps, r0: int, r1: int) -> np.ndarray:
    """Output rows r0..r1-1 resampled from the grid's rows: [r1 - r0, grid width], taps' scale."""
    if taps.phases is not None:
        s = taps.phases.shape[0]
        k0, k1 = r0 // s, (r1 - 1) // s + 1
        source = np.clip(np.arange(k0 - PHASE_REACH, k1 + PHASE_REACH), 0, taps.n_in - 1)
        # Block k's five source rows as a strided view [blocks, 5, width]: one
        # [s, 5] @ [5, width] product per block, no copy of the windows.
        windows = np.moveaxis(sliding_window_view(grid[source], PHASE_TAPS, axis=0), 2, 1)
        out = np.matmul(taps.phases, windows)  # [blocks, s, width]
        return out.reshape(-1, grid.shape[1])[r0 - k0 * s : r1 - k0 * s]
    ri, rw = taps.slice(r0, r1)
    lo, hi = int(ri.min()), int(ri.max()) + 1
    return (grid[lo:hi][ri - lo] * rw[:, :, None]).sum(1)


def _along_columns(x: np.ndarray, taps: AxisTaps) -> np.ndarray:
    """Every output column resampled from the columns of `x` by its polyphase taps: [rows, n_out], times their scale."""
    source = np.clip(np.arange(-PHASE_REACH, taps.n_in + PHASE_REACH), 0, taps.n_in - 1)
    windows = sliding_window_view(x[:, source], PHASE_TAPS, axis=1).reshape(-1, PHASE_TAPS)  # [rows * n_in, 5]
    return (windows @ taps.phases.T).reshape(x.shape[0], -1)  # [rows, n_in * s]


def pixel_taps(height: int, width: int, sizes: list[tuple[int, int]]) -> list[tuple[AxisTaps, AxisTaps]]:
    """Row and column taps of every level for an output of height x width."""
    return [(AxisTaps(height, h), AxisTaps(width, w)) for h, w in sizes]
