"""Cut square windows out of test images, for studies that need many steps per pixel.

    python -m bench.crops --images ../shared/data/kodak --names kodim01,kodim03 \
        --at 256,128 --size 256 --out /tmp/crops

Writes <name>c.png (PNG, RGB) for each named image into --out, which must lie
outside the project: the Kodak set is read from where it is, never copied in.
A 256x256 window is a sixth of a Kodak image, so a training step at the
default crop (256) covers all of it and a fit of a few thousand steps runs
a few thousand passes over every pixel: what a long fit of the whole image
would approach (bench/results/plateau-2026-12-03). The same windows then go
through `python -m bench rd` for the classical codecs' curves on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def cut(source: Path, x: int, y: int, size: int, out: Path) -> Path:
    """Write the size x size window of `source` whose top-left corner is (x, y); returns its path."""
    with Image.open(source) as image:
        rgb = image.convert("RGB")
        if x < 0 or y < 0 or x + size > rgb.width or y + size > rgb.height:
            raise ValueError(f"{source.name}: window {size}x{size} at ({x}, {y}) leaves the "
                             f"{rgb.width}x{rgb.height} image")
        path = out / f"{source.stem}c.png"
        rgb.crop((x, y, x + size, y + size)).save(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path, help="folder of the source PNGs")
    parser.add_argument("--names", required=True, help="image names without .png, comma separated")
    parser.add_argument("--at", default="256,128", help="top-left corner x,y of every window")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    x, y = (int(v) for v in args.at.split(","))
    project, out = Path(__file__).resolve().parents[1], args.out.resolve()
    if out == project or project in out.parents:
        parser.error("--out must lie outside the project (test images are not copied into it)")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in filter(None, (n.strip() for n in args.names.split(","))):
        source = args.images / f"{name}.png"
        if not source.is_file():
            parser.error(f"no image {source}")
        try:
            print(cut(source, x, y, args.size, args.out))
        except ValueError as error:
            parser.error(str(error))


if __name__ == "__main__":
    main()
