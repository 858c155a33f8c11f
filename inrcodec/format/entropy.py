"""Entropy coding of latents and network weights with constriction's range coder.

Probabilities are never computed in floating point on our side: the context
model runs in exact integer arithmetic (`fixedpoint.run_int_mlp`), its outputs
are rounded to a 1/16 grid (mean) and to a table of exactly representable
scales, and constriction (pinned, see formats/coco.md) turns those identical
float64 values into fixed-point CDFs. One caveat remains (formats/coco.md,
"Entropy coding"): constriction's Laplace CDF calls the platform's binary64
exp(), so a libm that is not correctly rounded could, in rare cases, shift one
CDF entry by one unit; tabulating the CDFs ourselves would close that gap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import constriction
import numpy as np

from ..errors import CocoFormatError
from .context import grid_sizes, phase_mask
from .fixedpoint import (
    ACT_ONE,
    LATENT_MAX,
    LATENT_MIN,
    LATENT_SCALE_K_MAX,
    MU_FRAC_BITS,
    SCALE_K_MIN,
    WEIGHT_LIMIT,
    IntLinear,
    aligned_bias,
    finish_int_layer,
    laplace_indices,
    run_int_mlp_columns,
    scale_from_index,
)

_LATENT_MODEL = constriction.stream.model.QuantizedLaplace(LATENT_MIN, LATENT_MAX)
_WEIGHT_MODEL = constriction.stream.model.QuantizedLaplace(-WEIGHT_LIMIT + 1, WEIGHT_LIMIT - 1)


def words_to_bytes(words: np.ndarray) -> bytes:
    """constriction's uint32 words as little-endian bytes, on any host."""
    return np.asarray(words, dtype="<u4").tobytes()


