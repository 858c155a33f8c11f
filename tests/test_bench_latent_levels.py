"""`python -m bench.latent_levels`: its bits add up to the file's latent section, its PSNRs to the decoder's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helper import DATA, synthetic_image
from PIL import Image

from bench import latent_levels as ll
from bench.metrics import psnr
from inrcodec.format.bitstream import read_coco, read_sections
from inrcodec.format.render import render


# A version 1.0 file (the table is about format 1.0's anchors and non-anchors).
SAMPLE = DATA / "gradient-48x32.coco"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    png = tmp_path / "tiny.png"
    Image.fromarray(synthetic_image(48, 32)).save(png)
    return SAMPLE, png


def test_empirical_entropy() -> None:
    assert ll.empirical_entropy_bits(np.zeros(10)) == 0.0
    assert ll.empirical_entropy_bits(np.array([0, 1, 0, 1])) == pytest.approx(4.0)
    assert ll.empirical_entropy_bits(np.array([0, 0, 0, 5])) == pytest.approx(4 * 0.811278, rel=1e-5)


def test_levels_add_up_to_the_file(files: tuple[Path, Path]) -> None:
    data = files[0].read_bytes()
    stream = read_coco(data)
    file_psnr = psnr(render(stream), synthetic_image(48, 32))
    figures = ll.level_figures(stream, synthetic_image(48, 32))
    assert [f.level for f in figures] == list(range(stream.header.arch.n_levels))
    for f, grid in zip(figures, stream.latents):
        values = grid.reshape(-1)
        assert f.cells == values.size
        assert f.nonzero == pytest.approx(float(np.mean(values != 0)))
        if not values.any():  # nothing to take away: the picture is the file's
            assert f.psnr_without == pytest.approx(file_psnr, abs=0.01)
    # The range coder's cost per symbol: the section holds them, plus the
    # coder's final words (32-bit words, a few of them at most).
    lats_bits = len(read_sections(data)[2][b"LATS"]) * 8
    assert lats_bits - 96 <= sum(f.bits for f in figures) <= lats_bits
    assert any(f.psnr_without < file_psnr - 0.5 for f in figures)  # some level carries the picture


def test_main_writes_the_table(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "levels.md"
    ll.main([str(files[0]), "--image", str(files[1]), "--out", str(out)])
    text = out.read_text()
    assert text == capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 7 + 1  # header and rule, one row per level, the total
    assert "| all |" in text


def test_main_refuses_an_image_of_another_size(files: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    Image.fromarray(synthetic_image(40, 32)).save(other)
    with pytest.raises(SystemExit):
        ll.main([str(files[0]), "--image", str(other)])


def test_main_refuses_a_version_2_file(files: tuple[Path, Path]) -> None:
    with pytest.raises(SystemExit):
        ll.main([str(DATA / "v2-gradient-48x32.coco"), "--image", str(files[1])])
