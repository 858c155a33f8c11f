"""`python -m bench.contention`: timed encodes on an idle and a busy machine, per tree, summarised."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helper import synthetic_image
from PIL import Image

from bench import contention

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("load", ["torch", "encode"])
def test_it_encodes_idle_and_beside_a_load_and_writes_the_means(tmp_path: Path, monkeypatch, load: str) -> None:
    started = []
    real_popen = contention.subprocess.Popen

    def popen(args, **kwargs):  # noqa: ANN001, ANN202
        started.append(args)
        return real_popen(args, **kwargs)

    monkeypatch.setattr(contention.subprocess, "Popen", popen)
    image = tmp_path / "tiny.png"
    Image.fromarray(synthetic_image(24, 16)).save(image)
    out = tmp_path / "out"
    contention.main(["--image", str(image), "--out", str(out), "--tree", str(ROOT), "--rounds", "1", "--load", load,
                     "--", "--bpp", "2", "--effort", "fast", "--time-limit", "1"])
    rows = list(csv.DictReader((out / "contention.csv").open()))
    assert [(row["tree"], row["condition"]) for row in rows] == [(str(ROOT), "idle"), (str(ROOT), "busy")]
    assert all(int(row["iterations"]) > 0 and float(row["bpp"]) > 0 for row in rows)
    # The load started once, before the busy encode: the matrix loop, or the same encode writing elsewhere.
    assert len(started) == 3
    if load == "torch":
        assert started[1][-1] == contention.LOAD
    else:
        assert started[1][2:5] == ["inrcodec", "encode", str(image.resolve())] and started[1][5] != started[2][5]
    report = (out / "contention.md").read_text()
    assert "| idle | 1 |" in report and "| busy | 1 |" in report and "--time-limit 1" in report

