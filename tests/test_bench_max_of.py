"""`python -m bench.max_of`: the sweep `--effort max` writes, from its two encodes' sweeps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench import max_of
from bench.results import COLUMNS, RowWriter
from bench.summary import target_bpp


def _rd(path: Path, rows: list[tuple[str, str, str, float, float, float]]) -> Path:
    """rows: (codec, setting, image, bpp, psnr, encode_s); the other columns filled in."""
    with RowWriter(path) as writer:
        for codec, setting, image, bpp, psnr, seconds in rows:
            writer.write({**dict.fromkeys(COLUMNS, 1.0), "codec": codec, "setting": setting, "image": image,
                          "bpp": bpp, "psnr": psnr, "encode_s": seconds, "encode_peak_mb": 100.0})
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_max_keeps_each_requests_better_file_and_both_encodes_time(tmp_path: Path) -> None:
    default = _rd(tmp_path / "default.csv", [
        ("jpeg420", "quality=50", "x.png", 0.6, 29.0, 0.01),
        ("inrcodec", "bpp=0.5;effort=default", "x.png", 0.50, 30.0, 60.0),
        ("inrcodec", "bpp=0.5;effort=default", "y.png", 0.50, 33.0, 60.0),
        ("inrcodec", "bpp=1;effort=default", "x.png", 1.00, 35.0, 90.0),
        ("inrcodec", "bpp=1;effort=default", "z.png", 1.00, 35.0, 90.0),  # no long fit: left out
    ])
    long = _rd(tmp_path / "long.csv", [
        # x at 0.5: 2 % more rate for +0.3 dB is better at the request (PSNR_PER_LN_RATE ~ 6.5 dB)
        ("inrcodec", "bpp=0.5;effort=max", "x.png", 0.51, 30.3, 400.0),
        # y at 0.5: better PSNR, but 10 % over the rate promise
        ("inrcodec", "bpp=0.5;effort=max", "y.png", 0.55, 36.0, 400.0),
        # x at 1: worse
        ("inrcodec", "bpp=1;effort=max", "x.png", 1.00, 34.0, 500.0),
    ])
    max_of.main([str(default), str(long), "--out", str(tmp_path / "out")])
    rows = _read(tmp_path / "out" / "rd.csv")
    assert [r["codec"] for r in rows] == ["jpeg420", "inrcodec", "inrcodec", "inrcodec"]
    kept = {(r["image"], target_bpp(r["setting"])): r for r in rows[1:]}
    assert set(kept) == {("x.png", 0.5), ("y.png", 0.5), ("x.png", 1.0)}
    assert all(r["setting"].endswith(";effort=max") for r in rows[1:])
    assert float(kept[("x.png", 0.5)]["psnr"]) == 30.3
    assert float(kept[("y.png", 0.5)]["psnr"]) == 33.0
    assert float(kept[("x.png", 1.0)]["psnr"]) == 35.0
    assert float(kept[("x.png", 0.5)]["encode_s"]) == 460.0 and float(kept[("x.png", 1.0)]["encode_s"]) == 590.0


def test_a_long_sweep_may_name_another_effort_and_none_in_common_is_refused(tmp_path: Path) -> None:
    default = _rd(tmp_path / "default.csv", [("inrcodec", "bpp=0.5;effort=default", "x.png", 0.5, 30.0, 60.0)])
    long = _rd(tmp_path / "long.csv", [("inrcodec", "bpp=0.5;effort=fast", "x.png", 0.5, 31.0, 10.0)])
    with pytest.raises(SystemExit, match="no .image, requested bpp. is in both"):
        max_of.main([str(default), str(long), "--out", str(tmp_path / "a")])
    max_of.main([str(default), str(long), "--out", str(tmp_path / "b"), "--long-effort", "fast"])
    assert float(_read(tmp_path / "b" / "rd.csv")[0]["psnr"]) == 31.0
