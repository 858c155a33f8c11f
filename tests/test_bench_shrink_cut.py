"""`python -m bench.shrink_cut`: both cuts from the same fit, side by side."""

from __future__ import annotations

from pathlib import Path

from helper import image_folder

from bench import shrink_cut
from bench.results import read_csv


def test_each_cut_is_made_both_ways_from_one_fit_and_tabulated(tmp_path: Path) -> None:
    images = image_folder(tmp_path, {"a.png": (64, 48)})
    out = tmp_path / "out"
    shrink_cut.main(["--images", str(images), "--pick", "a:3e-4", "--steps", "40", "--cuts", "0.03,0.06",
                     "--out", str(out), "--threads", "1"])
    rows = read_csv(out / shrink_cut.CSV_NAME)
    assert [(r["cut"], r["method"]) for r in rows] == [("0.03", "dead zone"), ("0.03", "by cost"),
                                                        ("0.06", "dead zone"), ("0.06", "by cost")]
    assert len({(r["uncut_bpp"], r["uncut_psnr"]) for r in rows}) == 1  # one fit, cut from the same file
    for r in rows:
        if r["reached"] == "True":
            # (Not necessarily smaller as a whole: on a file this small the
            # networks, quantized by rate and distortion, move with the latents.)
            assert float(r["bpp"]) > 0 and float(r["psnr"]) > 0 and float(r["slope_psnr"]) > 0
        else:
            assert r["bpp"] == "" and int(r["moved"]) <= 0
    table = (out / "shrink_cut.md").read_text()
    assert table.count("| a.png | default |") == 2
