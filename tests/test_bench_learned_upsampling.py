"""`python -m bench.learned_upsampling`: the 2x steps are bicubic's at the start, any window agrees, runs compare."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helper import image_folder

from bench import learned_upsampling as lu
from bench.results import read_csv
from inrcodec.train import encoder
from inrcodec.train import model as coconet
from inrcodec.train.model import CocoNet, Window

ARCH = encoder.ARCHITECTURES["default"]


def _nets(height: int, width: int) -> tuple[CocoNet, lu.UpNet]:
    torch.manual_seed(0)
    base = CocoNet(height, width, ARCH)
    up = lu.UpNet(height, width, ARCH, learned=True)
    with torch.no_grad():
        for grid, twin in zip(base.latents, up.latents):
            grid.normal_(0.0, 3.0)
            twin.copy_(grid)
    return base, up


def test_the_first_step_is_the_formats_bicubic_at_twice_the_size() -> None:
    """Level 1 reaches the image in one step, with bicubic's 2x taps: the shipped sampling of that level."""
    base, up = _nets(32, 48)
    win = base.full_window()
    theirs = base.sample(base.quantized_latents("round"), win)
    mine = up.sample(up.quantized_latents("round"), win)
    assert torch.allclose(mine[:, :2], theirs[:, :2], atol=1e-5)
    assert not torch.allclose(mine[:, 2:], theirs[:, 2:], atol=1e-2)  # deeper levels: a chain of 2x steps
    assert torch.allclose(lu.bicubic_2x_taps().sum(), torch.tensor(1.0))


def test_a_step_is_two_mirrored_phases_with_replicated_edges() -> None:
    taps = torch.tensor([0.1, 0.2, 0.3, 0.4])
    grid = torch.arange(12.0).reshape(3, 4)

    def reads(j: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source cells and taps of output j: even ones i - 2 .. i + 1, odd ones i - 1 .. i + 2 mirrored."""
        i = j // 2
        if j % 2:
            return torch.arange(i - 1, i + 3).clamp(0, n - 1), taps.flip(0)
        return torch.arange(i - 2, i + 2).clamp(0, n - 1), taps

    expected = torch.zeros(6, 8)
    for y in range(6):
        ry, wy = reads(y, 3)
        for x in range(8):
            rx, wx = reads(x, 4)
            expected[y, x] = (wy[:, None] * wx[None, :] * grid[ry][:, rx]).sum()
    assert torch.allclose(lu.upsample_2x(grid, taps), expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 96), (37, 50)])
def test_the_chain_matrices_are_the_2x_steps(shape: tuple[int, int]) -> None:
    """Over the whole image, each level's features are its grid through `upsample_2x` step by step."""
    _, up = _nets(*shape)
    with torch.no_grad():
        up.synthesis.up_taps.add_(torch.randn_like(up.synthesis.up_taps) * 0.1)
        latents = up.quantized_latents("round")
        features = up.sample(latents, up.full_window())
        for level, grid in enumerate(latents):
            for finer in reversed(range(level)):
                h, w = up.sizes[finer]
                grid = lu.upsample_2x(grid, up.synthesis.up_taps[finer])[:h, :w]
            assert torch.allclose(features[:, level], grid.reshape(-1), atol=1e-4)


@pytest.mark.parametrize("shape", [(64, 96), (40, 56)])
def test_a_window_samples_what_the_whole_image_does(shape: tuple[int, int]) -> None:
    _, up = _nets(*shape)
    with torch.no_grad():
        up.synthesis.up_taps.add_(torch.randn_like(up.synthesis.up_taps) * 0.1)
    with lu.wide_crops():
        assert coconet.CROP_MARGIN == lu.MARGIN
        whole = up.sample(up.crop_latents(up.full_window(), "round"), up.full_window())
        whole = whole.reshape(*shape, -1)
        h, w = shape
        for win in (Window(0, 9, 3, 30), Window(h - 11, h, w - 17, w), Window(5, 38, 0, w), Window(17, 18, 9, 10)):
            part = up.sample(up.crop_latents(win, "round"), win).reshape(win.r1 - win.r0, win.c1 - win.c0, -1)
            assert torch.allclose(part, whole[win.r0 : win.r1, win.c0 : win.c1], atol=1e-4)
    assert coconet.CROP_MARGIN == 3  # restored


def test_only_the_learned_variant_trains_and_pays_for_its_filters() -> None:
    learned = lu.UpNet(16, 16, ARCH, learned=True)
    fixed = lu.UpNet(16, 16, ARCH, learned=False)
    assert any(p is learned.synthesis.up_taps for p in learned.synthesis.parameters())
    assert learned.added_weights() == 4 * (ARCH.n_levels - 1) and fixed.added_weights() == 0
    with torch.no_grad():
        for grid in learned.latents:
            grid.normal_(0.0, 3.0)
    learned.synthesize(learned.quantized_latents("ste"), learned.full_window()).sum().backward()
    assert learned.synthesis.up_taps.grad is not None and learned.synthesis.up_taps.grad.abs().sum() > 0


def test_a_tiny_run_compares_each_variant_with_the_baseline(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"tiny.png": (40, 32)})
    out = tmp_path / "out"
    lu.main(["--images", str(images), "--pick", "tiny:1e-2:1e-3", "--variants", "learned",
             "--steps", "15", "--out", str(out)])
    rows = read_csv(out / lu.CSV_NAME)
    assert [(r["variant"], float(r["lmbda"])) for r in rows] == [("base", 1e-2), ("learned", 1e-2),
                                                                 ("base", 1e-3), ("learned", 1e-3)]
    assert all(float(r["latent_bpp"]) > 0 and 5 < float(r["psnr"]) < 60 for r in rows)
    assert [float(r["weight_bpp"]) > 0 for r in rows] == [False, True, False, True]
    summary = (out / "upsampling.md").read_text()
    assert "| learned | 2 |" in summary and "same lambda" in summary
    assert coconet.CROP_MARGIN == 3
    lu.main(["--images", str(images), "--pick", "tiny:1e-2", "--variants", "learned", "--steps", "15",
             "--out", str(out)])  # resumes: nothing refitted
    assert len((out / lu.CSV_NAME).read_text().splitlines()) == 5


def test_variants_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        lu.main(["--images", str(tmp_path), "--pick", "a:1", "--variants", "bilinear", "--out", str(tmp_path / "o")])


def test_same_lambda_pairs_move_the_variant_to_the_baselines_rate() -> None:
    def row(variant: str, lmbda: str, bpp: float, psnr: float) -> dict[str, str]:
        return {"image": "a.png", "variant": variant, "lmbda": lmbda, "latent_bpp": str(bpp), "weight_bpp": "0",
                "psnr": str(psnr)}

    slope = encoder.PSNR_PER_LN_RATE
    rows = [row("base", "0.01", 0.5, 30.0), row("learned", "0.01", 1.0, 30.0 + slope * math.log(2) + 0.3),
            row("base", "0.02", 0.4, 29.0), row("learned", "0.02", 0.4, 28.9), row("learned", "0.03", 0.3, 28.0)]
    text = lu.same_lambda_summary(rows)
    assert "| a.png | learned | 0.01 | 2.000 | +0.30 |" in text
    assert "| a.png | learned | 0.02 | 1.000 | -0.10 |" in text
    assert "0.03" not in text  # no baseline fit at that lambda
    assert "| learned | 2 | 1 | +0.10 | +0.10 | 1 | 0 | -0.10 | -0.10 |" in text  # only 0.02 has rates within 1.15x
