"""`python -m bench.merge_runs`: one sweep from a base sweep and newer sweeps of some of its requests."""

from __future__ import annotations

import csv
from pathlib import Path

from bench import merge_runs
from bench.results import COLUMNS, RowWriter


def _rd(path: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    """rows: (codec, setting, image, psnr); the other columns filled in."""
    with RowWriter(path) as writer:
        for codec, setting, image, psnr in rows:
            writer.write({**dict.fromkeys(COLUMNS, 1.0), "codec": codec, "setting": setting, "image": image,
                          "psnr": psnr})
    return path


def _read(path: Path) -> list[tuple[str, str, str, float]]:
    with path.open(newline="") as f:
        return [(r["codec"], r["setting"], r["image"], float(r["psnr"])) for r in csv.DictReader(f)]


def test_newer_inrcodec_rows_replace_the_bases_and_the_last_sweep_wins(tmp_path: Path) -> None:
    base = _rd(tmp_path / "base.csv", [
        ("jpeg420", "quality=50", "x.png", 29.0),
        ("inrcodec", "bpp=0.5;effort=default", "x.png", 30.0),
        ("inrcodec", "bpp=1.0;effort=default", "x.png", 35.0),
        ("inrcodec", "bpp=1.0;effort=default", "y.png", 36.0),
    ])
    first = _rd(tmp_path / "first.csv", [
        ("inrcodec", "bpp=1;effort=default", "x.png", 35.5),  # bpp=1 is the request bpp=1.0
        ("inrcodec", "bpp=1;effort=default", "y.png", 36.5),
        ("jpeg420", "quality=50", "x.png", 99.0),  # anchors come from the base only
    ])
    second = _rd(tmp_path / "second.csv", [
        ("inrcodec", "bpp=1.0;effort=default", "y.png", 37.0),
        ("inrcodec", "bpp=0.75;effort=default", "x.png", 33.0),  # not in the base: added
    ])
    merge_runs.main([str(base), str(first), str(second), "--out", str(tmp_path / "out")])
    assert _read(tmp_path / "out" / "rd.csv") == [
        ("jpeg420", "quality=50", "x.png", 29.0),
        ("inrcodec", "bpp=0.5;effort=default", "x.png", 30.0),
        ("inrcodec", "bpp=1;effort=default", "x.png", 35.5),
        ("inrcodec", "bpp=1.0;effort=default", "y.png", 37.0),
        ("inrcodec", "bpp=0.75;effort=default", "x.png", 33.0),
    ]
    merge_runs.main([str(base), str(second), "--out", str(tmp_path / "out")])  # written afresh
    assert len(_read(tmp_path / "out" / "rd.csv")) == 5
