"""Summary logic of the benchmark on synthetic RD curves with known answers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bench.results import COLUMNS, RowWriter, read_rows
from bench.summary import bd, complete_images, quality_at, summarize, tabulate, write_summary

RATES = np.geomspace(0.1, 2.0, 8)


def quality(bpp: float, offset: float = 0.0) -> float:
    """A plausible, concave PSNR curve: 6 dB per doubling of the rate."""
    return 30.0 + offset + 6.0 * math.log2(bpp)


def make_rows(codec: str, scale: float, images: dict[str, float], rates: np.ndarray = RATES) -> list[dict[str, Any]]:
    """Rows of a codec reaching the reference quality with ``scale`` times the reference bits.

    Args:
        codec: Codec name.
        scale: Bits relative to the reference curve at equal quality (0.8: 20 % fewer bits).
        images: Image name -> PSNR offset of that image.
        rates: Reference rates, one setting each.
    """
    rows = []
    for image, offset in images.items():
        for i, rate in enumerate(rates):
            row: dict[str, Any] = dict.fromkeys(COLUMNS, 0)
            psnr = quality(rate, offset)
            row.update(
                codec=codec,
                setting=f"quality={i}",
                image=image,
                bpp=rate * scale,
                psnr=psnr,
                msssim=1 - 10 ** (-(psnr - 15) / 10),
                msssim_db=psnr - 15,
                machine="test",
                date="2026-01-01",
                codec_version="1",
            )
            rows.append(row)
    return rows


IMAGES = {"a.png": 0.0, "b.png": 2.0}


def test_bd_rate_of_a_curve_shifted_to_fewer_bits() -> None:
    anchor = make_rows("jpeg420", 1.0, {"a.png": 0.0})
    better = make_rows("webp", 0.8, {"a.png": 0.0})
    worse = make_rows("avif", 1.3, {"a.png": 0.0})
    assert bd(anchor, better, "psnr")["bd_rate"] == pytest.approx(-20.0, abs=0.01)
    assert bd(anchor, worse, "psnr")["bd_rate"] == pytest.approx(30.0, abs=0.01)
    # At equal rate the better codec is ahead by 6 dB per doubling: 6 * log2(1 / 0.8) dB.
    assert bd(anchor, better, "psnr")["bd_quality_db"] == pytest.approx(6 * math.log2(1.25), abs=1e-3)


def test_bd_is_nan_without_overlap_or_points() -> None:
    anchor = make_rows("jpeg420", 1.0, {"a.png": 0.0}, RATES[:4])
    far = make_rows("webp", 1.0, {"a.png": 50.0}, RATES[:4])  # 50 dB better: quality ranges disjoint
    assert bd(anchor, far, "psnr")["overlap"] == 0
    inside = make_rows("webp", 0.8, {"a.png": 0.0}, RATES[2:5])  # narrower, within the anchor's range
    assert bd(make_rows("jpeg420", 1.0, {"a.png": 0.0}), inside, "psnr")["overlap"] == pytest.approx(1.0)
    assert math.isnan(bd(anchor, far, "psnr")["bd_rate"])
    assert math.isnan(bd(anchor, anchor[:1], "psnr")["bd_rate"])


def test_bd_drops_points_that_do_not_improve_quality() -> None:
    anchor = make_rows("jpeg420", 1.0, {"a.png": 0.0})
    test = make_rows("webp", 0.8, {"a.png": 0.0})
    test[3]["psnr"] = test[2]["psnr"] - 1  # a setting that costs more and looks worse
    assert bd(anchor, test, "psnr")["bd_rate"] == pytest.approx(-20.0, abs=0.5)


def test_summary_bd_against_both_anchors_and_per_image() -> None:
    rows = make_rows("jpeg420", 1.0, IMAGES) + make_rows("webp", 0.8, IMAGES) + make_rows("avif", 0.6, IMAGES)
    summary = summarize(rows)
    by = {(r["anchor"], r["codec"], r["metric"]): r for r in summary.bd}
    assert by["jpeg420", "webp", "psnr"]["bd_rate"] == pytest.approx(-20.0, abs=0.01)
    assert by["jpeg420", "avif", "msssim_db"]["bd_rate"] == pytest.approx(-40.0, abs=0.01)
    assert by["webp", "avif", "psnr"]["bd_rate"] == pytest.approx(-25.0, abs=0.01)  # 0.6 / 0.8
    assert by["webp", "jpeg420", "psnr"]["bd_rate"] == pytest.approx(25.0, abs=0.01)
    assert by["jpeg420", "webp", "psnr"]["bd_rate_image_median"] == pytest.approx(-20.0, abs=0.01)
    assert ("jpeg420", "jpeg420", "psnr") not in by
    per_image = [r for r in summary.bd_images if r["anchor"] == "jpeg420" and r["codec"] == "webp"]
    assert sorted(r["image"] for r in per_image if r["metric"] == "psnr") == sorted(IMAGES)
    assert all(r["bd_rate"] == pytest.approx(-20.0, abs=0.01) for r in per_image)


def test_quality_at_fixed_rates_interpolates_over_log_bpp() -> None:
    rows = make_rows("jpeg420", 1.0, {"a.png": 0.0}, np.geomspace(0.3, 2.0, 6))
    values = quality_at(rows, "psnr", (0.25, 0.5, 1.0, 2.0, 2.5))
    # PCHIP reproduces a curve linear in log(bpp) exactly; outside [0.3, 2] bpp there is no value.
    assert math.isnan(values[0]) and math.isnan(values[4])
    np.testing.assert_allclose(values[1:4], [quality(0.5), quality(1.0), quality(2.0)], atol=1e-9)


def test_fixed_rate_mean_is_nan_if_any_image_is_out_of_range() -> None:
    rows = make_rows("webp", 1.0, {"a.png": 0.0}) + make_rows("webp", 3.0, {"b.png": 0.0})  # b: 0.3..6 bpp
    fixed = {(r["metric"], r["bpp"]): r for r in summarize(rows).fixed}
    assert math.isnan(fixed["psnr", 0.25]["value"]) and fixed["psnr", 0.25]["n_in_range"] == 1
    expected = (quality(0.5) + quality(0.5 / 3)) / 2
    assert fixed["psnr", 0.5]["value"] == pytest.approx(expected, abs=1e-6)
    # The mean curve (bpp and PSNR averaged per setting) passes below the mean of per-image values.
    assert fixed["psnr", 0.5]["mean_curve_value"] < expected


def test_mean_curves_use_only_images_with_every_setting() -> None:
    rows = make_rows("webp", 1.0, IMAGES)
    rows = [r for r in rows if not (r["image"] == "b.png" and r["setting"] == "quality=0")]
    assert complete_images(tabulate(rows)["webp"]) == ["a.png"]
    curve = summarize(rows).curves
    assert [p["n_images"] for p in curve] == [1] * len(RATES)
    assert [p["psnr"] for p in curve] == pytest.approx([quality(r) for r in RATES])


def test_write_summary_from_csv(tmp_path: Any) -> None:
    with RowWriter(tmp_path / "rd.csv") as writer:
        for row in make_rows("jpeg420", 1.0, IMAGES) + make_rows("webp", 0.8, IMAGES):
            writer.write(row)
    rows = read_rows(tmp_path / "rd.csv")
    assert len(rows) == 2 * 2 * len(RATES) and isinstance(rows[0]["bpp"], float)
    write_summary(tmp_path, rows)
    for name in ("summary.csv", "fixed_rate.csv", "bd.csv", "bd_per_image.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert "jpeg420,webp,psnr,-20" in (tmp_path / "bd.csv").read_text()


def test_same_rate_compares_each_file_with_the_anchor_at_its_own_bpp() -> None:
    rows = make_rows("jpeg420", 1.0, IMAGES)
    # Two files per image at a requested 0.5 bpp: a lands 4 % over, 1 dB better than JPEG at
    # that rate; b lands 1 % under, 0.5 dB worse.
    for image, landed, gain in (("a.png", 0.52, 1.0), ("b.png", 0.495, -0.5)):
        row = dict(rows[0], codec="inrcodec", setting="bpp=0.5;effort=default", image=image, bpp=landed,
                   psnr=quality(landed, IMAGES[image]) + gain, msssim_db=math.nan, encode_s=10.0 + gain)
        rows.append(row)
    summary = summarize(rows)
    (psnr,) = [r for r in summary.same_rate if r["metric"] == "psnr"]
    assert psnr["target_bpp"] == 0.5 and psnr["n_compared"] == 2 and psnr["n_better"] == 1
    assert psnr["difference"] == pytest.approx(0.25, abs=1e-6)
    assert psnr["anchor_value"] == pytest.approx((quality(0.52) + quality(0.495, 2.0)) / 2, abs=1e-6)
    assert (psnr["n_within_2pct"], psnr["n_within_5pct"]) == (1, 2)
    assert psnr["encode_s_max"] == 11.0
    (msssim,) = [r for r in summary.same_rate if r["metric"] == "msssim_db"]
    assert msssim["n_compared"] == 0 and math.isnan(msssim["difference"])
    # Codecs without a rate target (quality= settings) get no such rows.
    assert {r["codec"] for r in summary.same_rate} == {"inrcodec"}


def test_readme_block_shows_the_same_rate_comparison(tmp_path: Any) -> None:
    from bench.readme import results_block

    rows = make_rows("jpeg420", 1.0, IMAGES)
    for image in IMAGES:
        rows.append(dict(rows[0], codec="inrcodec", setting="bpp=0.5;effort=default", image=image, bpp=0.5,
                         psnr=quality(0.5, IMAGES[image]) + 0.3, encode_s=12.0))
    with RowWriter(tmp_path / "rd.csv") as writer:
        for row in rows:
            writer.write(row)
    write_summary(tmp_path, read_rows(tmp_path / "rd.csv"))
    block = results_block(tmp_path, tmp_path)
    assert "| 0.5 | 0.500 | 25.30 | 25.00 | +0.30 | 2 / 2 | 2 / 2 | 12 / 12 |" in block
