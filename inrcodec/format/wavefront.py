"""Format 2.0's latent coding: each level in tiles, one wavefront of every tile at a time.

Format 1.0 codes a level in two checkerboard phases, so half of its cells
(the anchors) see nothing of their own level. Format 2.0's context
(`context.wavefront_context_features`) gives every cell the twelve cells
within two rows above and two columns either side that precede it in
raster order (as Cool-chic's auto-regressive model), cut at the edges of
tiles of `tile` = (width, height) cells. Fitting with it instead of the
checkerboard gained ~1 dB at the same rate on kodim01
(bench/results/trained-context-2026-12-03).

Within a tile, cell (ly, lx) (tile coordinates) depends only on cells of
smaller front number t = lx + 3 ly; every tile is coded independently. So
a level is coded front by front, t = 0, 1, ..., each front holding every
tile's cells of that t, in raster order: width + 3 height - 3 batched
steps per level whatever the image size, each a handful of array
operations and one range-coder call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from .context import N_WAVEFRONT_CONTEXT, WAVEFRONT_NEIGHBOURS, grid_sizes
from .entropy import (
    CHUNK_CELLS,
    MIN_QUIET_SHARE,
    INFORMATION_SLACK_BITS,
    LATENT_SCALES,
    _LATENT_MODEL,
    _check_consumed,
    _decode_symbols,
    _laplace_from_outputs,
    bytes_to_words,
    refuse_over_budget,
    symbol_bits,
    words_to_bytes,
)
from .fixedpoint import ACT_ONE, IntLinear, int_mlp_tensors, run_int_mlp_prepared

# A cell's front is lx + FRONT_ROW_STEP * ly: with (dy, dx) = (-1, +2) among
# the neighbours, a row up must be at least 3 fronts earlier.
FRONT_ROW_STEP = 3
_NEIGHBOUR_DY = np.array([dy for dy, _ in WAVEFRONT_NEIGHBOURS], dtype=np.int64)[:, None]
_NEIGHBOUR_DX = np.array([dx for _, dx in WAVEFRONT_NEIGHBOURS], dtype=np.int64)[:, None]
_HOOD_DY = np.repeat(np.arange(-1, 2, dtype=np.int64), 3)[:, None]  # row-major 3x3
_HOOD_DX = np.tile(np.arange(-1, 2, dtype=np.int64), 3)[:, None]


def n_fronts(height: int, width: int, tile: tuple[int, int]) -> int:
    """Fronts of a height x width level: t runs from 0 to (last lx) + 3 (last ly)."""
    tile_w, tile_h = tile
    return (min(tile_w, width) - 1) + FRONT_ROW_STEP * (min(tile_h, height) - 1) + 1


def front_pairs(t: int, tile: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The tile coordinates (ly, lx) of front `t`'s cells, ly ascending: lx + 3 ly = t inside the tile."""
    tile_w, tile_h = tile
    # 0 <= lx = t - FRONT_ROW_STEP * ly < tile_w, 0 <= ly < tile_h
    ly = np.arange(max(0, -(-(t - tile_w + 1) // FRONT_ROW_STEP)), min(tile_h - 1, t // FRONT_ROW_STEP) + 1)
    return ly, t - FRONT_ROW_STEP * ly


@dataclass(frozen=True)
class _Front:
    """Front t of a tile, the same at every level (`_front`).

    ly, lx: the tile coordinates of its cells (`front_pairs`), [pairs];
    inside: [12, 1, pairs, 1] 1.0 where a neighbour is in the tile;
    dy, dx: [12, pairs] the neighbours' offsets, 0 where outside (the cell
        then reads itself, and `inside` zeroes it).
    """

    ly: np.ndarray
    lx: np.ndarray
    inside: np.ndarray
    dy: np.ndarray
    dx: np.ndarray


@functools.lru_cache(maxsize=1024)
def _front(t: int, tile: tuple[int, int]) -> _Front:
    """Front `t`'s tile geometry, worked out once per stream rather than once per level.

    A 2.0 stream has a few hundred fronts, and decoding them is mostly
    per-front overhead: the cached part was ~10 of a step's ~30 array
    operations.
    """
    ly, lx = front_pairs(t, tile)
    tile_w, _ = tile
    inside = ((ly[None, :] + _NEIGHBOUR_DY >= 0) & (lx[None, :] + _NEIGHBOUR_DX >= 0)
              & (lx[None, :] + _NEIGHBOUR_DX < tile_w))
    front = _Front(ly, lx, inside[:, None, :, None].astype(np.float64),
                   np.where(inside, _NEIGHBOUR_DY, 0), np.where(inside, _NEIGHBOUR_DX, 0))
    for array in (front.ly, front.lx, front.inside, front.dy, front.dx):
        array.flags.writeable = False
    return front


class _FrontModel:
    """The context model, prepared once per stream, giving each front's exact Laplace parameters.

    The network runs in torch on one thread (`_one_thread`): numpy's BLAS
    keeps its own thread pool, and on a busy machine a product of a few
    thousand columns there took ~5 ms instead of ~0.1 ms (ad hoc,
    2026-12-03). The arithmetic is `fixedpoint`'s, exact integers in float64.
    """

    def __init__(self, arm: list[IntLinear]) -> None:
        self.arm = arm
        self.tensors = int_mlp_tensors(arm)
        self.quiet = self._parameters(np.zeros((N_WAVEFRONT_CONTEXT, 1)))  # at zero features

    def from_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and scale index from [21, n] features (scaled to Q12 in place).

        Cells whose features are all zero ("quiet": most of a level's cells
        at low rates) all get the network's output at zero features, worked
        out once per stream; the network runs on the others only, where the
        quiet ones are at least a quarter of a front.
        """
        busy = x.any(axis=0)
        n_busy = int(busy.sum())
        if n_busy > (1 - MIN_QUIET_SHARE) * busy.size:
            return self._parameters(x)
        mu, scale_index = np.full(busy.size, self.quiet[0][0]), np.full(busy.size, self.quiet[1][0])
        if n_busy:
            mu[busy], scale_index[busy] = self._parameters(x[:, busy])
        return mu, scale_index

    def _parameters(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x *= ACT_ONE
        return _laplace_from_outputs(run_int_mlp_prepared(torch.from_numpy(x), self.arm, self.tensors))


class _Level:
    """One level's buffers and the index arithmetic of its fronts, for the coder's loop.

    A front holds, in every tile, the cells (ly, lx) with lx + 3 ly = t: a
    few (ly, lx) pairs, repeated over the tiles. In the order tile row,
    pair, tile column the cells are in raster order, and every index the
    front needs is a sum of a part that depends on the tile row and pair
    and a part that depends on the pair and tile column: one broadcast add
    per kind of index instead of per-cell arithmetic.

    `values` is the level flat, `width + 2` wide (two zero columns on the
    right, read by neighbours past the last column); `padded_parent` the
    parent level with one zero cell all round, or None for the coarsest.
    """

    def __init__(self, height: int, width: int, tile: tuple[int, int], padded_parent: np.ndarray | None,
                 parent_width: int) -> None:
        self.height, self.width, self.tile = height, width, tile
        self.stride = width + 2
        self.values = np.zeros(height * self.stride)
        self.padded_parent, self.parent_stride = padded_parent, parent_width + 2
        tile_w, tile_h = tile
        self.tile_rows = np.arange(-(-height // tile_h))
        self.tile_cols = np.arange(-(-width // tile_w))
        self.ragged = bool(height % tile_h or width % tile_w)  # cut tiles on the last row or column

    def fronts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(flat indices into `values`, [21, n] features) of each step, fronts in order, in raster order."""
        for t in range(n_fronts(self.height, self.width, self.tile)):
            front = _front(t, self.tile)
            # Whole tile rows, up to about CHUNK_CELLS cells a step: raster order is kept.
            rows = max(1, CHUNK_CELLS // max(1, front.ly.size * self.tile_cols.size))
            for start in range(0, self.tile_rows.size, rows):
                step = self._step(self.tile_rows[start : start + rows], front)
                if step[0].size:
                    yield step

    def _step(self, tile_rows: np.ndarray, front: _Front) -> tuple[np.ndarray, np.ndarray]:
        tile_w, tile_h = self.tile
        ly, lx = front.ly, front.lx
        y = tile_rows[:, None] * tile_h + ly[None, :]  # [tile rows, pairs]
        x = lx[:, None] + self.tile_cols[None, :] * tile_w  # [pairs, tile columns]
        cells = (y * self.stride)[:, :, None] + x[None, :, :]  # [tile rows, pairs, tile columns]
        feats = np.empty((N_WAVEFRONT_CONTEXT, *cells.shape))
        if self.padded_parent is None:
            feats[:9] = 0.0
        else:
            prow = ((y >> 1)[None] + 1 + _HOOD_DY[:, :, None]) * self.parent_stride  # [9, tile rows, pairs]
            pcol = (x >> 1)[None] + 1 + _HOOD_DX[:, :, None]  # [9, pairs, tile columns]
            # mode="clip": cells past the level's last row or column (cut tiles) read
            # anything and are dropped below.
            np.take(self.padded_parent, prow[:, :, :, None] + pcol[:, None, :, :], out=feats[:9], mode="clip")
        # A neighbour outside the cell's tile reads the cell itself, then counts zero.
        offsets = front.dy * self.stride + front.dx  # [12, pairs]
        np.take(self.values, cells[None] + offsets[:, None, :, None], out=feats[9:], mode="clip")
        feats[9:] *= front.inside
        if not self.ragged:
            return cells.reshape(-1), feats.reshape(N_WAVEFRONT_CONTEXT, -1)
        keep = (y < self.height)[:, :, None] & (x < self.width)[None, :, :]
        return cells[keep], feats[:, keep]

    def grid(self) -> np.ndarray:
        """The level as a [height, width] array (a copy without the padding)."""
        return self.values.reshape(self.height, self.stride)[:, : self.width].copy()

    def padded(self) -> np.ndarray:
        """The level flat with one zero cell all round: the parent buffer of the next finer level."""
        out = np.zeros((self.height + 2, self.width + 2))
        out[1:-1, 1:-1] = self.values.reshape(self.height, self.stride)[:, : self.width]
        return out.reshape(-1)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one intra-op thread for the duration.

    A front is at most a few thousand cells: too small for threads to pay,
    and hundreds of fronts each hand work to the pool and wait for it. On a
    busy 2-core machine that made decoding kodim01 ~4x slower with two
    threads than with one (ad hoc, 2026-12-03). The results do not depend
    on the thread count (exact integer arithmetic), only the time does.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def encode_latents(latents: list[np.ndarray], arm: list[IntLinear], tile: tuple[int, int]) -> bytes:
    """Range-code integer latent grids (finest first in the list) into bytes, front by front."""
    with _one_thread():
        return _encode_latents(latents, arm, tile)


def _encode_latents(latents: list[np.ndarray], arm: list[IntLinear], tile: tuple[int, int]) -> bytes:
    model = _FrontModel(arm)
    encoder = constriction.stream.queue.RangeEncoder()
    parent: np.ndarray | None = None
    for level in reversed(range(len(latents))):
        grid = np.asarray(latents[level], dtype=np.float64)
        h, w = grid.shape
        state = _Level(h, w, tile, parent, latents[level + 1].shape[1] if level + 1 < len(latents) else 0)
        state.values.reshape(h, w + 2)[:, :w] = grid  # the whole level is known: features read final values
        for cells, feats in state.fronts():
            mu, scale_index = model.from_features(feats)
            encoder.encode(state.values[cells].astype(np.int32), _LATENT_MODEL, mu, LATENT_SCALES[scale_index])
        parent = state.padded()
    return words_to_bytes(encoder.get_compressed())


def decode_latents(data: bytes, height: int, width: int, n_levels: int, arm: list[IntLinear],
                   tile: tuple[int, int]) -> list[torch.Tensor]:
    """Inverse of `encode_latents`: float64 integer grids, finest first.

    Refuses a stream as soon as its symbols so far carry more information
    than the payload can hold, as `entropy.decode_latents` does.
    """
    with _one_thread():
        return _decode_latents(data, height, width, n_levels, arm, tile)


def _decode_latents(data: bytes, height: int, width: int, n_levels: int, arm: list[IntLinear],
                    tile: tuple[int, int]) -> list[torch.Tensor]:
    shapes = grid_sizes(height, width, n_levels)
    words = bytes_to_words(data)
    budget_bits = 32.0 * words.size + INFORMATION_SLACK_BITS
    spent_bits = 0.0
    model = _FrontModel(arm)
    decoder = constriction.stream.queue.RangeDecoder(words)
    unchecked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # symbols, means, scale indices
    n_unchecked = 0
    grids: list[np.ndarray] = [np.empty(0)] * n_levels
    parent: np.ndarray | None = None
    for level in reversed(range(n_levels)):
        h, w = shapes[level]
        state = _Level(h, w, tile, parent, shapes[level + 1][1] if level + 1 < n_levels else 0)
        for cells, feats in state.fronts():
            mu, scale_index = model.from_features(feats)
            symbols = _decode_symbols(decoder, _LATENT_MODEL, mu, LATENT_SCALES[scale_index], "latent")
            state.values[cells] = symbols
            # The information check runs on batches of about CHUNK_CELLS symbols:
            # per front (hundreds of small ones) it would cost more than decoding.
            unchecked.append((symbols, mu, scale_index))
            n_unchecked += symbols.size
            if n_unchecked >= CHUNK_CELLS:
                spent_bits = _check_information(unchecked, spent_bits, budget_bits, words.size, level)
                n_unchecked = 0
        grids[level] = state.grid()
        parent = state.padded()
    _check_information(unchecked, spent_bits, budget_bits, words.size, 0)
    _check_consumed(decoder, "latent")
    return [torch.from_numpy(g) for g in grids]


def _check_information(unchecked: list[tuple[np.ndarray, np.ndarray, np.ndarray]], spent_bits: float,
                       budget_bits: float, n_words: int, level: int) -> float:
    """Add the information of the symbols decoded since the last check; refuse the stream past its budget.

    `unchecked` holds (symbols, means, scale indices) and is emptied.
    """
    if unchecked:
        spent_bits += symbol_bits(*(np.concatenate(column) for column in zip(*unchecked)))
        unchecked.clear()
    refuse_over_budget(spent_bits, budget_bits, n_words, level)
    return spent_bits
