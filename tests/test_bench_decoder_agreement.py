"""`python -m bench.decoder_agreement`: the same files decoded by several trees, pixel MD5s compared."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from bench.decoder_agreement import SIZES, main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cocos"
    folder.mkdir()
    for name in ("odd-5x3.coco", "v3-gradient-48x32.coco"):
        shutil.copy(DATA / name, folder / name)
    return folder


def test_one_tree_twice_agrees_on_every_file_and_size(tmp_path: Path) -> None:
    main(["--cocos", str(_folder(tmp_path)), "--tree", str(ROOT), "--tree", str(ROOT), "--out", str(tmp_path / "out")])
    rows = list(csv.DictReader((tmp_path / "out" / "agreement.csv").open()))
    assert len(rows) == 2 * len(SIZES)
    assert {row["version"] for row in rows} == {"1.0", "3.0"}
    md5s = [[v for k, v in row.items() if k.startswith("md5 ")] for row in rows]
    assert all(len(pair) == 2 and pair[0] == pair[1] and len(pair[0]) == 32 for pair in md5s)
    assert len({pair[0] for pair in md5s}) == len(md5s)  # every size's pixels differ: the sizes were applied
    assert "**10 of 10 decodes give the same pixels in every tree.**" in (tmp_path / "out" / "agreement.md").read_text()


def test_a_tree_whose_pixels_differ_is_reported_and_fails(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    (fake / "inrcodec").mkdir(parents=True)
    (fake / "inrcodec" / "__init__.py").write_text(
        "import numpy as np\n"
        "class _Info:\n    version = (1, 0)\n"
        "def inspect(data):\n    return _Info()\n"
        "def decode_array(data, size=None):\n    return np.zeros((2, 2, 3), np.uint8)\n")
    with pytest.raises(SystemExit) as stop:
        main(["--cocos", str(_folder(tmp_path)), "--per-folder", "1", "--tree", str(ROOT), "--tree", str(fake),
              "--out", str(tmp_path / "out")])
    assert stop.value.code == 1
    report = (tmp_path / "out" / "agreement.md").read_text()
    assert "**0 of 5 decodes give the same pixels in every tree.**" in report
    assert report.count("odd-5x3.coco |") == len(SIZES)
