"""File-by-file A/B of two inrcodec sweeps at the same requests.

    python -m bench.compare_runs OLD/rd.csv NEW/rd.csv [--old-effort default] [--new-effort max]

Time-limited runs compare the same way: OLD/quality_vs_time.csv NEW/quality_vs_time.csv,
pairing each image under the same limit; with --across-limits each image whatever its limits
(one limit per image in each file: the 120 s point against the 300 s one).

For every (image, requested bpp) both sweeps encoded, each file's PSNR is
moved to the requested rate along the encoder's own slope
(`encoder.PSNR_PER_LN_RATE` dB per unit of ln rate, the Kodak mean; within
the 5 % rate promise that is at most +-0.22 dB), so files that landed a few
percent apart compare at one rate. Prints a Markdown table: each pair, the
mean difference per requested rate and overall, how many files of each
sweep ended within the rate promise (`encoder.RATE_PROMISE` of the request,
either way), and the encode times.

With --interpolate, a request the old sweep did not make on an image is
compared with the old sweep's PSNR at the requested rate read off the line,
in ln bpp, between its nearest requests below and above on that image (a
second table, rows marked "interpolated"): a default sweep at 0.75 bpp
against one at 0.5 and 1 bpp. The line is a chord of a concave curve, so it
favours the new sweep by up to a few tenths of a dB.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from inrcodec.train.encoder import keeps_promise, moved_to_target


class Encode(NamedTuple):
    bpp: float
    psnr: float
    at_request: float  # PSNR moved to the requested rate
    seconds: float


def read_encodes(path: Path, effort: str, by_limit: bool = True,
                 time_limit: float | None = None) -> dict[tuple[str, float], Encode]:
    """inrcodec rows of one effort in an rd.csv, by (image, requested bpp).

    A quality_vs_time.csv (`bench.quality_vs_time`) reads the same way, its
    image named with the time limit ("kodim01.png 150 s"), or without it
    unless `by_limit` (then an image under two limits is refused); with
    `time_limit`, only its rows under that limit.
    """
    encodes: dict[tuple[str, float], Encode] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            request = request_of(row, effort, by_limit)
            if request is None or (time_limit is not None and float(row.get("time_limit_s", "nan")) != time_limit):
                continue
            image, requested = request
            if not by_limit and (image, requested) in encodes:
                raise SystemExit(f"{path}: {image} at {requested:g} bpp twice (several time limits?)")
            bpp, psnr = float(row["bpp"]), float(row["psnr"])
            encodes[(image, requested)] = Encode(
                bpp, psnr, moved_to_target(psnr, bpp, requested), float(row["encode_s"]))
    return encodes


def request_of(row: dict[str, str], effort: str, by_limit: bool = True) -> tuple[str, float] | None:
    """(image, requested bpp) of an inrcodec row of `effort`, in either file's layout; None for other rows."""
    if "time_limit_s" in row:  # a quality_vs_time.csv
        if row["effort"] != effort:
            return None
        image = f"{row['image']} {float(row['time_limit_s']):g} s" if by_limit else row["image"]
        return image, float(row["target_bpp"])
    settings = dict(part.split("=", 1) for part in row["setting"].split(";"))
    if row["codec"] != "inrcodec" or settings.get("effort") != effort or "bpp" not in settings:
        return None
    return row["image"], float(settings["bpp"])


