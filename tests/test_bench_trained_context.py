"""`python -m bench.trained_context`: each scheme's context is what it says, in any window, and runs compare."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helper import image_folder

from bench import trained_context as tc
from bench.results import read_csv
from inrcodec.train import encoder
from inrcodec.train.model import Window


def _net(scheme: str) -> tc.ContextNet:
    torch.manual_seed(0)
    net = tc.ContextNet(20, 28, encoder.ARCHITECTURE, scheme)
    with torch.no_grad():
        for grid in net.latents:
            grid.normal_(0.0, 3.0)
        for p in net.arm.parameters():
            p.normal_(0.0, 0.3)
    return net


def test_the_two_phase_scheme_is_format_1_0s_context_model() -> None:
    net = _net("two-phase")
    plain = tc.CocoNet(20, 28, encoder.ARCHITECTURE)
    plain.load_state_dict(net.state_dict())
    for win in (net.full_window(), Window(4, 13, 6, 21)):
        crops = net.crop_latents(win, "round")
        mine, counts = net.latent_bits(crops, win)
        theirs, their_counts = plain.latent_bits(crops, win)
        assert counts == their_counts
        assert torch.allclose(mine, theirs, rtol=1e-5)


@pytest.mark.parametrize("scheme", ["two-phase", "four-phase", "raster", "wavefront-8", "wavefront12-8",
                                    "wavefront-8x4"])
def test_a_window_sees_the_same_context_as_the_whole_image(scheme: str) -> None:
    net = _net(scheme)
    whole = net.quantized_latents("round")
    for win in (Window(0, 7, 3, 12), Window(11, 20, 20, 28), Window(5, 6, 9, 10)):
        crops = net.crop_latents(win, "round")
        for level in range(len(crops) - 1):
            cells = win.at_level(level)
            mine = tc.level_features(scheme, crops[level], crops[level + 1], cells)
            h, w = whole[level].shape
            full = tc.level_features(scheme, (whole[level], (0, 0)), (whole[level + 1], (0, 0)), Window(0, h, 0, w))
            rows = full.reshape(h, w, -1)[cells.r0:cells.r1, cells.c0:cells.c1].reshape(mine.shape)
            assert torch.equal(mine, rows), (win, level)


def test_raster_features_are_the_causal_neighbours_and_the_parent() -> None:
    net = _net("raster")
    grids = net.quantized_latents("round")
    feats = tc.level_features("raster", (grids[0], (0, 0)), (grids[1], (0, 0)), Window(0, 20, 0, 28))
    g, p = grids[0], grids[1]
    y, x = 5, 9
    row = feats[y * 28 + x]
    parent = [p[y // 2 + dy, x // 2 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    causal = [g[y + dy, x + dx] for dy, dx in tc.RASTER_NEIGHBOURS]
    assert torch.equal(row, torch.stack(parent + causal))
    assert torch.equal(feats[0, 9:], torch.zeros(12))  # nothing decoded before the first cell


def test_wavefront_cells_see_earlier_fronts_of_their_own_tile_only() -> None:
    assert all(dx + 2 * dy < 0 for dy, dx in tc.WAVEFRONT_NEIGHBOURS)  # decoded on an earlier front x + 2y
    assert len(tc.WAVEFRONT_NEIGHBOURS) == 11
    net = _net("wavefront-8")
    grids = net.quantized_latents("round")
    feats = tc.level_features("wavefront-8", (grids[0], (0, 0)), (grids[1], (0, 0)), Window(0, 20, 0, 28))
    g = grids[0]
    inside = feats[12 * 28 + 13]  # (12, 13): rows 10-11 and columns 11-15 are in its tile (8-15, 8-15)
    assert torch.equal(inside[9:], torch.stack([g[12 + dy, 13 + dx] for dy, dx in tc.WAVEFRONT_NEIGHBOURS]))
    corner = feats[8 * 28 + 9]  # (8, 9): the tile's top row; only its west neighbour (8, 8) is in the tile
    expected = [g[8, 8] if (dy, dx) == (0, -1) else 0.0 for dy, dx in tc.WAVEFRONT_NEIGHBOURS]
    assert torch.equal(corner[9:], torch.stack([torch.as_tensor(v, dtype=g.dtype) for v in expected]))


def test_rectangular_tiles_are_width_by_height() -> None:
    assert tc.tile_of("wavefront-64x32") == (32, 64) and tc.tile_of("wavefront12-16") == (16, 16)
    net = _net("wavefront-8x4")
    grids = net.quantized_latents("round")
    feats = tc.level_features("wavefront-8x4", (grids[0], (0, 0)), (grids[1], (0, 0)), Window(0, 20, 0, 28))
    g = grids[0]
    row_top = feats[4 * 28 + 11]  # (4, 11): the top row of its tile (rows 4-7, columns 8-15): same-row only
    expected = [g[4, 11 + dx] if dy == 0 else 0.0 for dy, dx in tc.WAVEFRONT_NEIGHBOURS]
    assert torch.equal(row_top[9:], torch.stack([torch.as_tensor(v, dtype=g.dtype) for v in expected]))
    inside = feats[7 * 28 + 11]  # (7, 11): rows 5-7 and columns 9-13 are all in its tile
    assert torch.equal(inside[9:], torch.stack([g[7 + dy, 11 + dx] for dy, dx in tc.WAVEFRONT_NEIGHBOURS]))


def test_wavefront12_sees_all_raster_neighbours_in_its_tile() -> None:
    net = _net("wavefront12-8")
    grids = net.quantized_latents("round")
    feats = tc.level_features("wavefront12-8", (grids[0], (0, 0)), (grids[1], (0, 0)), Window(0, 20, 0, 28))
    g = grids[0]
    assert feats.shape[1] == 9 + 12
    inside = feats[12 * 28 + 11]  # (12, 11): rows 10-11 and columns 9-13 are in its tile (8-15, 8-15)
    assert torch.equal(inside[9:], torch.stack([g[12 + dy, 11 + dx] for dy, dx in tc.RASTER_NEIGHBOURS]))
    assert all(dx + 3 * dy < 0 for dy, dx in tc.RASTER_NEIGHBOURS)  # decodable by fronts x + 3y


def test_four_phase_cells_see_only_earlier_steps() -> None:
    net = _net("four-phase")
    grids = net.quantized_latents("round")
    feats = tc.level_features("four-phase", (grids[0], (0, 0)), (grids[1], (0, 0)), Window(0, 20, 0, 28))
    g = grids[0]
    first, diagonal, across = feats[4 * 28 + 6], feats[5 * 28 + 7], feats[5 * 28 + 6]  # steps 0, 1, 3
    assert torch.equal(first[9:17], torch.zeros(8)) and first[17] == 1
    expected = [0, 0, 0, 0, g[4, 6], g[4, 8], g[6, 6], g[6, 8]]  # (1,1) sees the four (0,0) diagonals
    assert torch.equal(diagonal[9:17], torch.stack([torch.as_tensor(v, dtype=g.dtype) for v in expected]))
    assert torch.equal(across[9:17], torch.stack([g[4, 6], g[6, 6], g[5, 5], g[5, 7],
                                                  g[4, 5], g[4, 7], g[6, 5], g[6, 7]]))
    assert across[20] == 1


def test_a_tiny_run_compares_each_scheme_with_the_baseline(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"tiny.png": (40, 32)})
    out = tmp_path / "out"
    tc.main(["--images", str(images), "--pick", "tiny:1e-2:1e-3", "--schemes", "raster",
             "--steps", "15", "--out", str(out)])
    rows = read_csv(out / tc.CSV_NAME)
    assert [(r["scheme"], float(r["lmbda"])) for r in rows] == [
        (tc.BASELINE, 1e-2), ("raster", 1e-2), (tc.BASELINE, 1e-3), ("raster", 1e-3)]
    assert all(float(r["latent_bpp"]) > 0 and 5 < float(r["psnr"]) < 60 for r in rows)
    assert [float(r["weight_bpp"]) > 0 for r in rows] == [False, True, False, True]
    assert "| raster | 2 |" in (out / "context.md").read_text()
    tc.main(["--images", str(images), "--pick", "tiny:1e-2", "--schemes", "raster", "--steps", "15",
             "--out", str(out)])  # resumes: nothing refitted
    assert len((out / tc.CSV_NAME).read_text().splitlines()) == 5


def test_schemes_are_checked(tmp_path: Path) -> None:
    for bad in ("x", "", "raster,zigzag", "wavefront-2", "wavefront-x", "wavefront12-300", "wavefront-8x2",
                "wavefront-8x8x8"):
        with pytest.raises(SystemExit):
            tc.main(["--images", str(tmp_path), "--pick", "a:1", "--schemes", bad, "--out", str(tmp_path / "o")])
