"""`python -m bench.compare_runs`: pairs by image and request, compares at the requested rate."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from bench import compare_runs as cr
from inrcodec.train.encoder import PSNR_PER_LN_RATE


def _rd(path: Path, rows: list[tuple[str, str, str, float, float, float]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["codec", "setting", "image", "bpp", "psnr", "encode_s"])
        writer.writerows(rows)
    return path


def test_files_are_compared_at_the_requested_rate(tmp_path: Path) -> None:
    old = _rd(tmp_path / "old.csv", [
        ("inrcodec", "bpp=0.5;effort=default", "a.png", 0.5, 30.0, 100.0),
        ("inrcodec", "bpp=0.5;effort=default", "b.png", 0.5, 31.0, 100.0),  # no partner
        ("inrcodec", "bpp=0.5;effort=max", "a.png", 0.5, 35.0, 300.0),  # another effort
        ("jpeg420", "quality=50", "a.png", 0.5, 29.0, 0.01),
    ])
    new = _rd(tmp_path / "new.csv", [("inrcodec", "bpp=0.5;effort=default", "a.png", 0.52, 30.5, 110.0)])
    pairs = cr.read_encodes(old, "default")
    assert set(pairs) == {("a.png", 0.5), ("b.png", 0.5)}
    moved = cr.read_encodes(new, "default")[("a.png", 0.5)].at_request
    assert moved == pytest.approx(30.5 + PSNR_PER_LN_RATE * math.log(0.5 / 0.52))  # 4 % over: ~0.18 dB back
    table = cr.compare(pairs, cr.read_encodes(new, "default"))
    assert f"| a.png | 0.5 | 0.500 / 30.00 / 100 | 0.520 / 30.50 / 110 | {moved - 30.0:+.2f} |" in table
    assert "b.png" not in table and f"| all | 1 | {moved - 30.0:+.2f} | 1 | 1 / 1 | 100.0 / 110.0 |" in table
    under = [("inrcodec", "bpp=0.5;effort=default", "a.png", 0.45, 30.0, 90.0)]
    far = cr.read_encodes(_rd(tmp_path / "far.csv", under), "default")
    assert "| 1 / 0 | 100.0 / 90.0 |" in cr.compare(pairs, far)  # 10 % under: out of the promise
    assert "No (image" in cr.compare(pairs, {})


def test_a_request_the_old_sweep_lacks_is_read_off_its_line_between_neighbours(tmp_path: Path) -> None:
    old = cr.read_encodes(_rd(tmp_path / "old.csv", [
        ("inrcodec", "bpp=0.5;effort=default", "a.png", 0.5, 30.0, 100.0),
        ("inrcodec", "bpp=1.0;effort=default", "a.png", 1.0, 34.0, 140.0),
        ("inrcodec", "bpp=1.0;effort=default", "b.png", 1.0, 35.0, 140.0),  # nothing below 0.75
    ]), "default")
    new = cr.read_encodes(_rd(tmp_path / "new.csv", [
        ("inrcodec", "bpp=0.75;effort=default", "a.png", 0.75, 32.5, 120.0),
        ("inrcodec", "bpp=0.75;effort=default", "b.png", 0.75, 33.0, 120.0),
        ("inrcodec", "bpp=0.5;effort=default", "a.png", 0.5, 30.0, 100.0),  # the old sweep has it
    ]), "default")
    t = math.log(0.75 / 0.5) / math.log(2.0)
    reference = cr.interpolated(old, "a.png", 0.75)
    assert reference is not None and reference.at_request == pytest.approx(30.0 + 4.0 * t)
    assert reference.seconds == pytest.approx(100.0 + 40.0 * t)
    assert cr.interpolated(old, "b.png", 0.75) is None and cr.interpolated(old, "a.png", 2.0) is None
    table = cr.compare_interpolated(old, new)
    assert "old (interpolated) bpp" in table and "b.png" not in table
    assert f"| a.png | 0.75 | 0.750 / {30.0 + 4.0 * t:.2f} /" in table
    assert f"| all | 1 | {32.5 - (30.0 + 4.0 * t):+.2f} |" in table
    assert "No request" in cr.compare_interpolated(old, {})


def test_time_limited_runs_pair_by_image_and_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "quality_vs_time.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "effort", "time_limit_s", "target_bpp", "bpp", "psnr", "encode_s"])
        writer.writerows([
            ("a.png", "max", 150.0, 0.5, 0.48, 30.0, 140.0),
            ("a.png", "max", 300.0, 0.5, 0.5, 31.0, 280.0),
            ("a.png", "default", 150.0, 0.5, 0.5, 29.0, 100.0),  # another effort
        ])
    encodes = cr.read_encodes(path, "max")
    assert set(encodes) == {("a.png 150 s", 0.5), ("a.png 300 s", 0.5)}
    assert encodes[("a.png 150 s", 0.5)].at_request == pytest.approx(30.0 + PSNR_PER_LN_RATE * math.log(0.5 / 0.48))
    assert encodes[("a.png 300 s", 0.5)] == cr.Encode(0.5, 31.0, 31.0, 280.0)


def _quality_vs_time(path: Path, rows: list[tuple[str, str, float, float, float, float, float]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "effort", "time_limit_s", "target_bpp", "bpp", "psnr", "encode_s"])
        writer.writerows(rows)
    return path


def test_across_limits_pairs_each_image_whatever_its_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _quality_vs_time(tmp_path / "old.csv", [("a.png", "default", 120.0, 0.5, 0.5, 30.0, 90.0)])
    new = _quality_vs_time(tmp_path / "new.csv", [("a.png", "max", 300.0, 0.5, 0.5, 30.6, 280.0)])
    cr.main([str(old), str(new), "--old-effort", "default", "--new-effort", "max"])
    assert "No (image, requested bpp)" in capsys.readouterr().out  # limits differ: nothing pairs
    cr.main([str(old), str(new), "--old-effort", "default", "--new-effort", "max", "--across-limits"])
    out = capsys.readouterr().out
    assert "| a.png | 0.5 | 0.500 / 30.00 / 90 | 0.500 / 30.60 / 280 | +0.60 |" in out


def test_across_limits_refuses_an_image_under_two_limits(tmp_path: Path) -> None:
    path = _quality_vs_time(tmp_path / "two.csv", [("a.png", "max", 150.0, 0.5, 0.5, 30.0, 140.0),
                                                   ("a.png", "max", 300.0, 0.5, 0.5, 31.0, 280.0)])
    assert len(cr.read_encodes(path, "max")) == 2
    with pytest.raises(SystemExit, match="twice"):
        cr.read_encodes(path, "max", by_limit=False)
    assert set(cr.read_encodes(path, "max", time_limit=300.0)) == {("a.png 300 s", 0.5)}
    assert not cr.read_encodes(path, "max", time_limit=60.0)