def compare(old: dict[tuple[str, float], Encode], new: dict[tuple[str, float], Encode],
            old_label: str = "old") -> str:
    """The Markdown table of the pairs both sweeps have; `old_label` heads the old sweep's column."""
    keys = sorted(set(old) & set(new), key=lambda k: (k[1], k[0]))
    if not keys:
        return "No (image, requested bpp) in both sweeps.\n"
    lines = [f"| image | requested bpp | {old_label} bpp / PSNR / s | new bpp / PSNR / s | difference at the request (dB) |",
             "|---|---|---|---|---|"]
    by_rate: dict[float, list[tuple[float, float, Encode, Encode]]] = defaultdict(list)  # (bpp, dB, old, new)
    for key in keys:
        a, b = old[key], new[key]
        difference = b.at_request - a.at_request
        by_rate[key[1]].append((key[1], difference, a, b))
        lines.append(f"| {key[0]} | {key[1]:g} | {a.bpp:.3f} / {a.psnr:.2f} / {a.seconds:.0f} | "
                     f"{b.bpp:.3f} / {b.psnr:.2f} / {b.seconds:.0f} | {difference:+.2f} |")
    lines += ["", "| requested bpp | pairs | mean difference (dB) | new better | within the rate promise, old / new "
              "| mean encode s, old / new |", "|---|---|---|---|---|---|"]
    every = [pair for values in by_rate.values() for pair in values]
    for label, values in [*((f"{rate:g}", v) for rate, v in sorted(by_rate.items())), ("all", every)]:
        n = len(values)
        differences = [d for _, d, _, _ in values]
        lines.append(f"| {label} | {n} | {sum(differences) / n:+.2f} | {sum(d > 0 for d in differences)} | "
                     f"{sum(keeps_promise(a.bpp, rate) for rate, _, a, _ in values)} / "
                     f"{sum(keeps_promise(b.bpp, rate) for rate, _, _, b in values)} | "
                     f"{sum(a.seconds for _, _, a, _ in values) / n:.1f} / "
                     f"{sum(b.seconds for _, _, _, b in values) / n:.1f} |")
    return "\n".join(lines) + "\n"


def interpolated(old: dict[tuple[str, float], Encode], image: str, request: float) -> Encode | None:
    """The old sweep's encode of `image` at `request` read off its line between the nearest requests around it.

    PSNR at the request and encode time are interpolated linearly in
    ln(request); None without a request on each side.
    """
    requests = sorted(r for i, r in old if i == image)
    below = [r for r in requests if r < request]
    above = [r for r in requests if r > request]
    if not below or not above:
        return None
    a, b = old[(image, below[-1])], old[(image, above[0])]
    t = math.log(request / below[-1]) / math.log(above[0] / below[-1])
    psnr = a.at_request + t * (b.at_request - a.at_request)
    return Encode(request, psnr, psnr, a.seconds + t * (b.seconds - a.seconds))


def compare_interpolated(old: dict[tuple[str, float], Encode], new: dict[tuple[str, float], Encode]) -> str:
    """The Markdown table of the new sweep's requests the old one lacks, against its interpolated line."""
    pairs = [(key, ref) for key in sorted(set(new) - set(old), key=lambda k: (k[1], k[0]))
             if (ref := interpolated(old, *key)) is not None]
    if not pairs:
        return "No request of the new sweep lies between two of the old one's on the same image.\n"
    interpolated_old = dict(pairs)
    return compare(interpolated_old, {key: new[key] for key in interpolated_old}, old_label="old (interpolated)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="rd.csv of the reference sweep")
    parser.add_argument("new", type=Path, help="rd.csv of the sweep compared with it")
    parser.add_argument("--old-effort", default="default")
    parser.add_argument("--new-effort", default=None, help="(default: the old one's)")
    parser.add_argument("--interpolate", action="store_true",
                        help="also compare requests the old sweep lacks with its line between neighbouring ones")
    parser.add_argument("--across-limits", action="store_true",
                        help="quality_vs_time.csv files: pair each image whatever its time limit in each file")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="quality_vs_time.csv files: only the rows under this limit (seconds)")
    args = parser.parse_args(argv)
    by_limit = not args.across_limits
    old = read_encodes(args.old, args.old_effort, by_limit, args.time_limit)
    new = read_encodes(args.new, args.new_effort or args.old_effort, by_limit, args.time_limit)
    print(compare(old, new), end="")
    if args.interpolate:
        print("\n## Requests the old sweep lacks, against its interpolated line\n")
        print(compare_interpolated(old, new), end="")


if __name__ == "__main__":
    main()
