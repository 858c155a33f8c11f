"""`python -m bench.encode_process`: whole-process encodes, trees alternating, medians written."""

from __future__ import annotations

import csv
from pathlib import Path

from helper import synthetic_image
from PIL import Image

from bench.encode_process import main

ROOT = Path(__file__).resolve().parent.parent


def test_it_times_each_tree_in_fresh_processes_and_writes_the_medians(tmp_path: Path) -> None:
    image = tmp_path / "tiny.png"
    Image.fromarray(synthetic_image(24, 16)).save(image)
    out = tmp_path / "out"
    main(["--image", str(image), "--out", str(out), "--tree", str(ROOT), "--runs", "1", "--warmup", "0",
          "--", "--bpp", "2", "--effort", "fast", "--time-limit", "1"])
    rows = list(csv.DictReader((out / "encode_process.csv").open()))
    assert [row["tree"] for row in rows] == [str(ROOT)]
    assert float(rows[0]["wall_s"]) > 0.5  # a fresh interpreter importing torch, not a cached call
    assert float(rows[0]["peak_rss_mb"]) > 50
    assert int(rows[0]["bytes"]) > 0
    report = (out / "encode_process.md").read_text()
    assert "--bpp 2 --effort fast --time-limit 1" in report and str(ROOT) in report
