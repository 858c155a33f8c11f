"""Format 2.0's latent coding: each level in tiles, one wavefront of every tile at a time.

Format 1.0 codes a level in two checkerboard phases, so half of its cells
(the anchors) see nothing of their own level. Format 2.0's context
(`train.context.wavefront_context_features`) gives every cell the twelve cells
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

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import constriction
import numpy as np

from .context import N_WAVEFRONT_CONTEXT, WAVEFRONT_NEIGHBOURS, grid_sizes
from .entropy import (
    CHUNK_CELLS,
    MIN_QUIET_SHARE,
    INFORMATION_SLACK_BITS,
    LATENT_SCALES,
    _LATENT_MODEL,
    _check_consumed,
    _decode_symbols,
    bytes_to_words,
    refuse_over_budget,
    symbol_bits,
    words_to_bytes,
)
from .fixedpoint import (
    ACT_FRAC_BITS,
    ACT_ONE,
    LATENT_MAX,
    LATENT_MIN,
    LATENT_SCALE_K_MAX,
    MU_FRAC_BITS,
    SCALE_K_MIN,
    SCALE_STEPS_PER_OCTAVE,
    IntLayerArrays,
    IntLinear,
    int_mlp_arrays,
    run_int_layers,
)

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


class _Front(NamedTuple):
    """One front of a tile at one level (`_Level.steps`).

    planes: [pairs] the plane `ly * tile_w + lx` of each of its cells
        (`_Level`), ly ascending;
    ly, lx: [pairs] those cells' tile coordinates;
    neighbours: [12, pairs] the planes of their same-level neighbours, the
        zero plane (tile_w * tile_h) for a neighbour outside the tile;
    hood: [9, pairs] their parent neighbourhoods' rows in `_Level._parent_view`.
    """

    planes: np.ndarray
    ly: np.ndarray
    lx: np.ndarray
    neighbours: np.ndarray
    hood: np.ndarray


@dataclass(frozen=True)
class _TileFronts:
    """Every cell of a tile's `extent` (`_tile_fronts`), front after front, ly ascending within a front.

    Front t is columns bounds[t]..bounds[t + 1] - 1 of each array; the
    arrays are as `_Front`'s, the parent neighbourhoods as (row, column)
    in a tile of the parent view, which `hood` turns into that view's rows.
    """

    planes: np.ndarray
    ly: np.ndarray
    lx: np.ndarray
    neighbours: np.ndarray
    hood_rows: np.ndarray
    hood_cols: np.ndarray
    bounds: np.ndarray

    def hood(self, parent_row: int) -> np.ndarray:
        """[9, cells] rows of a parent view whose array rows are `parent_row` long."""
        return self.hood_rows * parent_row + self.hood_cols


@functools.lru_cache(maxsize=8)  # a stream has at most MAX_LEVELS extents; an entry is up to ~4 MiB (128x128 tiles)
def _tile_fronts(tile: tuple[int, int], extent: tuple[int, int]) -> _TileFronts:
    """The fronts of a tile, all at once (one pass over its cells, not a few dozen operations per front).

    `extent` = (columns, rows) of a tile that can hold cells: the tile, or
    less for a level smaller than one tile, whose fronts then leave out the
    cells past it. A stream has a few extents, so this runs a few times per
    decode; per front, it was ~20 ms of a first decode (ad hoc).
    """
    tile_w, tile_h = tile
    ly, lx = np.divmod(np.arange(extent[0] * extent[1]), extent[0])
    front = lx + FRONT_ROW_STEP * ly
    order = np.lexsort((ly, front))
    ly, lx, front = ly[order], lx[order], front[order]
    ny, nx = ly[None, :] + _NEIGHBOUR_DY, lx[None, :] + _NEIGHBOUR_DX
    inside = (ny >= 0) & (nx >= 0) & (nx < tile_w)
    fronts = _TileFronts(ly * tile_w + lx, ly, lx, np.where(inside, ny * tile_w + nx, tile_w * tile_h),
                         ly[None, :] + 2 + 2 * _HOOD_DY, lx[None, :] + 2 + 2 * _HOOD_DX,
                         np.searchsorted(front, np.arange(n_fronts(extent[1], extent[0], tile) + 1)))
    for array in (fronts.planes, fronts.ly, fronts.lx, fronts.neighbours, fronts.hood_rows, fronts.hood_cols,
                  fronts.bounds):
        array.flags.writeable = False
    return fronts


def _front_model_layers(arm: list[IntLinear]) -> list[IntLayerArrays]:
    """The context model's layers for `run_int_layers`, folded so that its last layer gives the codes.

    `fixedpoint.int_mlp_arrays`' layers (each layer's 2**-weight_exp folded
    in), then more powers of two, hence still exact (every partial sum a
    multiple of a power of two well within float64's 53 bits): the first
    layer's weight takes the Q12 scaling of the features (ACT_ONE); the
    last layer's rows are further divided by the step of the Laplace mean's
    1/16 grid (256 in Q12) and of the scale's 1/8 octave (512), with half a
    step added for rounding to nearest and -SCALE_K_MIN to the scale's row,
    so its floor is directly the mean in 1/16 and the index into
    LATENT_SCALES. floor((floor(a) + c) / m) = floor((a + c) / m) for
    integers c and m > 0, and the last layer's clamp at +-ACT_LIMIT lies
    outside the final clip range of both rows, so the codes are exactly
    `quantize_mu` and `scale_index_from_log2` of `run_int_mlp_columns`'
    outputs.
    """
    layers = int_mlp_arrays(arm)
    weight, bias, low, high = layers[0]
    layers[0] = (weight * ACT_ONE, bias, low, high)
    steps = np.array([[1 << (ACT_FRAC_BITS - MU_FRAC_BITS)], [ACT_ONE // SCALE_STEPS_PER_OCTAVE]], dtype=np.float64)
    weight, bias, _, _ = layers[-1]
    layers[-1] = (weight / steps, bias / steps + np.array([[0.5], [0.5 - SCALE_K_MIN]]),
                  np.array([[LATENT_MIN << MU_FRAC_BITS], [0]], dtype=np.float64),
                  np.array([[LATENT_MAX << MU_FRAC_BITS], [LATENT_SCALE_K_MAX - SCALE_K_MIN]], dtype=np.float64))
    return layers


# Fronts of fewer cells run the network on all of them: there its fixed
# cost per call (~17 us) is most of its time, and finding the quiet cells
# costs ~4 us.
QUIET_CHECK_MIN_CELLS = 256


class _FrontModel:
    """The context model, prepared once per stream, giving each front's exact Laplace codes.

    The arithmetic is `fixedpoint`'s, exact integers in float64.
    """

    def __init__(self, arm: list[IntLinear]) -> None:
        self.layers = _front_model_layers(arm)
        self.quiet = self._run(np.zeros((N_WAVEFRONT_CONTEXT, 1)))  # at zero features

    def codes(self, feats: np.ndarray) -> np.ndarray:
        """[2, n] codes (`_laplace_parameters`) from [21, n] integer features.

        Cells whose features are all zero ("quiet": most of a level's cells
        at low rates) all get the network's output at zero features, worked
        out once per stream; the network runs on the others only, where the
        quiet ones are at least a quarter of a front.
        """
        if feats.shape[1] < QUIET_CHECK_MIN_CELLS:
            return self._run(feats)
        busy = feats.any(axis=0)
        n_busy = int(np.count_nonzero(busy))
        if n_busy > (1 - MIN_QUIET_SHARE) * busy.size:
            return self._run(feats)
        codes = np.empty((2, busy.size))
        codes[:] = self.quiet
        if n_busy:
            codes[:, busy] = self._run(feats[:, busy])
        return codes

    def _run(self, feats: np.ndarray) -> np.ndarray:
        return run_int_layers(feats, self.layers)


def _laplace_parameters(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, index into LATENT_SCALES) from `_FrontModel.codes` (the mean in 1/16, the index)."""
    return codes[0] * (1.0 / (1 << MU_FRAC_BITS)), codes[1].astype(np.int64)


class _Step(NamedTuple):
    """One batched coding step: a front's cells in tile rows r0..r1-1.

    keep: which of the step's cells (coding order) lie in the level, None
    for all.
    """

    front: _Front
    r0: int
    r1: int
    keep: np.ndarray | None


class _Level:
    """One level's values, tile by tile, and the index arithmetic of its fronts, for the coder's loop.

    `planes[ly * tile_w + lx, r, c]` is cell (r * tile_h + ly, c * tile_w +
    lx) (zero past the level's border), and one last plane of zeros is what
    a neighbour outside its cell's tile reads. A front is a few (ly, lx)
    pairs repeated over every tile, so each of its features is a whole
    [tile rows, tile columns] plane: one gather of twelve planes per pair
    fetches the same-level features with the tile cuts built in, one of nine
    from `_parent_view` the parent ones. The features come out in the order
    (pair, tile row, tile column); the context model runs on them in that
    order, and only its two codes per cell are put in coding order (raster
    order within the front: tile row, pair, tile column).
    """

    def __init__(self, height: int, width: int, tile: tuple[int, int], parent: np.ndarray | None) -> None:
        self.height, self.width, self.tile = height, width, tile
        tile_w, tile_h = tile
        self.n_tile_rows, self.n_tile_cols = -(-height // tile_h), -(-width // tile_w)
        self.planes = np.zeros((tile_w * tile_h + 1, self.n_tile_rows, self.n_tile_cols))
        self.parent_row = self.n_tile_cols * tile_w + 4  # the row length of `_parent_view`'s array
        self.parent_view = None if parent is None else self._parent_view(parent)
        # Cut tiles on the last row or column; a level within one tile on an
        # axis has none there (its fronts skip the pairs past its extent).
        self.ragged = bool(self.n_tile_rows > 1 and height % tile_h or self.n_tile_cols > 1 and width % tile_w)

    def _parent_view(self, parent: np.ndarray) -> np.ndarray:
        """[k, tile rows, tile columns]: the parent neighbourhoods of every tile, as a view.

        The parent level upsampled 2x (nearest) with two zero cells all
        round holds the parent neighbour (y >> 1) + hy of level row y at row
        y + 2 + 2 hy, in whichever tile y lies: so one array serves every
        tile, read through overlapping windows; neighbour (hy, hx) of
        cell (ly, lx) of tile (r, c) is view[(ly + 2 + 2 hy) * parent_row +
        lx + 2 + 2 hx, r, c].

        int16 holds every latent exactly (LATENT_MIN..LATENT_MAX) in a
        quarter of float64's memory: the array is as large as the level.
        """
        tile_w, tile_h = self.tile
        up = np.zeros((self.n_tile_rows * tile_h + 4, self.parent_row), dtype=np.int16)
        parent_h, parent_w = parent.shape
        for dy, dx in itertools.product((0, 1), repeat=2):
            up[2 + dy : 2 + 2 * parent_h : 2, 2 + dx : 2 + 2 * parent_w : 2] = parent
        item = up.itemsize
        rows = (tile_h + 3) * self.parent_row + tile_w + 4
        return np.lib.stride_tricks.as_strided(
            up, (rows, self.n_tile_rows, self.n_tile_cols),
            (item, tile_h * self.parent_row * item, tile_w * item), writeable=False)

    def load(self, grid: np.ndarray) -> None:
        """Fill the level from a known [height, width] grid (the encoder's case)."""
        tile_w, tile_h = self.tile
        whole = np.zeros((self.n_tile_rows * tile_h, self.n_tile_cols * tile_w))
        whole[: self.height, : self.width] = grid
        self.planes[:-1] = whole.reshape(self.n_tile_rows, tile_h, self.n_tile_cols, tile_w).transpose(
            1, 3, 0, 2).reshape(tile_w * tile_h, self.n_tile_rows, self.n_tile_cols)

    def grid(self) -> np.ndarray:
        """The level as a [height, width] array."""
        tile_w, tile_h = self.tile
        tiles = self.planes[:-1].reshape(tile_h, tile_w, self.n_tile_rows, self.n_tile_cols)
        whole = tiles.transpose(2, 0, 3, 1).reshape(self.n_tile_rows * tile_h, self.n_tile_cols * tile_w)
        return np.ascontiguousarray(whole[: self.height, : self.width])

    def steps(self) -> Iterator[_Step]:
        """The level's coding steps, fronts in order, each in whole tile rows of up to about CHUNK_CELLS cells."""
        fronts = _tile_fronts(self.tile, (min(self.tile[0], self.width), min(self.tile[1], self.height)))
        hood = fronts.hood(self.parent_row)
        for a, b in itertools.pairwise(fronts.bounds.tolist()):
            if a == b:
                continue
            front = _Front(fronts.planes[a:b], fronts.ly[a:b], fronts.lx[a:b], fronts.neighbours[:, a:b], hood[:, a:b])
            rows = max(1, CHUNK_CELLS // (front.planes.size * self.n_tile_cols))
            for r0 in range(0, self.n_tile_rows, rows):
                r1 = min(self.n_tile_rows, r0 + rows)
                keep = self._keep(front, r0, r1)
                if keep is None or keep.any():
                    yield _Step(front, r0, r1, keep)

    def _keep(self, front: _Front, r0: int, r1: int) -> np.ndarray | None:
        if not self.ragged:
            return None
        tile_w, tile_h = self.tile
        y = np.arange(r0, r1)[:, None] * tile_h + front.ly[None, :]  # [tile rows, pairs]
        x = front.lx[:, None] + np.arange(self.n_tile_cols)[None, :] * tile_w  # [pairs, tile columns]
        keep = ((y < self.height)[:, :, None] & (x < self.width)[None, :, :]).reshape(-1)
        return None if keep.all() else keep

    def features(self, step: _Step) -> np.ndarray:
        """[21, n] context features of the step's cells, in the order (pair, tile row, tile column)."""
        same_level = self.planes[step.front.neighbours, step.r0 : step.r1]  # [12, pairs, tile rows, tile columns]
        if self.parent_view is None:
            parent = np.zeros((9, *same_level.shape[1:]))
        else:
            parent = self.parent_view[step.front.hood, step.r0 : step.r1]
        return np.concatenate((parent, same_level)).reshape(N_WAVEFRONT_CONTEXT, -1)

    def in_coding_order(self, step: _Step, values: np.ndarray) -> np.ndarray:
        """[k, n] values of the step's cells from `features`' order to coding order, cells outside the level dropped."""
        k = values.shape[0]
        ordered = values.reshape(k, step.front.planes.size, step.r1 - step.r0, -1).transpose(0, 2, 1, 3).reshape(k, -1)
        return ordered if step.keep is None else ordered[:, step.keep]

    def symbols(self, step: _Step) -> np.ndarray:
        """The step's cells' values in coding order (the encoder's case)."""
        return self.in_coding_order(step, self.planes[step.front.planes, step.r0 : step.r1][None])[0]

    def store(self, step: _Step, symbols: np.ndarray) -> None:
        """Write the step's decoded symbols (coding order) into the level."""
        if step.keep is not None:
            whole = np.zeros(step.keep.size)
            whole[step.keep] = symbols
            symbols = whole
        self.planes[step.front.planes, step.r0 : step.r1] = (
            symbols.reshape(step.r1 - step.r0, step.front.planes.size, -1).transpose(1, 0, 2))

    def parameters(self, model: _FrontModel, step: _Step) -> tuple[np.ndarray, np.ndarray]:
        """The Laplace mean and scale index of the step's cells, coding order."""
        return _laplace_parameters(self.in_coding_order(step, model.codes(self.features(step))))


def encode_latents(latents: list[np.ndarray], arm: list[IntLinear], tile: tuple[int, int]) -> bytes:
    """Range-code integer latent grids (finest first in the list) into bytes, front by front."""
    model = _FrontModel(arm)
    encoder = constriction.stream.queue.RangeEncoder()
    parent: np.ndarray | None = None
    for level in reversed(range(len(latents))):
        grid = np.asarray(latents[level], dtype=np.float64)
        state = _Level(*grid.shape, tile, parent)
        state.load(grid)  # the whole level is known: features read final values
        for step in state.steps():
            mu, scale_index = state.parameters(model, step)
            encoder.encode(state.symbols(step).astype(np.int32), _LATENT_MODEL, mu, LATENT_SCALES[scale_index])
        parent = grid
    return words_to_bytes(encoder.get_compressed())


def decode_latents(data: bytes, height: int, width: int, n_levels: int, arm: list[IntLinear],
                   tile: tuple[int, int]) -> list[np.ndarray]:
    """Inverse of `encode_latents`: float64 integer grids, finest first.

    Refuses a stream as soon as its symbols so far carry more information
    than the payload can hold, as `entropy.decode_latents` does.
    """
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
        state = _Level(*shapes[level], tile, parent)
        for step in state.steps():
            mu, scale_index = state.parameters(model, step)
            symbols = _decode_symbols(decoder, _LATENT_MODEL, mu, LATENT_SCALES[scale_index], "latent")
            state.store(step, symbols)
            # The information check runs on batches of about CHUNK_CELLS symbols:
            # per front (hundreds of small ones) it would cost more than decoding.
            unchecked.append((symbols, mu, scale_index))
            n_unchecked += symbols.size
            if n_unchecked >= CHUNK_CELLS:
                spent_bits = _check_information(unchecked, spent_bits, budget_bits, words.size, level)
                n_unchecked = 0
        grids[level] = parent = state.grid()
    _check_information(unchecked, spent_bits, budget_bits, words.size, 0)
    _check_consumed(decoder, "latent")
    return grids


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
