"""Format 2.0's latent coding: fronts cover every cell once, in an order the context respects, and round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrcodec import CocoFormatError
from inrcodec.format import entropy, wavefront
from inrcodec.format.context import N_WAVEFRONT_CONTEXT, WAVEFRONT_NEIGHBOURS, grid_sizes
from inrcodec.train.context import wavefront_context_features
from inrcodec.format.fixedpoint import LATENT_MAX, LATENT_MIN, IntLinear, run_int_mlp_columns

SHAPES = [(1, 1), (1, 6), (2, 3), (7, 5), (16, 9), (33, 4), (9, 40)]


def front_pairs(t: int, tile: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The tile coordinates (ly, lx) of front `t`'s cells, ly ascending: lx + 3 ly = t inside the tile.

    The specification's definition, read cell by cell; the coder works out a tile's fronts at once
    (`wavefront._tile_fronts`).
    """
    tile_w, tile_h = tile
    step = wavefront.FRONT_ROW_STEP
    # 0 <= lx = t - step * ly < tile_w, 0 <= ly < tile_h
    ly = np.arange(max(0, -(-(t - tile_w + 1) // step)), min(tile_h - 1, t // step) + 1)
    return ly, t - step * ly


def _random_arm(rng: np.random.Generator, hidden: list[int]) -> list[IntLinear]:
    widths = [N_WAVEFRONT_CONTEXT, *hidden, 2]
    return [IntLinear(rng.integers(-3000, 3000, (b, a)), rng.integers(-3000, 3000, b), int(rng.integers(6, 12)),
                      int(rng.integers(0, 14))) for a, b in zip(widths, widths[1:])]


def _latents(rng: np.random.Generator, height: int, width: int, n_levels: int, density: float) -> list[np.ndarray]:
    return [(rng.integers(-256, 256, size) * (rng.random(size) < density)).astype(np.float64)
            for size in grid_sizes(height, width, n_levels)]


def _steps(height: int, width: int, tile: tuple[int, int], parent: np.ndarray | None = None,
           grid: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coder's steps over a level: (flat indices y * width + x, [21, n] features) each, coding order.

    With `grid`, the whole level is known (as when encoding); the parent is
    the next coarser level, or None. A second level holding each cell's own
    index says which cells a step codes, through the encoder's own reads.
    """
    level = wavefront._Level(height, width, tile, parent)
    named = wavefront._Level(height, width, tile, parent)
    named.load(np.arange(height * width, dtype=np.float64).reshape(height, width))
    if grid is not None:
        level.load(grid)
    return [(named.symbols(step).astype(np.int64), level.in_coding_order(step, level.features(step)))
            for step in level.steps()]


def test_a_loaded_level_reads_back_whole() -> None:
    grid = np.arange(13 * 17, dtype=np.float64).reshape(13, 17)
    for tile in [(2, 2), (5, 3), (32, 32)]:
        level = wavefront._Level(13, 17, tile, None)
        level.load(grid)
        assert np.array_equal(level.grid(), grid)


@pytest.mark.parametrize(("height", "width"), SHAPES)
@pytest.mark.parametrize("tile", [(2, 2), (3, 3), (4, 4), (32, 32), (4, 2), (2, 5), (8, 3)])
def test_steps_cover_every_cell_once_each_in_raster_order(height: int, width: int, tile: tuple[int, int]) -> None:
    steps = [cells for cells, _ in _steps(height, width, tile)]
    assert all(np.all(np.diff(cells) > 0) for cells in steps)
    assert np.array_equal(np.sort(np.concatenate(steps)), np.arange(height * width))
    fronts = [front_pairs(t, tile) for t in range(wavefront.n_fronts(height, width, tile))]
    # n_fronts is exact: its last front holds a cell of the level, the next holds none
    last_ly, last_lx = fronts[-1]
    assert np.any((last_ly < height) & (last_lx < width))
    ly, lx = front_pairs(len(fronts), tile)
    assert not np.any((ly < min(height, tile[1])) & (lx < min(width, tile[0])))


@pytest.mark.parametrize("tile", [(2, 2), (3, 3), (5, 5), (8, 8), (6, 3), (3, 6)])
def test_every_neighbour_a_cell_sees_is_coded_in_an_earlier_step(tile: tuple[int, int]) -> None:
    height, width = 13, 17
    tile_w, tile_h = tile
    # Each cell's value is its own index + 1: a feature names the cell it read.
    grid = np.arange(1, height * width + 1, dtype=np.float64).reshape(height, width)
    steps = _steps(height, width, tile, grid=grid)
    step_of = np.empty(height * width, dtype=np.int64)
    for i, (cells, _) in enumerate(steps):
        step_of[cells] = i
    n_seen = 0
    for i, (cells, feats) in enumerate(steps):
        seen = feats[9:].astype(np.int64) - 1
        for column, cell in enumerate(cells):
            read = seen[:, column][seen[:, column] >= 0]
            assert np.all(step_of[read] < i)
            y, x = divmod(cell, width)
            assert all(r // width // tile_h == y // tile_h and r % width // tile_w == x // tile_w for r in read)
            n_seen += read.size
    # and it sees every one of them that is in its tile
    expected = sum(0 <= y + dy and 0 <= x + dx < width and (y + dy) // tile_h == y // tile_h
                   and (x + dx) // tile_w == x // tile_w
                   for y in range(height) for x in range(width) for dy, dx in WAVEFRONT_NEIGHBOURS)
    assert n_seen == expected > 0


@pytest.mark.parametrize(("height", "width"), [(7, 5), (16, 9), (9, 40)])
@pytest.mark.parametrize("tile", [(3, 3), (8, 8), (5, 2)])
def test_the_coders_features_are_the_training_context_definition(height: int, width: int,
                                                                 tile: tuple[int, int]) -> None:
    rng = np.random.default_rng(height * width + sum(tile))
    grid, parent = _latents(rng, height, width, 2, 0.5)
    expected = wavefront_context_features(torch.from_numpy(grid), torch.from_numpy(parent), tile).numpy()
    for cells, feats in _steps(height, width, tile, parent, grid):
        assert np.array_equal(feats, expected[cells].T)
    window = (2, height - 1, 1, width)
    sub = wavefront_context_features(torch.from_numpy(grid), torch.from_numpy(parent), tile, window).numpy()
    cells = np.arange(height * width)
    inside = (cells // width >= 2) & (cells // width < height - 1) & (cells % width >= 1)
    assert np.array_equal(sub, expected[inside])


@pytest.mark.parametrize(("height", "width"), SHAPES)
@pytest.mark.parametrize("tile", [(2, 2), (8, 8), (8, 3)])
@pytest.mark.parametrize("density", [1.0, 0.1])
def test_latents_round_trip(height: int, width: int, tile: tuple[int, int], density: float) -> None:
    rng = np.random.default_rng(height * 100 + width)
    arm = _random_arm(rng, [16, 16])
    latents = _latents(rng, height, width, 4, density)
    data = wavefront.encode_latents(latents, arm, tile)
    decoded = wavefront.decode_latents(data, height, width, 4, arm, tile)
    assert all(np.array_equal(d, g) for d, g in zip(decoded, latents))


def test_chunked_fronts_code_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    arm = _random_arm(rng, [8])
    latents = _latents(rng, 40, 56, 3, 0.3)
    whole = wavefront.encode_latents(latents, arm, (16, 8))
    monkeypatch.setattr(wavefront, "CHUNK_CELLS", 7)
    assert wavefront.encode_latents(latents, arm, (16, 8)) == whole
    decoded = wavefront.decode_latents(whole, 40, 56, 3, arm, (16, 8))
    assert all(np.array_equal(d, g) for d, g in zip(decoded, latents))


def test_a_truncated_or_wrong_stream_is_a_format_error() -> None:
    rng = np.random.default_rng(6)
    arm = _random_arm(rng, [8])
    latents = _latents(rng, 30, 20, 3, 1.0)
    data = wavefront.encode_latents(latents, arm, (8, 8))
    # Two extra words: one can pass for the encoder's final flush (see test_entropy).
    for bad in (data[: len(data) // 2 // 4 * 4], data + b"\0\0\0\1" * 2, bytes(len(data))):
        with pytest.raises(CocoFormatError):
            wavefront.decode_latents(bad, 30, 20, 3, arm, (8, 8))
    assert entropy.CHUNK_CELLS == wavefront.CHUNK_CELLS


@pytest.mark.parametrize("density", [0.05, 0.4, 1.0])
@pytest.mark.parametrize("hidden", [[16, 16], [], [5]])
def test_the_coders_context_model_is_the_shared_integer_code(density: float, hidden: list[int]) -> None:
    """Quiet cells skipped or not, the parameters are `entropy`'s of the integer network on every cell.

    The coder folds the fixed-point scalings and the rounding of the outputs
    into the network's tensors (`wavefront._front_model_layers`).
    """
    rng = np.random.default_rng(7 + len(hidden))
    arm = _random_arm(rng, hidden)
    grid, parent = _latents(rng, 37, 41, 2, density)
    model = wavefront._FrontModel(arm)
    for _, feats in _steps(37, 41, (4, 4), parent, grid):
        theirs = entropy._laplace_from_outputs(run_int_mlp_columns(feats * 4096, arm))
        mine = wavefront._laplace_parameters(model.codes(feats))
        assert np.array_equal(mine[0], theirs[0]) and np.array_equal(mine[1], theirs[1])


@pytest.mark.parametrize("weight_exp", [0, 5, 16])
def test_the_folded_output_rounding_clamps_where_the_reference_does(weight_exp: int) -> None:
    """Every latent value through a one-layer network whose mean is twice it and whose scale index grows 8x as fast:
    both outputs run past both ends of their ranges, and the folded rounding gives the reference's codes."""
    weight = np.zeros((2, N_WAVEFRONT_CONTEXT), dtype=np.int64)
    weight[:, 0] = [2 << weight_exp, 1 << weight_exp]
    arm = [IntLinear(weight, np.array([-5 << weight_exp, 3 << weight_exp]), weight_exp, weight_exp)]
    feats = np.zeros((N_WAVEFRONT_CONTEXT, LATENT_MAX - LATENT_MIN + 1))
    feats[0] = np.arange(LATENT_MIN, LATENT_MAX + 1)
    theirs = entropy._laplace_from_outputs(run_int_mlp_columns(feats * 4096, arm))
    mu, index = wavefront._laplace_parameters(wavefront._FrontModel(arm).codes(feats))
    assert np.array_equal(mu, theirs[0]) and np.array_equal(index, theirs[1])
    assert mu.min() == LATENT_MIN and mu.max() == LATENT_MAX
    assert index.min() == 0 and index.max() == entropy.LATENT_SCALES.size - 1


@pytest.mark.parametrize("tile", [(2, 2), (3, 5), (32, 32), (8, 3)])
@pytest.mark.parametrize("extent_of", [lambda tile: tile, lambda tile: (1, 1), lambda tile: (max(1, tile[0] - 1), 2)])
def test_a_tiles_fronts_at_once_are_front_pairs_within_the_extent(tile: tuple[int, int], extent_of) -> None:
    extent = extent_of(tile)
    fronts = wavefront._tile_fronts(tile, extent)
    assert len(fronts.bounds) - 1 == wavefront.n_fronts(extent[1], extent[0], tile)
    for t, (a, b) in enumerate(zip(fronts.bounds[:-1], fronts.bounds[1:])):
        ly, lx = front_pairs(t, tile)
        used = (lx < extent[0]) & (ly < extent[1])
        assert np.array_equal(fronts.ly[a:b], ly[used]) and np.array_equal(fronts.lx[a:b], lx[used])
        assert np.array_equal(fronts.planes[a:b], ly[used] * tile[0] + lx[used])
