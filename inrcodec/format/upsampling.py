"""Format 3.0's learned upsampling: each coarse latent level reaches full resolution through 2x steps.

A step doubles one resolution into the next finer one, rows first, then
columns, with that resolution's four Q12 filter taps t0..t3 from the header
(`Header.up_taps[r]` is the step *into* resolution r, shared by every level
that passes through it). Along one axis, output i of a step reads source
cells j - 2 .. j + 1 with taps t0 .. t3 when i = 2j is even, and cells
j - 1 .. j + 2 with the taps mirrored (t3 .. t0) when i = 2j + 1 is odd;
source indices are clamped to the source's cells (its edges replicated), and
outputs beyond the finer resolution's size (`context.grid_sizes`) are not
computed. With bicubic's taps (`BICUBIC_2X`) a step is bicubic 2x
interpolation.

Exact arithmetic: a level starts as its integer latents times 4096 (Q12);
each axis pass forms the sum of four (Q12 tap x Q12 value) products, floors
it divided by 4096 and clamps it to +-ACT_LIMIT. Every value is an integer
below 2**37 in float64, so the order of the sums cannot change a result.

The training side (`train.model.CocoNet`) builds each step as a matrix from
`step_sources`, so the encoder trains on the steps the decoder runs.
"""

from __future__ import annotations

import numpy as np

from .fixedpoint import ACT_LIMIT, ACT_ONE

UP_TAPS = 4
UP_TAP_MIN, UP_TAP_MAX = -(1 << 15), (1 << 15) - 1  # i16 in the header
# Keys' cubic (a = -0.75) at distances 1.75, 0.75, 0.25, 1.25: the even
# output of a 2x step sits a quarter cell before source j.
BICUBIC_2X = (-0.03515625, 0.26171875, 0.87890625, -0.10546875)  # exactly -144, 1072, 3600, -432 / 4096
# Outputs a pass computes at a time (`_Step._fill`): the chunk, its source
# lines and their four tap products, ~1-2 MiB of float64, stay in a core's
# L2 cache from one operation to the next. 2**15..2**17 ran alike; unchunked,
# LevelPlanes.rows of a 768x512 image took ~30 instead of ~21 ms (ad hoc,
# numpy 2.4, one core).
CHUNK_ELEMENTS = 1 << 16


