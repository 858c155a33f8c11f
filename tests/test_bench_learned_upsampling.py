"""`python -m bench.learned_upsampling`: its variants, a tiny run and its same-lambda comparison."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helper import image_folder

from bench import learned_upsampling as lu
from bench.results import read_csv
from inrcodec.train import encoder
from inrcodec.train import model as coconet



def test_only_the_learned_variant_trains_and_pays_for_its_filters() -> None:
    base, fixed, learned = (lu.new_net(v)(16, 16) for v in ("base", "fixed", "learned"))
    assert not base.arch.learned_upsampling and fixed.arch.learned_upsampling and learned.arch.learned_upsampling
    assert [lu.added_weights(m) for m in (base, fixed, learned)] == [0, 0, 4 * (learned.arch.n_levels - 1)]
    assert any(p is learned.synthesis.up_taps for p in learned.synthesis.parameters())
    assert not fixed.synthesis.up_taps.requires_grad


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
