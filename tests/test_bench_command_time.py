"""`python -m bench.command_time`: whole-process `inrcodec` commands and torch's import, trees alternating."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.command_time import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "v3-gradient-48x32.coco"


def test_it_times_each_command_in_fresh_processes_and_writes_the_medians(tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(["--coco", str(SAMPLE), "--out", str(out), "--tree", str(ROOT), "--runs", "2", "--warmup", "0"])
    rows = list(csv.DictReader((out / "command_time.csv").open()))
    assert [(row["command"], row["run"]) for row in rows] == [
        (command, run) for run in ("0", "1") for command in ("import torch", "inrcodec info", "inrcodec decode")]
    walls = {row["command"]: float(row["wall_s"]) for row in rows}
    assert walls["import torch"] > 0.2  # a fresh interpreter importing torch, not a cached call
    assert walls["inrcodec decode"] > 0.05  # an interpreter starting and importing numpy, at least
    assert all(float(row["peak_rss_mb"]) > 10 for row in rows)
    report = (out / "command_time.md").read_text()
    assert "| inrcodec decode |" in report and str(ROOT) in report


def test_each_tree_runs_its_own_checkout(tmp_path: Path) -> None:
    # A fake checkout whose `inrcodec` fails: the run must stop and say which command did.
    fake = tmp_path / "fake"
    (fake / "inrcodec").mkdir(parents=True)
    (fake / "inrcodec" / "__main__.py").write_text("raise SystemExit('fake inrcodec')\n")
    with pytest.raises(SystemExit, match="inrcodec info failed .*fake inrcodec"):
        main(["--coco", str(SAMPLE), "--out", str(tmp_path / "out"), "--tree", str(fake), "--runs", "1",
              "--warmup", "0"])
