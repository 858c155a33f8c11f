"""A/B of two source trees, alternated image by image on one machine.

    python -m bench.alternate OLD_TREE NEW_TREE --images ../shared/data/kodak \
        --names kodim01,kodim02,kodim03 --bpp 0.25 --out /tmp/ab
    python -m bench.alternate OLD_TREE NEW_TREE --images ../shared/data/kodak --bpp 0.5 --seconds 60 --out /tmp/ab
    python -m bench.compare_runs /tmp/ab/old/rd.csv /tmp/ab/new/rd.csv --old-effort default

Each tree is a checkout (a `git worktree`, say) whose `inrcodec` and `bench`
run from its own files (PYTHONPATH is the tree). Images are encoded one at
a time, both trees per image, the first, third, ... image the old tree
first and the others the new tree first, so the machine's drift through the
hour falls on both alike. Each encode is a `bench rd` run of that one image
(OUT/old, OUT/new: rd.csv, runs.jsonl; the files kept under OUT/old-cocos,
OUT/new-cocos), or with --seconds a `bench.quality_vs_time` run under that
limit (OUT/old, OUT/new: quality_vs_time.csv). OUT/order.log records when
each encode ended. Nothing else should run on the machine meanwhile: the
encode times are part of the result, and timed encodes plan their steps
from the speed they measure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.results import env_with_tree
from bench.run import find_images

TREES = ("old", "new")


def run_order(images: list[Path]) -> list[tuple[Path, str]]:
    """(image, tree) in the order they run: the old tree first on the 1st, 3rd, ... image, the new one on the others."""
    order: list[tuple[Path, str]] = []
    for index, image in enumerate(images):
        trees = TREES if index % 2 == 0 else TREES[::-1]
        order.extend((image, tree) for tree in trees)
    return order


def encode_command(image_dir: Path, out: Path, tree: str, bpp: float, effort: str,
                   seconds: float | None) -> list[str]:
    """The command line that encodes the one image in `image_dir` for `tree` (run from that tree)."""
    if seconds is not None:
        return [sys.executable, "-m", "bench.quality_vs_time", "--images", str(image_dir), "--seconds", f"{seconds:g}",
                "--bpp", f"{bpp:g}", "--effort", effort, "--out", str(out / tree)]
    return [sys.executable, "-m", "bench", "rd", "--images", str(image_dir), "--out", str(out / tree),
            "--codecs", "inrcodec", "--inrcodec-bpps", f"{bpp:g}", "--inrcodec-efforts", effort, "--jobs", "1",
            "--no-sheet", "--keep-cocos", str(out / f"{tree}-cocos")]


def one_image_dir(out: Path, image: Path) -> Path:
    """The folder under OUT that holds a link to `image` alone (the bench runs take folders)."""
    return out / "images" / image.stem


def _link_image(folder: Path, image: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / image.name
    if not link.exists():
        link.symlink_to(image.resolve())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_tree", type=Path)
    parser.add_argument("new_tree", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--names", default=None, help="comma-separated image stems (default: every image there)")
    parser.add_argument("--bpp", type=float, required=True)
    parser.add_argument("--effort", choices=("fast", "default", "max"), default="default")
    parser.add_argument("--seconds", type=float, default=None, help="a time limit: quality_vs_time runs instead")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="print the commands in order, run nothing")
    args = parser.parse_args(argv)
    trees = {"old": args.old_tree.resolve(), "new": args.new_tree.resolve()}
    for tree in trees.values():
        if not (tree / "inrcodec").is_dir() or not (tree / "bench").is_dir():
            parser.error(f"{tree} is not a source tree (no inrcodec/ and bench/ there)")
    images = find_images(args.images)
    if args.names:
        wanted = args.names.split(",")
        images = [image for image in images if image.stem in wanted]
        missing = sorted(set(wanted) - {image.stem for image in images})
        if missing:
            parser.error(f"no such images under {args.images}: {', '.join(missing)}")
    out = args.out.resolve()
    for image, tree in run_order(images):
        image_dir = one_image_dir(out, image)
        command = encode_command(image_dir, out, tree, args.bpp, args.effort, args.seconds)
        if args.dry_run:
            print(f"cd {trees[tree]} && PYTHONPATH={trees[tree]} {' '.join(command)}")
            continue
        _link_image(image_dir, image)
        # From the tree itself: `python -m` puts the working folder first on sys.path.
        subprocess.run(command, cwd=trees[tree], env=env_with_tree(trees[tree]), check=True, stdout=subprocess.DEVNULL)
        with open(out / "order.log", "a") as log:
            log.write(f"{time.strftime('%H:%M:%S', time.gmtime())} {image.stem} {tree} done\n")


if __name__ == "__main__":
    main()
