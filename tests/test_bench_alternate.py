"""bench.alternate: two trees alternated image by image, each encode run from its own tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import alternate

# A stand-in for a tree's `python -m bench rd`: records what it was asked and from where.
FAKE_BENCH_MAIN = """
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
images = sorted(p.name for p in Path(args[args.index("--images") + 1]).iterdir())
with open(out / "calls.jsonl", "a") as f:
    f.write(json.dumps({"tree": os.environ["PYTHONPATH"].split(os.pathsep)[0], "cwd": os.getcwd(), "images": images, "args": args}) + "\\n")
"""


def _fake_tree(root: Path) -> Path:
    (root / "inrcodec").mkdir(parents=True)
    (root / "bench").mkdir()
    (root / "bench" / "__init__.py").write_text("")
    (root / "bench" / "__main__.py").write_text(FAKE_BENCH_MAIN)
    return root


def _images(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for name in names:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / f"{name}.png")
    return folder


def test_the_old_tree_goes_first_on_every_other_image() -> None:
    images = [Path(f"kodim0{i}.png") for i in (1, 2, 3)]
    assert alternate.run_order(images) == [(images[0], "old"), (images[0], "new"), (images[1], "new"),
                                           (images[1], "old"), (images[2], "old"), (images[2], "new")]


def test_each_encode_runs_one_image_from_its_own_tree(tmp_path: Path) -> None:
    old, new = _fake_tree(tmp_path / "old-tree"), _fake_tree(tmp_path / "new-tree")
    images = _images(tmp_path / "images", ["a", "b", "c"])
    out = tmp_path / "ab"
    alternate.main([str(old), str(new), "--images", str(images), "--names", "a,b", "--bpp", "0.25", "--out", str(out)])
    order = [line.split()[1:3] for line in (out / "order.log").read_text().splitlines()]
    assert order == [["a", "old"], ["a", "new"], ["b", "new"], ["b", "old"]]
    for tree, root in (("old", old), ("new", new)):
        calls = [json.loads(line) for line in (out / tree / "calls.jsonl").read_text().splitlines()]
        assert [c["images"] for c in calls] == [["a.png"], ["b.png"]]
        assert {c["tree"] for c in calls} == {c["cwd"] for c in calls} == {str(root.resolve())}
        args = calls[0]["args"]
        assert args[:1] == ["rd"] and args[args.index("--inrcodec-bpps") + 1] == "0.25"
        assert args[args.index("--keep-cocos") + 1] == str((out / f"{tree}-cocos").resolve())


def test_a_time_limit_runs_quality_vs_time(tmp_path: Path) -> None:
    command = alternate.encode_command(tmp_path / "img", tmp_path, "new", 0.5, "default", 60.0)
    assert command[1:3] == ["-m", "bench.quality_vs_time"]
    assert command[command.index("--seconds") + 1] == "60"
    assert command[command.index("--out") + 1] == str(tmp_path / "new")


def test_bad_trees_and_unknown_images_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _fake_tree(tmp_path / "tree")
    images = _images(tmp_path / "images", ["a"])
    with pytest.raises(SystemExit):
        alternate.main([str(tree), str(tmp_path), "--images", str(images), "--bpp", "0.5",
                        "--out", str(tmp_path / "o")])
    assert "not a source tree" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        alternate.main([str(tree), str(tree), "--images", str(images), "--names", "a,zz", "--bpp", "0.5",
                        "--out", str(tmp_path / "o")])
    assert "zz" in capsys.readouterr().err
    alternate.main([str(tree), str(tree), "--images", str(images), "--bpp", "0.5", "--out", str(tmp_path / "o"),
                    "--dry-run"])
    assert capsys.readouterr().out.count("bench rd") == 2 and not (tmp_path / "o").exists()
