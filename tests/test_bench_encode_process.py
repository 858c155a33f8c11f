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


def test_each_tree_runs_its_own_checkout(tmp_path: Path) -> None:
    # A fake checkout whose `inrcodec` only prints where it was imported from.
    fake = tmp_path / "fake"
    (fake / "inrcodec").mkdir(parents=True)
    (fake / "inrcodec" / "__main__.py").write_text(
        "import sys\nopen(sys.argv[-2], 'wb').write(b'x' * 7)\n")  # encode IMAGE OUT --quiet: OUT is argv[-2]
    image = tmp_path / "tiny.png"
    Image.fromarray(synthetic_image(24, 16)).save(image)
    main(["--image", str(image), "--out", str(tmp_path / "out"), "--tree", str(fake), "--runs", "1", "--warmup", "0"])
    rows = list(csv.DictReader((tmp_path / "out" / "encode_process.csv").open()))
    assert rows[0]["bytes"] == "7"  # the fake ran, not the project's inrcodec
