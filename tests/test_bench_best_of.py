"""`python -m bench.best_of`: the per-image best of several sweeps, at the requested rate."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import best_of


def _rd(path: Path, rows: list[tuple[str, float, float]], bpp: str = "0.5", effort: str = "default") -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["codec", "setting", "image", "bpp", "psnr", "encode_s"])
        writer.writerows(("inrcodec", f"bpp={bpp};effort={effort}", image, rate, psnr, 60.0)
                         for image, rate, psnr in rows)
    return path


def test_the_best_of_a_pair_takes_each_images_better_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _rd(tmp_path / "a.csv", [("x.png", 0.5, 30.0), ("y.png", 0.5, 34.0), ("z.png", 0.5, 20.0)])
    b = _rd(tmp_path / "b.csv", [("x.png", 0.5, 31.0), ("y.png", 0.5, 33.0)])  # no z: z is left out
    best_of.main([f"A={a}", f"B={b}", "--bpp", "0.5"])
    out = capsys.readouterr().out
    assert out.startswith("2 images: x.png, y.png")
    assert "| A | 32.000 |" in out and "| B | 32.000 |" in out
    assert "| best of A / B | 32.500 |" in out  # 31 and 34


def test_three_sweeps_add_the_best_of_all(tmp_path: Path) -> None:
    sweeps = {"A": {"x": 30.0, "y": 30.0}, "B": {"x": 31.0, "y": 29.0}, "C": {"x": 29.0, "y": 32.0}}
    table = best_of.best_of_table(sweeps)
    assert "| best of A / B / C | 31.500 |" in table and "| best of B / C | 31.500 |" in table


def test_other_rates_and_no_common_image_are_refused(tmp_path: Path) -> None:
    a = _rd(tmp_path / "a.csv", [("x.png", 1.0, 30.0)], bpp="1.0")
    assert best_of.psnr_at_request(a, "default", 0.5) == {}
    with pytest.raises(SystemExit, match="no image"):
        best_of.main([f"A={a}", "--bpp", "0.5"])
    with pytest.raises(SystemExit):
        best_of.main([str(a), "--bpp", "0.5"])


def test_a_sweep_may_name_its_effort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _rd(tmp_path / "a.csv", [("x.png", 0.5, 30.0)])
    b = _rd(tmp_path / "b.csv", [("x.png", 0.5, 32.0)], effort="max")
    best_of.main([f"A={a}", f"B={b}@max", "--bpp", "0.5"])
    assert "| best of A / B | 32.000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no image"):  # the default effort has no row in b
        best_of.main([f"A={a}", f"B={b}", "--bpp", "0.5"])