def bytes_to_words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise CocoFormatError("entropy-coded section length is not a multiple of 4 bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


CHUNK_CELLS = 1 << 16  # latent cells per context-model batch: bounds decoder memory


def laplace_parameters(arm: list[IntLinear], feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Laplace mean and scale index from context features.

    The definition (formats/coco.md, step 5 of decoding), one 14-wide row per
    cell; the coder computes the same values faster (`phase_parameters`).

    Args:
        arm: the integer context model.
        feats: [N, 14] float64 context features (integer latents and flags).

    Returns:
        (mu, scale_index): float64 means and int64 indices into
        `LATENT_SCALES` (the scale index k minus SCALE_K_MIN), arrays [N].
    """
    return _laplace_from_outputs(run_int_mlp_columns((feats * ACT_ONE).T, arm))


def _laplace_from_outputs(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale index from the context model's two Q12 outputs per cell, [2, N] (formats/coco.md, LATS)."""
    mu, k = laplace_indices(out)
    return mu, k - SCALE_K_MIN


# Every scale a latent can have, by index from SCALE_K_MIN: a table lookup
# gives `scale_from_index`'s exact values at a fraction of its cost.
LATENT_SCALES = scale_from_index(np.arange(SCALE_K_MIN, LATENT_SCALE_K_MAX + 1))
LATENT_SCALES.flags.writeable = False


def phase_parameters(arm: list[IntLinear], grid: np.ndarray, parent: np.ndarray | None,
                     r0: int, r1: int, non_anchors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Laplace mean and scale index of one phase's cells in rows r0..r1-1 of a level, raster order.

    Exactly `laplace_parameters` of those cells' context features
    (`train.context.context_features`), computed around parent cells: the
    first layer's parent part (9 of its 14 inputs) is one product per parent
    cell instead of one per cell; the two anchors under a parent have the
    same features (their same-level part is zero), so the rest of the
    network runs once per parent for both; only non-anchors add their four
    neighbours and flag. Every accumulator is an exact integer in float64
    (see `fixedpoint`), so adding its parts separately gives the same bits:
    about half the multiply-adds of one 14-wide row per cell, and no 14-wide
    feature rows at all.

    Cells whose features are all zero ("quiet": a zero parent neighbourhood
    and, for non-anchors, four zero neighbours) all get the network's output
    at zero features, computed once; the network runs only on the others.
    Most latents are zero, so at the finest level about half the cells of a
    busy image are quiet, and most of a smooth one's.

    `grid` (float64 [height, width]) need only hold this level's anchors
    (non-anchors read only them); `parent` is the whole next coarser level,
    None for the coarsest.
    """
    width = grid.shape[1]
    first = arm[0]
    # The first layer's weight times ACT_ONE (exact: a power of two), so the
    # integer latents and flags go into the products as they are, Q12
    # without a scaled copy: [14, hidden], one column per hidden unit.
    weight = np.asarray(first.weight, dtype=np.float64).T * ACT_ONE
    pr0, pr1, pw = r0 >> 1, ((r1 - 1) >> 1) + 1, -(-width // 2)
    parent_of = _phase_parents(r0 & 1, r1 - r0, width, non_anchors)
    bias = aligned_bias(first)
    if non_anchors:
        bias = bias + weight[13]  # the phase flag is 1 for every non-anchor
    # The 3x3 parent neighbourhood of every parent cell under the band: [9, parents].
    hood = None if parent is None else _parent_neighbourhoods(parent, pr0, pr1, pw)
    if non_anchors:
        return _non_anchor_parameters(arm, weight, grid, hood, bias, r0, r1, parent_of)
    return _anchor_parameters(arm, weight, hood, bias, (pr1 - pr0) * pw, parent_of)


def _anchor_parameters(arm: list[IntLinear], weight: np.ndarray, hood: np.ndarray | None, bias: np.ndarray,
                       n_parents: int, parent_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`phase_parameters` of anchors: the network once per busy parent, its mean and scale to both its anchors.

    An anchor's features are its parent's neighbourhood alone, so both
    anchors under a parent share one evaluation. `weight` and `bias` as in
    `phase_parameters`.
    """
    busy_parents = np.zeros(n_parents, dtype=bool) if hood is None else (hood != 0).any(0)
    busy = _busy_indices(busy_parents)

    def first_layer(a: int, b: int) -> np.ndarray:
        picked = hood[:, a:b] if busy is None else hood[:, busy[a:b]]
        accumulator = picked.T @ weight[:9]
        accumulator += bias
        return accumulator

    # Without a parent level every parent is quiet: the network never runs on `hood`.
    n_run = n_parents if busy is None else busy.size
    mu, scale_index = _network_outputs(n_parents, busy, n_run, first_layer, bias, arm)
    return mu[parent_of], scale_index[parent_of]


def _non_anchor_parameters(arm: list[IntLinear], weight: np.ndarray, grid: np.ndarray, hood: np.ndarray | None,
                           bias: np.ndarray, r0: int, r1: int, parent_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`phase_parameters` of non-anchors: each parent's first-layer part, gathered, plus the cell's neighbours' part.

    `weight` and `bias` as in `phase_parameters` (the bias holds the phase
    flag's part); `parent_of` is each cell's parent's index among the
    band's parents.
    """
    n_cells = parent_of.size
    neighbours = _same_level_neighbours(grid, r0, r1)
    busy_cells = (neighbours != 0).any(0)
    if hood is not None:
        busy_cells |= (hood != 0).any(0)[parent_of]
    busy = _busy_indices(busy_cells)
    if busy is not None:
        parent_of, neighbours = parent_of[busy], np.take(neighbours, busy, axis=1)
    # Rows [parents, hidden], because the cells then pick their parent's
    # part by one gather of whole rows, not one value per hidden unit.
    # Without a parent level, every cell's part is the bias.
    if hood is None:
        parent_rows, parent_of = bias[None, :], np.zeros_like(parent_of)
    else:
        parent_rows = hood.T @ weight[:9]
        parent_rows += bias

    def first_layer(a: int, b: int) -> np.ndarray:
        accumulator = np.take(parent_rows, parent_of[a:b], axis=0)
        accumulator += neighbours[:, a:b].T @ weight[9:13]
        return accumulator

    return _network_outputs(n_cells, busy, parent_of.size, first_layer, bias, arm)


def _same_level_neighbours(grid: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """The N, S, W, E neighbours (zero beyond the level) of the non-anchors of rows r0..r1-1: [4, cells].

    Rows r0 - 1 .. r1 of the level, zero-padded all round; then one gather
    of [4, cells] flat indices.
    """
    height, width = grid.shape
    top, bottom = max(0, r0 - 1), min(height, r1 + 1)
    padded = np.zeros((r1 - r0 + 2, width + 2))
    padded[top - r0 + 1 : bottom - r0 + 1, 1:-1] = grid[top:bottom]
    return np.take(padded.reshape(-1), _neighbour_offsets(r0 & 1, r1 - r0, width))


# At most 1 MiB an entry (a band's [4, cells] of CHUNK_CELLS / 2 cells); a
# level's bands share at most two band shapes, so a few entries suffice.
@functools.lru_cache(maxsize=16)
def _neighbour_offsets(r0_parity: int, n_rows: int, width: int) -> np.ndarray:
    """Flat indices into `_same_level_neighbours`' padded band of each non-anchor's N, S, W, E: [4, cells].

    Like `phase_cells`, shared by the bands of one level (cached): built on
    every band, these index arrays and their temporaries were most of the
    step's time and fresh memory.
    """
    rows, cols = np.divmod(phase_cells(r0_parity, r0_parity + n_rows, width, True), width)
    stride = width + 2
    centre = (rows + 1) * stride + cols + 1
    offsets = centre[None] + np.array([[-stride], [stride], [-1], [1]])
    offsets.flags.writeable = False
    return offsets


# Quiet cells are skipped only where they are at least this share of a band:
# below it the gathers and scatters cost more than the network they save.
MIN_QUIET_SHARE = 0.25


def _busy_indices(busy: np.ndarray) -> np.ndarray | None:
    """Indices of the True cells of `busy`; None to run the network on every cell (too few quiet ones)."""
    if np.count_nonzero(busy) > (1 - MIN_QUIET_SHARE) * busy.size:
        return None
    return np.flatnonzero(busy)


def _parent_neighbourhoods(parent: np.ndarray, pr0: int, pr1: int, pw: int) -> np.ndarray:
    """The 3x3 neighbourhoods (row major, zero beyond the level) of parent rows pr0..pr1-1: [9, parents]."""
    block = np.zeros((pr1 - pr0 + 2, pw + 2))
    lo, hi = max(0, pr0 - 1), min(parent.shape[0], pr1 + 1)
    block[lo - pr0 + 1 : hi - pr0 + 1, 1:-1] = parent[lo:hi]
    windows = np.lib.stride_tricks.sliding_window_view(block, (3, 3))  # [rows, pw, 3, 3]
    return windows.transpose(2, 3, 0, 1).reshape(9, -1)


# Cells per pass through the network: its arrays for a block ([block,
# hidden] float64 accumulators, 512 KiB at 16 hidden units) stay in cache
# from the first layer to the Laplace parameters, and fresh allocations
# stay small. A whole band at once (~32k cells a phase) made decoding a
# 768x512 image's latents ~25 % slower, mostly page faults on its
# multi-MiB temporaries; 2**11 and 2**13 were a few % slower than 2**12
# (ad hoc, 2026-12-05, one BLAS thread).
NETWORK_BLOCK = 1 << 12


def _network_outputs(n: int, busy: np.ndarray | None, n_run: int, first_layer: Callable[[int, int], np.ndarray],
                     quiet_accumulator: np.ndarray, arm: list[IntLinear]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale index of n cells from their first-layer accumulators.

    The network runs on the `busy` cells (on every cell if `busy` is None),
    n_run of them, NETWORK_BLOCK at a time: `first_layer(a, b)` gives the
    accumulator rows [b - a, hidden] of the a-th to (b-1)-th of them, bias
    included. Every other cell is quiet, its accumulator the first layer's
    `quiet_accumulator` (bias, and flag for non-anchors).
    """
    first, rest = arm[0], arm[1:]
    mu, scale_index = np.empty(n_run), np.empty(n_run, dtype=np.int64)
    for a in range(0, n_run, NETWORK_BLOCK):
        b = min(n_run, a + NETWORK_BLOCK)
        mu[a:b], scale_index[a:b] = _laplace_from_outputs(_finish_arm(first_layer(a, b).T, first, rest))
    if busy is None:
        return mu, scale_index
    quiet_mu, quiet_index = _laplace_from_outputs(_finish_arm(quiet_accumulator[:, None].copy(), first, rest))
    all_mu, all_index = np.full(n, quiet_mu[0]), np.full(n, quiet_index[0])
    all_mu[busy], all_index[busy] = mu, scale_index
    return all_mu, all_index


def _finish_arm(accumulator: np.ndarray, first: IntLinear, rest: list[IntLinear]) -> np.ndarray:
    """The context model's Q12 outputs [2, N] from its first layer's accumulators as columns [hidden, N], in place."""
    return run_int_mlp_columns(finish_int_layer(accumulator, first, not rest), rest)


@functools.lru_cache(maxsize=64)
def _phase_offsets(r0_parity: int, n_rows: int, width: int, non_anchors: bool) -> np.ndarray:
    offsets = np.flatnonzero(phase_mask(r0_parity, r0_parity + n_rows, width, non_anchors))
    offsets.flags.writeable = False  # shared by every band of this shape
    return offsets


def phase_cells(r0: int, r1: int, width: int, non_anchors: bool) -> np.ndarray:
    """Flat indices (raster order, int64) of one phase's cells within rows r0..r1-1 of a level.

    The pattern depends only on the band's first row's parity and its shape,
    so bands of one level share it (cached).
    """
    return _phase_offsets(r0 & 1, r1 - r0, width, non_anchors)


@functools.lru_cache(maxsize=64)
def _phase_parents(r0_parity: int, n_rows: int, width: int, non_anchors: bool) -> np.ndarray:
    """Each of `phase_cells`' cells' parent, as a flat index among the parent cells under the band (int64).

    Cached like `phase_cells`: computed on every band, it and its
    temporaries (fresh memory, so page faults) were a measurable share of
    a band's time.
    """
    rows, cols = np.divmod(_phase_offsets(r0_parity, n_rows, width, non_anchors), width)
    parents = ((rows + r0_parity) >> 1) * -(-width // 2) + (cols >> 1)
    parents.flags.writeable = False
    return parents


def _coding_steps(sizes: list[tuple[int, int]]) -> Iterator[tuple[int, int, int, bool, np.ndarray]]:
    """(level, r0, r1, non-anchors?, flat indices of the cells of rows r0..r1-1 coded now) in decoding order.

    Each level is coded in two steps (anchors, then the others); each step
    goes over bands of rows of about CHUNK_CELLS cells. The range coder is a
    stream, so splitting a step into bands changes neither the bits nor the
    symbols: the cells still go through the coder in raster order.
    """
    for level in reversed(range(len(sizes))):
        height, width = sizes[level]
        rows = max(1, CHUNK_CELLS // width)
        for odd in (False, True):
            for r0 in range(0, height, rows):
                r1 = min(height, r0 + rows)
                yield level, r0, r1, odd, phase_cells(r0, r1, width, odd)


def encode_latents(latents: list[np.ndarray], arm: list[IntLinear]) -> bytes:
    """Range-code integer latent grids (finest first in the list) into bytes."""
    grids = [np.asarray(g, dtype=np.float64) for g in latents]
    encoder = constriction.stream.queue.RangeEncoder()
    for level, r0, r1, odd, cells in _coding_steps([tuple(g.shape) for g in grids]):
        parent = grids[level + 1] if level + 1 < len(grids) else None
        symbols = grids[level][r0:r1].reshape(-1)[cells].astype(np.int32)
        if symbols.size:
            mu, scale_index = phase_parameters(arm, grids[level], parent, r0, r1, odd)
            encoder.encode(symbols, _LATENT_MODEL, mu, LATENT_SCALES[scale_index])
    return words_to_bytes(encoder.get_compressed())


PRECISION_BITS = 24  # constriction's QuantizedLaplace: probabilities are multiples of 2**-24
# Slack for the information check: the coder's 64-bit state, plus room for
# floating-point error in our (not normative) estimate of each symbol's cost.
INFORMATION_SLACK_BITS = 96


def symbol_bits(symbols: np.ndarray, mu: np.ndarray, scale_index: np.ndarray) -> float:
    """Bits the range coder spends on `symbols` under QuantizedLaplace(mu, LATENT_SCALES[scale_index]).

    Follows formats/coco.md ("Entropy coding"): the width of each symbol's
    slice of the 2**24 range. Only used for the plausibility check in
    `decode_latents`, never for coding, so floating point is fine here.

    Most symbols sit in the bin of their mean, and an interior symbol's cost
    depends only on its offset from the mean (a multiple of 1/16) and its
    scale: those within half a step of their mean read the same formula's
    value from a table, and only the others evaluate it.
    """
    s = symbols.astype(np.float64)
    offset16 = (s - mu) * (1 << MU_FRAC_BITS)  # an exact integer: mu is on the 1/16 grid
    near = (np.abs(offset16) <= _NEAR) & (s > LATENT_MIN) & (s < LATENT_MAX)
    # Far cells get a valid (clipped) table row too, then count zero there.
    row = np.clip(offset16, -_NEAR, _NEAR) + _NEAR
    table_bits = np.take(_near_bits_table(), (row * LATENT_SCALES.size).astype(np.int64) + scale_index)
    far = np.flatnonzero(~near)
    far_bits = _slice_bits(s[far], mu[far], LATENT_SCALES[scale_index[far]])
    return float(np.where(near, table_bits, 0.0).sum() + far_bits.sum())


_NEAR = 1 << (MU_FRAC_BITS - 1)  # half a latent step, in 1/16 units


@functools.cache
def _near_bits_table() -> np.ndarray:
    """`_slice_bits` of an interior symbol at offset o / 16 from its mean, [o + _NEAR, scale index], flat."""
    offsets, k = np.meshgrid(np.arange(-_NEAR, _NEAR + 1), np.arange(LATENT_SCALES.size), indexing="ij")
    table = _slice_bits(np.zeros(offsets.shape), -offsets / (1 << MU_FRAC_BITS), LATENT_SCALES[k])
    table = table.reshape(-1)
    table.flags.writeable = False
    return table


def _slice_bits(s: np.ndarray, mu: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each symbol's cost: 24 - log2 of the width of its slice (formats/coco.md, "Entropy coding")."""
    n = LATENT_MAX - LATENT_MIN + 1
    free = float((1 << PRECISION_BITS) - n)

    def cdf(x: np.ndarray) -> np.ndarray:
        z = (x - mu) / scale
        tail = 0.5 * np.exp(-np.abs(z))  # one exp per value serves both sides
        return np.where(z <= 0, tail, 1 - tail)

    offset = s - LATENT_MIN
    left = np.where(s == LATENT_MIN, 0, np.trunc(free * cdf(s - 0.5)) + offset)
    right = np.where(s == LATENT_MAX, 1 << PRECISION_BITS, np.trunc(free * cdf(s + 0.5)) + offset + 1)
    return PRECISION_BITS - np.log2(np.maximum(right - left, 1))


def decode_latents(data: bytes, height: int, width: int, n_levels: int,
                   arm: list[IntLinear]) -> list[np.ndarray]:
    """Inverse of `encode_latents`: float64 integer grids [h, w], finest first.

    Memory: the grids themselves plus one band of CHUNK_CELLS cells at a time.

    Time: a damaged or forged stream is refused as soon as the symbols
    decoded so far carry more information than the payload can hold (a range
    coder never writes fewer bits than that), so garbage under a header that
    declares a huge image fails within a band or two instead of decoding
    tens of millions of cells.
    """
    sizes = grid_sizes(height, width, n_levels)
    grids = [np.zeros((h, w)) for h, w in sizes]
    words = bytes_to_words(data)
    budget_bits = 32.0 * words.size + INFORMATION_SLACK_BITS
    spent_bits = 0.0
    decoder = constriction.stream.queue.RangeDecoder(words)
    for level, r0, r1, odd, cells in _coding_steps(sizes):
        if not cells.size:
            continue
        parent = grids[level + 1] if level + 1 < len(grids) else None
        mu, scale_index = phase_parameters(arm, grids[level], parent, r0, r1, odd)
        symbols = _decode_symbols(decoder, _LATENT_MODEL, mu, LATENT_SCALES[scale_index], "latent")
        spent_bits += symbol_bits(symbols, mu, scale_index)
        refuse_over_budget(spent_bits, budget_bits, words.size, level)
        np.put(grids[level], r0 * sizes[level][1] + cells, symbols)  # flat indices into the whole level
    _check_consumed(decoder, "latent")
    return grids


def refuse_over_budget(spent_bits: float, budget_bits: float, n_words: int, level: int) -> None:
    """Refuse a latent stream whose symbols so far carry more information than its words can hold."""
    if spent_bits > budget_bits:
        raise CocoFormatError(f"latent stream is too short for its symbols ({n_words * 4} bytes hold at most "
                              f"{budget_bits:.0f} bits; exceeded by level {level}): truncated or corrupt")


def _check_consumed(decoder: constriction.stream.queue.RangeDecoder, what: str) -> None:
    """A stream the encoder wrote is used up exactly by its last symbol.

    Data left over means the payload does not belong to this header (or was
    damaged in a way that still decoded): refuse rather than guess.
    """
    if not decoder.maybe_exhausted():
        raise CocoFormatError(f"{what} stream holds data beyond its last symbol")


def _decode_symbols(decoder: constriction.stream.queue.RangeDecoder, model: object, mu: np.ndarray,
                    scale: np.ndarray, what: str) -> np.ndarray:
    """One constriction decode call; any failure of the coder is a corrupt stream.

    constriction reports data that cannot come from the model with an
    AssertionError (0.5.0), parameter problems with ValueError, and a Rust
    panic as pyo3's PanicException, which derives from BaseException.
    """
    try:
        return decoder.decode(model, mu, scale)
    except MemoryError:
        raise
    except Exception as exc:
        raise CocoFormatError(f"{what} stream is corrupt: {exc}") from exc
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise CocoFormatError(f"{what} stream is corrupt: {exc}") from exc


def encode_weights(tensors: list[np.ndarray], scale_indices: list[int]) -> bytes:
    """Range-code integer weight tensors, each under Laplace(0, its scale)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for values, k in zip(tensors, scale_indices):
        flat = np.asarray(values, dtype=np.int32).reshape(-1)
        mean = np.zeros(flat.size)
        scale = np.full(flat.size, scale_from_index(np.int64(k)))
        encoder.encode(flat, _WEIGHT_MODEL, mean, scale)
    return words_to_bytes(encoder.get_compressed())


def decode_weights(data: bytes, shapes: list[tuple[int, ...]], scale_indices: list[int]) -> list[np.ndarray]:
    """Inverse of `encode_weights`: int64 arrays of the given shapes."""
    decoder = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    out = []
    for shape, k in zip(shapes, scale_indices):
        n = int(np.prod(shape))
        scale = np.full(n, scale_from_index(np.int64(k)))
        values = _decode_symbols(decoder, _WEIGHT_MODEL, np.zeros(n), scale, "network weight")
        out.append(values.astype(np.int64).reshape(shape))
    _check_consumed(decoder, "network weight")
    return out
