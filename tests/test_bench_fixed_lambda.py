"""`python -m bench.fixed_lambda`: variants differ only where they say, and files are compared at equal rate."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from helper import image_folder

from bench import fixed_lambda as fl
from bench.results import read_csv
from inrcodec.train import encoder, fit


def test_each_variant_changes_only_what_it_names() -> None:
    known = fl.variants()
    base = known["base"]
    assert base.schedule == encoder.SCHEDULES["default"] and base.architecture == encoder.ARCHITECTURES["default"]
    assert known["soft"].schedule == replace(base.schedule, soft_rounding=(0.5, 0.2))
    assert known["synth48"].architecture.synth_hidden == (48,) and known["synth48"].schedule == base.schedule
    assert known["long-slow"].schedule == replace(base.schedule, iterations=4 * base.schedule.iterations,
                                                  lr_latent=0.03)
    assert fl.variants(30)["long-slow"].schedule.iterations == 120
    assert fl.variant("fine-0.03").schedule == replace(base.schedule, lr_latent_finest=0.03)
    assert fl.variant("latent-0.05", 30).schedule == replace(base.schedule, lr_latent=0.05, iterations=30)
    assert fl.variant("latent-0.15+fine-0.03").schedule == replace(base.schedule, lr_latent=0.15,
                                                                   lr_latent_finest=0.03)
    fast = fl.variants(effort="fast")["base"].schedule
    assert fast == encoder.SCHEDULES["fast"]
    assert fl.variant("beta2-0.99+ste-0.05+crop-192+floor-0.05", effort="fast").schedule == replace(
        fast, adam_betas=(fit.SHORT_FIT_BETA1, 0.99), ste_fraction=0.05, crop=192, lr_floor=0.05)
    assert fl.variant("beta1-0.8").schedule.adam_betas == (0.8, fit.adam_beta2(base.schedule.iterations))
    assert fl.variant("beta1-0.8", effort="fast").schedule.adam_betas == (0.8, fit.SHORT_FIT_BETA2)
    assert fl.variant("warmup-0.05+clip-3").schedule == replace(base.schedule, warmup=0.05, grad_clip=3.0)
    cheap = fl.variant("arm-8x8+steps-900", effort="fast")
    assert cheap.schedule == replace(fast, iterations=900)
    assert cheap.architecture == replace(encoder.ARCHITECTURES["fast"], arm_hidden=(8, 8))
    assert fl.variant("arm-12").architecture.arm_hidden == (12,) and fl.variant("arm-12").schedule == base.schedule
    for bad in ("fine", "fine-x", "fine-0", "coarse-0.1", "synth-48", "fine-0.03+", "soft+fine-0.03",
                "beta2-1", "crop-19.5", "crop-8", "arm-8x", "arm-0", "arm-x8", "steps-0", "steps-1.5"):
        with pytest.raises(ValueError, match="unknown variant"):
            fl.variant(bad)


def test_the_baseline_is_read_on_its_line_in_log_rate() -> None:
    points = [(0.5, 30.0), (1.0, 33.0), (2.0, 35.0)]
    assert fl.baseline_psnr_at(points, 1.0) == (33.0, False)
    value, outside = fl.baseline_psnr_at(points, math.sqrt(0.5))  # halfway in ln bpp on the first segment
    assert value == pytest.approx(31.5) and not outside
    value, outside = fl.baseline_psnr_at(points, 4.0)  # past the last point: the last segment extended
    assert value == pytest.approx(37.0) and outside


def test_a_tiny_run_writes_real_files_and_compares_them(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"tiny.png": (64, 48)})
    out = tmp_path / "out"
    fl.main(["--images", str(images), "--pick", "tiny:1e-2:1e-3", "--variants", "base,synth48",
             "--steps", "20", "--out", str(out)])
    rows = read_csv(out / fl.CSV_NAME)
    assert [(r["variant"], float(r["lmbda"])) for r in rows] == [
        ("base", 1e-2), ("base", 1e-3), ("synth48", 1e-2), ("synth48", 1e-3)]
    assert all(float(r["bpp"]) > 0 and 5 < float(r["psnr"]) < 60 and r["steps"] == "20" for r in rows)
    assert rows[2]["synth_hidden"] == "48"
    report = (out / "fixed_lambda.md").read_text()
    assert report.count("| tiny.png | synth48 |") == 2 and "| synth48 | 2 |" in report
    fl.main(["--images", str(images), "--pick", "tiny:1e-2", "--variants", "base", "--steps", "20",
             "--out", str(out)])  # resumed: nothing refitted
    assert len(read_csv(out / fl.CSV_NAME)) == 4


def test_picks_are_checked_before_any_fit(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"a.png": (16, 16), "b.png": (16, 16)})
    assert fl.picks(images, "a:1e-3:2e-3,b:5e-3") == [(images / "a.png", [1e-3, 2e-3]), (images / "b.png", [5e-3])]
    for bad in ("a:1e-3,c:1e-3", "a", "a:x", "a:-1e-3", "a:0", "a:inf"):
        with pytest.raises(SystemExit):
            fl.picks(images, bad)
