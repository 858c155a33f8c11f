"""`python -m bench.crops`: the window it writes is the one asked for, and it never writes into the project."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helper import synthetic_image
from PIL import Image

from bench import crops


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "pic.png"
    path.parent.mkdir()
    Image.fromarray(synthetic_image(48, 32)).save(path)
    return path


def test_cut_writes_the_window_at_the_corner(source: Path, tmp_path: Path) -> None:
    out = crops.cut(source, 10, 4, 16, tmp_path)
    assert out == tmp_path / "picc.png"
    written = np.asarray(Image.open(out))
    assert written.shape == (16, 16, 3)
    assert np.array_equal(written, synthetic_image(48, 32)[4:20, 10:26])


@pytest.mark.parametrize(("x", "y", "size"), [(40, 0, 16), (0, 20, 16), (-1, 0, 8)])
def test_cut_refuses_a_window_outside_the_image(source: Path, tmp_path: Path, x: int, y: int, size: int) -> None:
    with pytest.raises(ValueError, match="leaves the 48x32 image"):
        crops.cut(source, x, y, size, tmp_path)
    assert not (tmp_path / "picc.png").exists()


def test_main_cuts_each_named_image(source: Path, tmp_path: Path) -> None:
    crops.main(["--images", str(source.parent), "--names", "pic", "--at", "0,0", "--size", "32",
                "--out", str(tmp_path / "out")])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "picc.png")), synthetic_image(48, 32)[:, :32])


def test_main_refuses_an_output_inside_the_project(source: Path) -> None:
    inside = Path(crops.__file__).resolve().parents[1] / "bench" / "results" / "crops-test"
    with pytest.raises(SystemExit):
        crops.main(["--images", str(source.parent), "--names", "pic", "--size", "16", "--out", str(inside)])
    assert not inside.exists()


def test_main_reports_a_missing_image(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        crops.main(["--images", str(source.parent), "--names", "nothere", "--size", "16", "--out", str(tmp_path)])
    assert "no image" in capsys.readouterr().err
