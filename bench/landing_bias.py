"""Where fits end against the request, by how busy the image is.

    python -m bench.landing_bias --images FOLDER TRACES [TRACES ...]

Reads `bench.landing_trace` outputs (`bench.landing_summary.read_folder`) and,
for each traced image, its busyness (`complexity.jpeg_bpp`, the image read
from FOLDER by the trace's file name). Prints a Markdown table per folder of
each fit's file against the request (ln of the ratio, and whether it kept the
rate promise) and the line ln(fit / request) = a + b ln(jpeg bpp) fitted by
least squares, with its correlation: a fit that ends over on busy images and
under on smooth ones shows as b > 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from bench.landing_summary import Landing, read_folder
from inrcodec.train.complexity import jpeg_bpp
from inrcodec.train.encoder import keeps_promise


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(a, b, r) of the line y = a + b x through the points, and their correlation (0 when either is constant)."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if np.ptp(x) == 0:
        return float(y.mean()), 0.0, 0.0
    b, a = np.polyfit(x, y, 1)
    r = 0.0 if np.ptp(y) == 0 else float(np.corrcoef(x, y)[0, 1])
    return float(a), float(b), r


def bias_table(folder: Path, landings: dict[tuple[str, float], Landing], busyness: dict[str, float]) -> list[str]:
    """The Markdown table of one folder's fits against the request, and the fitted line."""
    lines = [f"## {folder}", "", "| image | bpp | jpeg bpp | fit file | ln(fit / request) | within 5 % |",
             "|---|---|---|---|---|---|"]
    xs, ys = [], []
    for (image, requested), landing in sorted(landings.items()):
        miss = math.log(landing.fit_bpp / requested)
        lines.append(f"| {image} | {requested:g} | {busyness[image]:.3f} | {landing.fit_bpp:.4f} | {miss:+.3f} | "
                     f"{'yes' if keeps_promise(landing.fit_bpp, requested) else 'no'} |")
        xs.append(math.log(busyness[image]))
        ys.append(miss)
    if len(xs) >= 2:
        a, b, r = least_squares(xs, ys)
        lines += ["", f"ln(fit / request) = {a:+.3f} {b:+.3f} ln(jpeg bpp), correlation {r:.2f}; "
                      f"mean {statistics.fmean(ys):+.3f}, {sum(abs(y) > math.log(1.05) for y in ys)} of {len(ys)} "
                      "fits more than ~5 % off."]
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of the traced images")
    parser.add_argument("folders", type=Path, nargs="+", help="folders of landing traces")
    args = parser.parse_args(argv)
    lines: list[str] = []
    busyness: dict[str, float] = {}  # by image, shared by the folders (they trace the same images)
    for folder in args.folders:
        landings = read_folder(folder)
        for image in {image for image, _ in landings} - busyness.keys():
            path = args.images / image
            if not path.is_file():
                parser.error(f"{path}: no such image (the trace names it)")
            busyness[image] = jpeg_bpp(np.asarray(Image.open(path).convert("RGB")))
        lines += bias_table(folder, landings, busyness)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
