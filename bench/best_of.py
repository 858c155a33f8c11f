"""What choosing per image the best of several inrcodec sweeps would buy.

    python -m bench.best_of --bpp 0.5 NAME=RUN/rd.csv NAME=RUN/rd.csv@max [...] [--effort default]

Each sweep's files at the requested rate (those of --effort, or of the effort named after the
path's "@") are read with their PSNR moved to the request (`bench.compare_runs`). Prints a
Markdown table: the mean PSNR of each sweep over the images all of them encoded, and of the
per-image best of each pair and of all. The best of a pair over the better sweep alone is what
a second fit per image (a "per-image choice" of configuration) could gain at most, before its
cost in encoding time.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from statistics import mean

from bench.compare_runs import read_encodes


def psnr_at_request(path: Path, effort: str, bpp: float) -> dict[str, float]:
    """PSNR moved to the request, by image, of one sweep's files at `bpp`."""
    return {image: e.at_request for (image, requested), e in read_encodes(path, effort).items() if requested == bpp}


def best_of_table(sweeps: dict[str, dict[str, float]]) -> str:
    """The Markdown table of each sweep's mean and the per-image best of each pair and of all."""
    images = sorted(set.intersection(*(set(s) for s in sweeps.values())))
    if not images:
        raise SystemExit("no image is in every sweep at that rate")
    lines = [f"{len(images)} images: {', '.join(images)}", "", "| sweeps | mean PSNR at the request (dB) |", "|---|---|"]
    groups = [(name,) for name in sweeps] + list(itertools.combinations(sweeps, 2))
    if len(sweeps) > 2:
        groups.append(tuple(sweeps))
    for group in groups:
        value = mean(max(sweeps[name][image] for name in group) for image in images)
        label = group[0] if len(group) == 1 else "best of " + " / ".join(group)
        lines.append(f"| {label} | {value:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", help="NAME=PATH of an rd.csv, or NAME=PATH@EFFORT")
    parser.add_argument("--bpp", type=float, required=True, help="the requested rate to compare at")
    parser.add_argument("--effort", default="default")
    args = parser.parse_args(argv)
    sweeps = {}
    for item in args.sweeps:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"expected NAME=PATH, got {item!r}")
        path, sep, effort = path.partition("@")
        sweeps[name] = psnr_at_request(Path(path), effort if sep else args.effort, args.bpp)
    print(best_of_table(sweeps), end="")


if __name__ == "__main__":
    main()