def step_sources(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Source cells [n_out, 4] (clamped to 0..n_in-1) and which tap each is weighted by [n_out, 4], of one 2x step."""
    i = np.arange(n_out)[:, None]
    k = np.arange(UP_TAPS)[None, :]
    odd = i % 2 == 1
    source = np.where(odd, i // 2 - 1 + k, i // 2 - 2 + k)
    which = np.where(odd, UP_TAPS - 1 - k, k)
    return np.clip(source, 0, n_in - 1), np.broadcast_to(which, source.shape).copy()


class _Step:
    """One resolution's 2x step along both axes: shifted multiply-adds of whole lines (no per-output gathers).

    Both phases of output pair (2j, 2j + 1) read source cells j - 2 .. j + 2
    (the even one the first four, the odd one the last four, mirrored), so
    a pass gathers the clamped source lines once and sums four shifted
    slices per phase: the same integers as `step_sources` defines.
    """

    def __init__(self, taps_q12: tuple[int, ...], out_size: tuple[int, int], in_size: tuple[int, int]) -> None:
        # The taps over 4096 are exact dyadic numbers, and so is every partial
        # sum (below 2**37 / 4096 with 12 fractional bits): flooring the sum is
        # flooring the Q24 integer divided by 4096.
        self.taps = [t / ACT_ONE for t in taps_q12]
        self.out_size, self.in_size = out_size, in_size

    def source_rows(self, a: int, b: int) -> tuple[int, int]:
        """The source rows that output rows a..b-1 read."""
        return max(0, a // 2 - 2), min(self.in_size[0], (b - 1) // 2 + 3)

    def __call__(self, planes: np.ndarray, lo: int, a: int, b: int, out: np.ndarray) -> None:
        """Output rows a..b-1, all columns, of planes [m, rows lo.., w_in] (Q12) into `out` [m, b - a, w_out].

        The row pass leaves the column pass's edge columns in place around
        its output, and the column pass writes straight into `out` where it
        can: no copy of the planes in between (a Kodak image's last step
        copied ~30 MB that way, ad hoc).
        """
        w_in, w_out = self.in_size[1], self.out_size[1]
        margin = (2, max(0, (w_out - 1) // 2 + 3 - w_in))  # the columns -2 .. jb + 1 the column pass reads
        rows = self._pass(planes, 1, lo, self.in_size[0], a, b, margin=margin)
        self._pass(rows, 2, -margin[0], w_in, 0, w_out, out=out)

    def _pass(self, x: np.ndarray, axis: int, lo: int, n_in: int, a: int, b: int,
              margin: tuple[int, int] = (0, 0), out: np.ndarray | None = None) -> np.ndarray:
        """Outputs a..b-1 along `axis` of x (its cells lo.. of n_in along `axis`), floored to Q12.

        margin: (before, after) edge copies to add along the last axis of
        the result (a row pass's, for the column pass); out: where the
        result goes (a column pass's), written in place when its layout
        allows.
        """
        ja, jb = a // 2, (b - 1) // 2 + 1
        x = _edge_padded_lines(x, axis, lo, n_in, ja - 2, jb + 2)
        n = jb - ja
        shape = list(x.shape)
        shape[axis : axis + 1] = [n, 2]
        shape[-1] += sum(margin)
        in_place = out is not None and a == 2 * ja and b - a == 2 * n and out.flags.c_contiguous
        # Output 2j + p at [..., j, p, ...]: the two phases interleaved.
        interleaved = out.reshape(shape) if in_place else np.empty(shape)  # a view of a contiguous `out`
        self._fill(x, _core(interleaved, margin), axis)
        flat = list(interleaved.shape)
        flat[axis : axis + 2] = [2 * n]
        both = _lines(interleaved.reshape(flat), axis, a - 2 * ja, b - 2 * ja)
        _fill_margins(both, margin)
        if out is not None and not in_place:
            out[...] = both
        return both

    def _fill(self, x: np.ndarray, inside: np.ndarray, axis: int) -> None:
        """Every output pair along `axis` (1 or 2) of planes `inside` [m, .., j, 2, ..], floored and clamped.

        A plane's outputs a few lines of axis 1 at a time (CHUNK_ELEMENTS):
        the products, sums, floor and clamp of a chunk run while it is in
        cache, where numpy's unfused multiply then add would otherwise
        stream whole planes through memory once per operation.
        """
        line = inside[0, 0].size  # the elements of one line along axis 1, both phases
        per_chunk = max(1, CHUNK_ELEMENTS // line)
        reach = UP_TAPS if axis == 1 else 0  # a row pass's outputs c0..c1-1 read lines c0..c1+3 of x
        products = np.empty((UP_TAPS, x[0, : min(per_chunk, inside.shape[1]) + reach].size))
        for plane in range(inside.shape[0]):
            for c0 in range(0, inside.shape[1], per_chunk):
                c1 = min(inside.shape[1], c0 + per_chunk)
                self._both_phases(x[plane, c0 : c1 + reach], inside[plane, c0:c1], axis - 1, products)

    def _both_phases(self, x: np.ndarray, inside: np.ndarray, axis: int, products: np.ndarray) -> None:
        """Outputs 2j, 2j + 1 of each j along `axis` of a plane's chunk, floored and clamped: `inside` [.., j, 2, ..].

        x: the chunk's source lines along `axis`, from j - 2 of its first j
        on (j + 2 of its last included); products: room for four arrays
        like x. Each tap's products of the source are formed once and
        summed shifted into both phases: four products and six sums where
        multiplying per phase and tap (numpy has no fused multiply-add)
        took eight products and six more sums (LevelPlanes.rows of a
        768x512 image ~21 -> ~19 ms, ad hoc).
        """
        n = inside.shape[axis]
        tap_times_x = [np.multiply(x, tap, out=room[: x.size].reshape(x.shape))
                       for room, tap in zip(products, self.taps)]
        for phase, first, order in ((0, 0, range(UP_TAPS)), (1, 1, reversed(range(UP_TAPS)))):
            y = _line(inside, axis + 1, phase)
            terms = [_lines(tap_times_x[tap], axis, first + k, first + k + n) for k, tap in enumerate(order)]
            np.add(terms[0], terms[1], out=y)
            for term in terms[2:]:
                y += term
        # Over both phases, including the other output of a pair that a or b
        # splits: computed like the rest, never read.
        np.floor(inside, out=inside)
        np.clip(inside, -ACT_LIMIT, ACT_LIMIT, out=inside)


def _lines(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """Lines start..stop-1 of x along `axis` (a view)."""
    return x[(slice(None),) * axis + (slice(start, stop),)]


def _line(x: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Line `index` of x along `axis`, that axis dropped (a view)."""
    return x[(slice(None),) * axis + (index,)]


def _core(x: np.ndarray, margin: tuple[int, int]) -> np.ndarray:
    """x less `margin` (before, after) along its last axis (a view)."""
    return x[..., margin[0] : x.shape[-1] - margin[1]]


def _fill_margins(x: np.ndarray, margin: tuple[int, int]) -> None:
    """Copy the edge columns of x's core (its last axis less `margin`) into the margins."""
    before, after = margin
    width = x.shape[-1] - before - after
    if before:
        x[..., :before] = x[..., before : before + 1]
    if after:
        x[..., before + width :] = x[..., before + width - 1 : before + width]


def _edge_padded_lines(x: np.ndarray, axis: int, lo: int, n_in: int, first: int, last: int) -> np.ndarray:
    """Lines first..last-1 along `axis` of x (which holds lines lo.. of n_in), line numbers clamped to 0..n_in-1.

    The lines in range are one slice of x; those before 0 or past the end
    repeat the edge line. One concatenation: a gather of the clamped line
    numbers along the last axis (the column pass) cost ~2x as much.
    """
    if lo <= first and last <= lo + x.shape[axis]:  # x already holds them, edges included (a margin)
        return _lines(x, axis, first - lo, last - lo)
    start, stop = max(first, 0), min(last, n_in)
    parts = [_lines(x, axis, start - lo, stop - lo)]
    if start > first:
        parts.insert(0, _repeated_line(x, axis, -lo, start - first))
    if last > stop:
        parts.append(_repeated_line(x, axis, n_in - 1 - lo, last - stop))
    return np.concatenate(parts, axis) if len(parts) > 1 else parts[0]


def _repeated_line(x: np.ndarray, axis: int, index: int, count: int) -> np.ndarray:
    """Line `index` of x along `axis`, `count` times (a read-only broadcast view)."""
    line = _lines(x, axis, index, index + 1)
    shape = list(line.shape)
    shape[axis] = count
    return np.broadcast_to(line, shape)


class LevelPlanes:
    """Every latent level at full resolution (level 0's size), Q12, a band of rows at a time.

    The grids are each level's integer latents, finest first, as float64
    arrays; the rows come as float64 arrays too. The coarsest level is
    stepped first; each finer resolution then steps the planes it received
    together with its own level's latents, so a band costs one batched pass
    per step whatever the number of levels.
    """

    def __init__(self, grids: list[np.ndarray], up_taps: tuple[tuple[int, ...], ...],
                 sizes: list[tuple[int, int]]) -> None:
        if len(up_taps) != len(grids) - 1:
            raise ValueError("one set of upsampling taps per step")
        self.grids = grids
        self.steps = [_Step(up_taps[r], sizes[r], sizes[r + 1]) for r in range(len(grids) - 1)]

    def rows(self, a: int, b: int, resolution: int = 0) -> np.ndarray:
        """Rows a..b-1 at `resolution` of levels resolution.. (coarser ones upsampled): [levels, b - a, width]."""
        grid = self.grids[resolution]
        out = np.empty((len(self.grids) - resolution, b - a, grid.shape[1]))
        np.multiply(grid[a:b], ACT_ONE, out=out[0])
        if resolution < len(self.grids) - 1:  # the coarser levels stepped into the planes after this level's
            step = self.steps[resolution]
            lo, hi = step.source_rows(a, b)
            step(self.rows(lo, hi, resolution + 1), lo, a, b, out[1:])
        return out
