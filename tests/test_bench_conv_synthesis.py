"""`python -m bench.conv_synthesis`: the convolutions are what they say, in any window, and runs compare."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helper import image_folder

from bench import conv_synthesis as cs
from bench.results import read_csv
from inrcodec.train import encoder


def _net(n_convs: int) -> cs.ConvNet:
    torch.manual_seed(0)
    net = cs.ConvNet(20, 28, encoder.ARCHITECTURE, n_convs)
    with torch.no_grad():
        for grid in net.latents:
            grid.normal_(0.0, 3.0)
        if n_convs:
            for conv in net.synthesis.convs:
                conv.weight.normal_(0.0, 0.3)
                conv.bias.normal_(0.0, 0.1)
    return net


def test_zero_initialised_convolutions_start_as_the_plain_synthesis() -> None:
    torch.manual_seed(0)
    net = cs.ConvNet(20, 28, encoder.ARCHITECTURE, 2)
    latents = net.quantized_latents("round")
    win = net.full_window()
    plain = net.synthesis.mlp(net.sample(latents, win))
    assert torch.equal(net.synthesize(latents, win), plain)
    assert net.added_weights() == 2 * (3 * 3 * 9 + 3)


def test_the_layers_are_residual_3x3_convolutions_with_replicated_borders() -> None:
    net = _net(1)
    latents = net.quantized_latents("round")
    win = net.full_window()
    planes = net.synthesis.mlp(net.sample(latents, win)).T.reshape(1, 3, 20, 28)
    conv = net.synthesis.convs[0]
    expected = planes + conv(F.pad(planes, (1, 1, 1, 1), mode="replicate"))
    assert torch.allclose(net.synthesize(latents, win), expected[0].reshape(3, -1).T, atol=1e-6)


@pytest.mark.parametrize("n_convs", [1, 2])
def test_a_window_sees_the_same_colours_as_the_whole_image(n_convs: int) -> None:
    net = _net(n_convs)
    whole = net.synthesize(net.quantized_latents("round"), net.full_window()).reshape(20, 28, 3)
    for win in (cs.Window(0, 7, 3, 12), cs.Window(11, 20, 20, 28), cs.Window(4, 9, 0, 28), cs.Window(5, 6, 9, 10)):
        part = net.synthesize(net.crop_latents(win, "round"), win).reshape(win.r1 - win.r0, win.c1 - win.c0, 3)
        assert torch.allclose(part, whole[win.r0:win.r1, win.c0:win.c1], atol=1e-5)


def test_a_tiny_run_compares_each_variant_with_the_baseline(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"tiny.png": (40, 32)})
    out = tmp_path / "out"
    cs.main(["--images", str(images), "--pick", "tiny:1e-2:1e-3", "--convs", "1",
             "--steps", "15", "--out", str(out)])
    rows = read_csv(out / cs.CSV_NAME)
    assert [(r["convs"], float(r["lmbda"])) for r in rows] == [("0", 1e-2), ("1", 1e-2), ("0", 1e-3), ("1", 1e-3)]
    assert all(float(r["latent_bpp"]) > 0 and 5 < float(r["psnr"]) < 60 for r in rows)
    assert [float(r["weight_bpp"]) > 0 for r in rows] == [False, True, False, True]
    assert "| 1 | 2 |" in (out / "conv.md").read_text()
    cs.main(["--images", str(images), "--pick", "tiny:1e-2", "--convs", "1", "--steps", "15",
             "--out", str(out)])  # resumes: nothing refitted
    assert len((out / cs.CSV_NAME).read_text().splitlines()) == 5


def test_layer_counts_are_checked(tmp_path: Path) -> None:
    for bad in ("x", "5", "-1"):
        with pytest.raises(SystemExit):
            cs.main(["--images", str(tmp_path), "--pick", "a:1", "--convs", bad, "--out", str(tmp_path / "o")])
