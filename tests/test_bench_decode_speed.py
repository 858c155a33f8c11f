"""`python -m bench.decode_speed`: decodes in fresh processes, trees alternating, one file for all."""

from __future__ import annotations

import csv
from pathlib import Path

from helper import synthetic_image
from PIL import Image

from bench.decode_speed import main

ROOT = Path(__file__).resolve().parent.parent


def test_each_tree_decodes_the_same_file_in_turn(tmp_path: Path) -> None:
    # A fake checkout whose decoder returns a different image: its checksum must differ.
    fake = tmp_path / "fake"
    (fake / "inrcodec").mkdir(parents=True)
    (fake / "inrcodec" / "__init__.py").write_text(
        "import numpy as np\n__version__ = 'fake'\n"
        "def decode_array(data, size=None):\n    return np.zeros((2, 3, 3), np.uint8)\n")
    image = tmp_path / "tiny.png"
    Image.fromarray(synthetic_image(24, 16)).save(image)
    out = tmp_path / "out"
    main(["--image", str(image), "--out", str(out), "--tree", str(ROOT), "--tree", str(fake), "--rounds", "2",
          "--sizes", "native", "--repeats", "1", "--efforts", "fast,default", "--iterations", "30"])
    rows = list(csv.DictReader((out / "decode.csv").open()))
    assert [(row["tree"], row["round"], row["effort"]) for row in rows] == [
        (str(tree), str(round_), effort)
        for round_ in range(2) for tree in (ROOT, fake) for effort in ("fast", "default")]
    for effort in ("fast", "default"):  # each file decodes to the same pixels every round, unlike the fake's
        real = {row["pixels_md5"] for row in rows if (row["tree"], row["effort"]) == (str(ROOT), effort)}
        assert len(real) == 1 and real != {row["pixels_md5"] for row in rows if row["tree"] == str(fake)}
    assert {(row["width"], row["height"]) for row in rows if row["tree"] == str(ROOT)} == {("24", "16")}
    report = (out / "decode.md").read_text()
    assert str(ROOT) in report and str(fake) in report and "2 round(s)" in report


def test_a_folder_of_images_gives_rows_per_image_and_their_mean_and_slowest(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (w, h) in {"a.png": (24, 16), "b.png": (16, 24), "c.png": (8, 8)}.items():
        Image.fromarray(synthetic_image(w, h)).save(folder / name)
    out = tmp_path / "out"
    main(["--images", str(folder), "--limit-images", "2", "--out", str(out), "--sizes", "native",
          "--repeats", "1", "--efforts", "fast", "--iterations", "20"])
    rows = list(csv.DictReader((out / "decode.csv").open()))
    assert [(row["image"], row["width"], row["height"]) for row in rows] == [("a.png", "24", "16"),
                                                                           ("b.png", "16", "24")]
    report = (out / "decode.md").read_text()
    seconds = [float(row["seconds"]) for row in rows]
    summary = next(line for line in report.splitlines() if line.startswith("| installed | fast | 0.5 | native"))
    firsts = [float(row["first_seconds"]) for row in rows]
    assert summary.split("|")[5:8] == [f" {sum(seconds) / 2:.3f} ", f" {max(seconds):.3f} ", f" {sum(firsts) / 2:.3f} "]
    assert all(first > 0 for first in firsts)
    assert "Over the 2 images" in report and "c.png" not in report


def test_kept_files_decode_again_without_encoding(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (w, h) in {"a-1.png": (24, 16), "b.png": (16, 24)}.items():
        Image.fromarray(synthetic_image(w, h)).save(folder / name)
    kept = tmp_path / "kept"
    main(["--images", str(folder), "--out", str(tmp_path / "first"), "--sizes", "native", "--repeats", "1",
          "--efforts", "fast", "--bpps", "0.5,1.0", "--iterations", "20", "--keep-cocos", str(kept)])
    assert sorted(p.name for p in kept.iterdir()) == ["a-1.png-fast-0.5.coco", "a-1.png-fast-1.0.coco",
                                                      "b.png-fast-0.5.coco", "b.png-fast-1.0.coco"]

    def no_encoding(*args, **kwargs):
        raise AssertionError("--cocos must not encode")

    monkeypatch.setattr("inrcodec.encode_with_report", no_encoding)
    main(["--cocos", str(kept), "--out", str(tmp_path / "again"), "--sizes", "native", "--repeats", "1"])

    def table(name: str) -> list[tuple[str, ...]]:
        rows = csv.DictReader((tmp_path / name / "decode.csv").open())
        return [(r["image"], r["effort"], r["bpp"], r["file_bytes"], r["pixels_md5"]) for r in rows]

    assert table("again") == table("first") and len(table("first")) == 4
