"""`python -m bench.landing_bias`: where fits end against the request, by how busy the image is."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.landing_bias import least_squares, main
from test_bench_landing_summary import TRACE


def test_least_squares_finds_the_line_and_its_correlation() -> None:
    a, b, r = least_squares([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert (a, b, r) == pytest.approx((1.0, 2.0, 1.0))
    assert least_squares([0.0, 1.0, 2.0], [5.0, 3.0, 1.0])[2] == pytest.approx(-1.0)
    assert least_squares([1.0, 1.0], [0.0, 2.0]) == (1.0, 0.0, 0.0)  # no spread in x: no slope


def test_each_fit_is_set_against_its_images_busyness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    images, traces = tmp_path / "images", tmp_path / "traces"
    images.mkdir()
    traces.mkdir()
    flat = np.full((64, 64, 3), 120, dtype=np.uint8)
    noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(flat).save(images / "kodim07.png")
    Image.fromarray(noisy).save(images / "kodim08.png")
    (traces / "kodim07.txt").write_text(TRACE)  # the fit's file 1.1 bpp at 1 bpp
    (traces / "kodim08.txt").write_text(TRACE.replace("kodim07", "kodim08").replace("file  1.1000", "file  0.9000"))
    main(["--images", str(images), str(traces)])
    out = capsys.readouterr().out
    rows = {line.split(" | ")[0]: line.split(" | ") for line in out.splitlines() if line.startswith("| kodim")}
    flat_row, noisy_row = rows["| kodim07.png"], rows["| kodim08.png"]
    assert float(flat_row[2]) < float(noisy_row[2])  # JPEG's bits: the flat image costs far less
    assert flat_row[3:] == ["1.1000", f"{math.log(1.1):+.3f}", "no |"]
    assert noisy_row[3:] == ["0.9000", f"{math.log(0.9):+.3f}", "no |"]
    assert "correlation -1.00" in out  # the busy image ended under, the flat one over
    with pytest.raises(SystemExit):
        main(["--images", str(tmp_path), str(traces)])  # the traced images are not there
