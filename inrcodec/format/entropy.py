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
from collections.abc import Iterator

import constriction
import numpy as np
import torch
import torch.nn.functional as F

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


def laplace_parameters(arm: list[IntLinear], feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
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


def _laplace_from_outputs(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale index from the context model's two Q12 outputs per cell, [2, N] (formats/coco.md, LATS)."""
    mu, k = laplace_indices(out.numpy())
    return mu, k - SCALE_K_MIN


# Every scale a latent can have, by index from SCALE_K_MIN: a table lookup
# gives `scale_from_index`'s exact values at a fraction of its cost.
LATENT_SCALES = scale_from_index(np.arange(SCALE_K_MIN, LATENT_SCALE_K_MAX + 1))
LATENT_SCALES.flags.writeable = False


def phase_parameters(arm: list[IntLinear], grid: torch.Tensor, parent: torch.Tensor | None,
                     r0: int, r1: int, non_anchors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Laplace mean and scale index of one phase's cells in rows r0..r1-1 of a level, raster order.

    Exactly `laplace_parameters` of those cells' `context_features`, computed
    around parent cells: the first layer's parent part (9 of its 14 inputs)
    is one product per parent cell instead of one per cell; the two anchors
    under a parent have the same features (their same-level part is zero),
    so the rest of the network runs once per parent for both; only
    non-anchors add their four neighbours and flag. Every accumulator is an
    exact integer in float64 (see `fixedpoint`), so adding its parts
    separately gives the same bits: about half the multiply-adds of one
    14-wide row per cell, and no 14-wide feature rows at all.

    Cells whose features are all zero ("quiet": a zero parent neighbourhood
    and, for non-anchors, four zero neighbours) all get the network's output
    at zero features, computed once; the network runs only on the others.
    Most latents are zero, so at the finest level about half the cells of a
    busy image are quiet, and most of a smooth one's.

    `grid` need only hold this level's anchors (non-anchors read only them);
    `parent` is the whole next coarser level, None for the coarsest.
    """
    height, width = grid.shape
    first, rest = arm[0], arm[1:]
    weight = torch.as_tensor(first.weight, dtype=torch.float64)  # [hidden, 14]
    cells = phase_cells(r0, r1, width, non_anchors)
    rows, cols = np.divmod(cells, width)  # rows relative to r0
    pr0, pr1, pw = r0 >> 1, ((r1 - 1) >> 1) + 1, -(-width // 2)
    n_parents = (pr1 - pr0) * pw
    parent_of = (((rows + r0) >> 1) - pr0) * pw + (cols >> 1)
    bias = aligned_bias(first)
    if non_anchors:
        bias = bias + weight[:, 13] * ACT_ONE  # the phase flag is 1 for every non-anchor
    # The 3x3 parent neighbourhood of every parent cell under the band: [9, parents].
    hood = None if parent is None else _parent_neighbourhoods(parent, pr0, pr1, pw)
    busy_parents = torch.zeros(n_parents, dtype=torch.bool) if hood is None else hood.ne(0).any(0)
    if not non_anchors:
        # Anchors: the network once per busy parent, then each parent's
        # mean and scale to both of its anchors.
        busy = _busy_indices(busy_parents)
        accumulator = None
        if hood is not None and (busy is None or busy.numel()):
            picked = hood if busy is None else hood.index_select(1, busy)
            accumulator = torch.addmm(bias[None, :], (picked * ACT_ONE).T, weight[:, :9].T)
        mu, scale_index = _network_outputs(n_parents, busy, accumulator, bias, first, rest)
        return mu[parent_of], scale_index[parent_of]
    # Non-anchors: rows r0 - 1 .. r1 of the level, zero-padded all round;
    # the four neighbours of every cell by one gather of [4, cells] flat indices.
    top = max(0, r0 - 1)
    padded = F.pad(grid[top : r1 + 1], (1, 1, int(r0 == 0), int(r1 >= height)))
    stride = width + 2
    centre = torch.from_numpy((rows + 1) * stride + cols + 1)
    around = torch.tensor([[-stride], [stride], [-1], [1]])
    neighbours = padded.reshape(-1).index_select(0, (centre[None] + around).reshape(-1)).view(4, -1)
    parent_of_t = torch.from_numpy(parent_of)
    busy = _busy_indices(busy_parents.index_select(0, parent_of_t) | neighbours.ne(0).any(0))
    accumulator = None
    if busy is None or busy.numel():
        # Rows, because the cells then pick their parent's row by one gather
        # of whole rows, ~10x faster than picking columns out of [hidden, parents].
        parent_rows = bias[None, :].expand(n_parents, -1)
        if hood is not None:
            parent_rows = torch.addmm(parent_rows, (hood * ACT_ONE).T, weight[:, :9].T)
        if busy is not None:
            parent_of_t, neighbours = parent_of_t.index_select(0, busy), neighbours.index_select(1, busy)
        accumulator = parent_rows.index_select(0, parent_of_t).addmm_((neighbours * ACT_ONE).T, weight[:, 9:13].T)
    return _network_outputs(cells.size, busy, accumulator, bias, first, rest)


# Quiet cells are skipped only where they are at least this share of a band:
# below it the gathers and scatters cost more than the network they save.
MIN_QUIET_SHARE = 0.25


def _busy_indices(busy: torch.Tensor) -> torch.Tensor | None:
    """Indices of the True cells of `busy`; None to run the network on every cell (too few quiet ones)."""
    if int(busy.sum()) > (1 - MIN_QUIET_SHARE) * busy.numel():
        return None
    return busy.nonzero()[:, 0]


def _parent_neighbourhoods(parent: torch.Tensor, pr0: int, pr1: int, pw: int) -> torch.Tensor:
    """The 3x3 neighbourhoods (row major, zero beyond the level) of parent rows pr0..pr1-1: [9, parents]."""
    block = torch.zeros(pr1 - pr0 + 2, pw + 2, dtype=torch.float64)
    lo, hi = max(0, pr0 - 1), min(parent.shape[0], pr1 + 1)
    block[lo - pr0 + 1 : hi - pr0 + 1, 1:-1] = parent[lo:hi]
    return F.unfold(block[None, None], 3)[0]


def _network_outputs(n: int, busy: torch.Tensor | None, accumulator: torch.Tensor | None,
                     quiet_accumulator: torch.Tensor, first: IntLinear,
                     rest: list[IntLinear]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale index of n cells from their first-layer accumulators.

    `accumulator` holds the rows of the `busy` cells (of every cell if
    `busy` is None); every other cell is quiet, its accumulator the first
    layer's `quiet_accumulator` (bias, and flag for non-anchors).
    """
    if busy is None:
        return _laplace_from_outputs(_finish_arm(accumulator.T, first, rest))
    quiet_mu, quiet_index = _laplace_from_outputs(_finish_arm(quiet_accumulator[:, None].clone(), first, rest))
    mu, scale_index = np.full(n, quiet_mu[0]), np.full(n, quiet_index[0])
    if accumulator is not None:
        index = busy.numpy()
        mu[index], scale_index[index] = _laplace_from_outputs(_finish_arm(accumulator.T, first, rest))
    return mu, scale_index


def _finish_arm(accumulator: torch.Tensor, first: IntLinear, rest: list[IntLinear]) -> torch.Tensor:
    """The context model's Q12 outputs [2, N] from its first layer's accumulators as columns [hidden, N]."""
    return run_int_mlp_columns(finish_int_layer(accumulator, first, not rest), rest)


@functools.lru_cache(maxsize=64)
def _phase_offsets(r0_parity: int, n_rows: int, width: int, non_anchors: bool) -> np.ndarray:
    offsets = np.flatnonzero(phase_mask(r0_parity, r0_parity + n_rows, width, non_anchors).numpy())
    offsets.flags.writeable = False  # shared by every band of this shape
    return offsets


def phase_cells(r0: int, r1: int, width: int, non_anchors: bool) -> np.ndarray:
    """Flat indices (raster order, int64) of one phase's cells within rows r0..r1-1 of a level.

    The pattern depends only on the band's first row's parity and its shape,
    so bands of one level share it (cached).
    """
    return _phase_offsets(r0 & 1, r1 - r0, width, non_anchors)


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
    grids = [torch.as_tensor(g, dtype=torch.float64) for g in latents]
    encoder = constriction.stream.queue.RangeEncoder()
    for level, r0, r1, odd, cells in _coding_steps([tuple(g.shape) for g in grids]):
        parent = grids[level + 1] if level + 1 < len(grids) else None
        symbols = grids[level][r0:r1].reshape(-1).numpy()[cells].astype(np.int32)
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
                   arm: list[IntLinear]) -> list[torch.Tensor]:
    """Inverse of `encode_latents`: float64 integer grids, finest first.

    Memory: the grids themselves plus one band of CHUNK_CELLS cells at a time.

    Time: a damaged or forged stream is refused as soon as the symbols
    decoded so far carry more information than the payload can hold (a range
    coder never writes fewer bits than that), so garbage under a header that
    declares a huge image fails within a band or two instead of decoding
    tens of millions of cells.
    """
    sizes = grid_sizes(height, width, n_levels)
    grids = [torch.zeros(h, w, dtype=torch.float64) for h, w in sizes]
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
        grids[level][r0:r1].view(-1)[torch.tensor(cells)] = torch.from_numpy(symbols.astype(np.float64))
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
