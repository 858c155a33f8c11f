"""`python -m bench.synthesis_slopes`: the slopes are what they say, in any window, and runs compare."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helper import image_folder

from bench import synthesis_slopes as ss
from bench.results import read_csv
from inrcodec.train import encoder


def _net(levels: list[int]) -> ss.SlopeNet:
    torch.manual_seed(0)
    net = ss.SlopeNet(20, 28, encoder.ARCHITECTURE, levels)
    with torch.no_grad():
        for grid in net.latents:
            grid.normal_(0.0, 3.0)
    return net


def test_slopes_are_central_differences_clamped_at_the_borders() -> None:
    net = _net([0, 2])
    win = net.full_window()
    values = ss.CocoNet.sample(net, net.quantized_latents("round"), win).reshape(20, 28, -1)
    features = net.sample(net.quantized_latents("round"), win).reshape(20, 28, -1)
    n = len(net.latents)
    assert features.shape[-1] == n + 4
    assert torch.equal(features[..., :n], values)
    level0 = values[..., 0]
    assert torch.allclose(features[5, 7, n], (level0[5, 8] - level0[5, 6]) / 2)  # x slope, level 0
    assert torch.allclose(features[5, 7, n + 2], (level0[6, 7] - level0[4, 7]) / 2)  # y slope, level 0
    assert torch.allclose(features[0, 0, n + 2], (level0[1, 0] - level0[0, 0]) / 2)  # x - 1 clamped to x
    level2 = values[..., 2]
    assert torch.allclose(features[9, 27, n + 1], (level2[9, 27] - level2[9, 26]) * 2)  # level 2: cells of 4 pixels


def test_a_window_sees_the_same_features_as_the_whole_image() -> None:
    net = _net([0, 1])
    latents = net.quantized_latents("round")
    whole = net.sample(latents, net.full_window()).reshape(20, 28, -1)
    for win in (ss.Window(0, 7, 3, 12), ss.Window(11, 20, 20, 28), ss.Window(4, 9, 0, 28)):
        crops = net.crop_latents(win, "round")
        part = net.sample(crops, win).reshape(win.r1 - win.r0, win.c1 - win.c0, -1)
        assert torch.allclose(part, whole[win.r0:win.r1, win.c0:win.c1], atol=1e-5)


def test_slope_levels_are_parsed_strictly() -> None:
    assert ss.parse_levels("-") == [] and ss.parse_levels("013") == [0, 1, 3]
    for bad in ("10", "00", "7", "x"):
        with pytest.raises(ValueError):
            ss.parse_levels(bad)


def test_a_tiny_run_compares_each_variant_with_the_baseline(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"tiny.png": (40, 32)})
    out = tmp_path / "out"
    ss.main(["--images", str(images), "--pick", "tiny:1e-2:1e-3", "--slope-levels", "0",
             "--steps", "15", "--out", str(out)])
    rows = read_csv(out / ss.CSV_NAME)
    assert [(r["slope_levels"], float(r["lmbda"])) for r in rows] == [
        ("-", 1e-2), ("0", 1e-2), ("-", 1e-3), ("0", 1e-3)]
    assert all(float(r["latent_bpp"]) > 0 and 5 < float(r["psnr"]) < 60 for r in rows)
    assert "| 0 | 2 |" in (out / "slopes.md").read_text()
    ss.main(["--images", str(images), "--pick", "tiny:1e-2", "--slope-levels", "0", "--steps", "15",
             "--out", str(out)])  # resumes: nothing refitted
    assert len((out / ss.CSV_NAME).read_text().splitlines()) == 5
