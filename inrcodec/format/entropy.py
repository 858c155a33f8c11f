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
    SCALE_K_MIN,
    WEIGHT_LIMIT,
    IntLinear,
    aligned_bias,
    finish_int_layer,
    quantize_mu,
    run_int_mlp_columns,
    scale_from_index,
    scale_index_from_log2,
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
    """Exact Laplace mean and scale from context features.

    The definition (formats/coco.md, step 5 of decoding), one 14-wide row per
    cell; the coder computes the same values faster (`phase_parameters`).

    Args:
        arm: the integer context model.
        feats: [N, 14] float64 context features (integer latents and flags).

    Returns:
        (mu, scale): float64 arrays [N].
    """
    return _laplace_from_outputs(run_int_mlp_columns((feats * ACT_ONE).T, arm))


def _laplace_from_outputs(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale from the context model's two Q12 outputs per cell, [2, N] (formats/coco.md, LATS)."""
    mu = quantize_mu(out[0]).numpy()
    k = scale_index_from_log2(out[1]).numpy().astype(np.int64)
    return mu, _LATENT_SCALES[k - SCALE_K_MIN]


# Every scale a latent can have, by index from SCALE_K_MIN: a table lookup
# gives `scale_from_index`'s exact values at a fraction of its cost.
_LATENT_SCALES = scale_from_index(np.arange(SCALE_K_MIN, LATENT_SCALE_K_MAX + 1))


def phase_parameters(arm: list[IntLinear], grid: torch.Tensor, parent: torch.Tensor | None,
                     r0: int, r1: int, non_anchors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Laplace mean and scale of one phase's cells in rows r0..r1-1 of a level, raster order.

    Exactly `laplace_parameters` of those cells' `context_features`, computed
    around parent cells: the first layer's parent part (9 of its 14 inputs)
    is one product per parent cell instead of one per cell; the two anchors
    under a parent have the same features (their same-level part is zero),
    so the rest of the network runs once per parent for both; only
    non-anchors add their four neighbours and flag. Every accumulator is an
    exact integer in float64 (see `fixedpoint`), so adding its parts
    separately gives the same bits: about half the multiply-adds of one
    14-wide row per cell, and no 14-wide feature rows at all.

    `grid` need only hold this level's anchors (non-anchors read only them);
    `parent` is the whole next coarser level, None for the coarsest.
    """
    height, width = grid.shape
    first, rest = arm[0], arm[1:]
    weight = torch.as_tensor(first.weight, dtype=torch.float64)  # [hidden, 14]
    cells = phase_cells(r0, r1, width, non_anchors)
    rows, cols = np.divmod(cells, width)  # rows relative to r0
    # The parent part of every parent cell under the band, one row per
    # parent: [parents, hidden]. Rows, because the cells then pick their
    # parent's row by one gather of whole rows, ~10x faster than picking
    # columns out of [hidden, parents]; the later layers take the transposed
    # view as columns (`run_int_mlp_columns`) without a copy.
    pr0, pr1, pw = r0 >> 1, ((r1 - 1) >> 1) + 1, -(-width // 2)
    parent_rows = aligned_bias(first)[None, :].expand((pr1 - pr0) * pw, -1)
    if parent is not None:
        block = torch.zeros(pr1 - pr0 + 2, pw + 2, dtype=torch.float64)  # zero beyond the level
        lo, hi = max(0, pr0 - 1), min(parent.shape[0], pr1 + 1)
        block[lo - pr0 + 1 : hi - pr0 + 1, 1:-1] = parent[lo:hi]
        hood = F.unfold(block[None, None], 3)[0]  # [9, parents], row-major 3x3 as in context_features
        parent_rows = torch.addmm(parent_rows, (hood * ACT_ONE).T, weight[:, :9].T)
    parent_of = torch.from_numpy(((rows + r0) >> 1) - pr0) * pw + torch.from_numpy(cols >> 1)
    last = not rest
    if non_anchors:
        # Rows r0 - 1 .. r1 of the level, zero-padded all round; the four
        # neighbours of every cell by one gather of [4, cells] flat indices.
        top = max(0, r0 - 1)
        padded = F.pad(grid[top : r1 + 1], (1, 1, int(r0 == 0), int(r1 >= height)))
        stride = width + 2
        centre = torch.from_numpy((rows + 1) * stride + cols + 1)
        around = torch.tensor([[-stride], [stride], [-1], [1]])
        neighbours = padded.reshape(-1).index_select(0, (centre[None] + around).reshape(-1)).view(4, -1)
        # The flag's weight joins the parent part before the gather: one pass
        # over the parents instead of one over the cells.
        shared = parent_rows + weight[:, 13] * ACT_ONE
        accumulator = shared.index_select(0, parent_of).addmm_((neighbours * ACT_ONE).T, weight[:, 9:13].T)
        out = run_int_mlp_columns(finish_int_layer(accumulator.T, first, last), rest)
    else:
        out = run_int_mlp_columns(finish_int_layer(parent_rows.contiguous().T, first, last), rest)
        out = out.T.contiguous().index_select(0, parent_of).T  # each parent's prediction to both its anchors
    return _laplace_from_outputs(out)


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
            mu, scale = phase_parameters(arm, grids[level], parent, r0, r1, odd)
            encoder.encode(symbols, _LATENT_MODEL, mu, scale)
    return words_to_bytes(encoder.get_compressed())


PRECISION_BITS = 24  # constriction's QuantizedLaplace: probabilities are multiples of 2**-24
# Slack for the information check: the coder's 64-bit state, plus room for
# floating-point error in our (not normative) estimate of each symbol's cost.
INFORMATION_SLACK_BITS = 96


def symbol_bits(symbols: np.ndarray, mu: np.ndarray, scale: np.ndarray) -> float:
    """Bits the range coder spends on `symbols` under QuantizedLaplace(mu, scale).

    Follows formats/coco.md ("Entropy coding"): the width of each symbol's
    slice of the 2**24 range. Only used for the plausibility check in
    `decode_latents`, never for coding, so floating point is fine here.
    """
    n = LATENT_MAX - LATENT_MIN + 1
    free = float((1 << PRECISION_BITS) - n)
    s = symbols.astype(np.float64)

    def cdf(x: np.ndarray) -> np.ndarray:
        z = (x - mu) / scale
        tail = 0.5 * np.exp(-np.abs(z))  # one exp per value serves both sides
        return np.where(z <= 0, tail, 1 - tail)

    offset = s - LATENT_MIN
    left = np.where(s == LATENT_MIN, 0, np.trunc(free * cdf(s - 0.5)) + offset)
    right = np.where(s == LATENT_MAX, 1 << PRECISION_BITS, np.trunc(free * cdf(s + 0.5)) + offset + 1)
    return float(np.sum(PRECISION_BITS - np.log2(np.maximum(right - left, 1))))


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
        mu, scale = phase_parameters(arm, grids[level], parent, r0, r1, odd)
        symbols = _decode_symbols(decoder, _LATENT_MODEL, mu, scale, "latent")
        spent_bits += symbol_bits(symbols, mu, scale)
        if spent_bits > budget_bits:
            raise CocoFormatError(f"latent stream is too short for its symbols ({words.size * 4} bytes hold at most "
                                  f"{budget_bits:.0f} bits; exceeded by level {level}): truncated or corrupt")
        grids[level][r0:r1].view(-1)[torch.tensor(cells)] = torch.from_numpy(symbols.astype(np.float64))
    _check_consumed(decoder, "latent")
    return grids


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
