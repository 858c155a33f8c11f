"""Summarise `bench.landing_trace` outputs: where each fit ended, what the landing kept, what it cost.

    python -m bench.landing_summary OLD_DIR [NEW_DIR]

Reads every `*.txt` trace in each folder (one encode each, as
`python -m bench.landing_trace ... > DIR/kodim01.txt` writes it) and prints a
Markdown table per folder: the fit's own file, the kept file, each with its
PSNR moved to the requested rate along the encoder's slope
(`encoder.PSNR_PER_LN_RATE`), the refits and their seconds, and the whole
encode's seconds. With two folders, a third table pairs the images both
traced: the kept files' PSNR at the request, new minus old, and the seconds.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path
from typing import NamedTuple

from inrcodec.train.encoder import keeps_promise, moved_to_target

_HEADER = re.compile(r"^(?P<image>\S+) at (?P<bpp>[\d.]+) bpp", re.M)
_FILE = re.compile(r"^file +(?P<bpp>[\d.]+) bpp +(?P<psnr>[\d.]+) dB", re.M)
_RUN = re.compile(r"^(?P<phase>fit|refit) +(?P<steps>\d+) steps .*?(?P<seconds>[\d.]+) s$", re.M)
_KEPT = re.compile(r"^kept +(?P<bpp>[\d.]+) bpp +(?P<psnr>[\d.]+) dB +(?P<steps>\d+) steps +(?P<seconds>[\d.]+) s$",
                   re.M)


class Landing(NamedTuple):
    image: str
    requested: float
    fit_bpp: float
    fit_psnr: float
    kept_bpp: float
    kept_psnr: float
    refits: int
    refit_seconds: float
    seconds: float

    @property
    def fit_at_request(self) -> float:
        """The fit's file's PSNR moved to the requested rate (`encoder.moved_to_target`)."""
        return moved_to_target(self.fit_psnr, self.fit_bpp, self.requested)

    @property
    def kept_at_request(self) -> float:
        """The kept file's PSNR moved to the requested rate."""
        return moved_to_target(self.kept_psnr, self.kept_bpp, self.requested)


def parse_trace(text: str) -> Landing:
    """One trace's landing; ValueError if the trace is incomplete (no fit, file or kept line)."""
    header, kept = _HEADER.search(text), _KEPT.search(text)
    files = list(_FILE.finditer(text))
    runs = list(_RUN.finditer(text))
    if header is None or kept is None or not files or not runs or runs[0]["phase"] != "fit":
        raise ValueError("not a finished landing trace")
    refits = [run for run in runs if run["phase"] == "refit"]
    return Landing(image=header["image"], requested=float(header["bpp"]),
                   fit_bpp=float(files[0]["bpp"]), fit_psnr=float(files[0]["psnr"]),
                   kept_bpp=float(kept["bpp"]), kept_psnr=float(kept["psnr"]),
                   refits=len(refits), refit_seconds=sum(float(run["seconds"]) for run in refits),
                   seconds=float(kept["seconds"]))


def read_folder(folder: Path) -> dict[tuple[str, float], Landing]:
    """Every finished trace in `folder`, by (image, requested bpp); unfinished ones are skipped."""
    landings = {}
    for path in sorted(folder.glob("*.txt")):
        try:
            landing = parse_trace(path.read_text())
        except ValueError:
            continue
        landings[(landing.image, landing.requested)] = landing
    return landings


def folder_table(folder: Path, landings: dict[tuple[str, float], Landing]) -> list[str]:
    """A Markdown table of one folder's landings, with means and how many kept the rate promise."""
    lines = [f"## {folder}", "",
             "| image | bpp | fit file | fit at request | kept file | kept at request | refits | refit s | encode s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (image, requested), l in sorted(landings.items()):
        lines.append(f"| {image} | {requested:g} | {l.fit_bpp:.4f} / {l.fit_psnr:.2f} dB | {l.fit_at_request:.2f} | "
                     f"{l.kept_bpp:.4f} / {l.kept_psnr:.2f} dB | {l.kept_at_request:.2f} | {l.refits} | "
                     f"{l.refit_seconds:.0f} | {l.seconds:.1f} |")
    if landings:
        values = list(landings.values())
        promised = sum(keeps_promise(l.kept_bpp, l.requested) for l in values)
        fit_promised = sum(keeps_promise(l.fit_bpp, l.requested) for l in values)
        lines += ["", f"Mean: fit at request {statistics.mean(l.fit_at_request for l in values):.2f} dB, "
                      f"kept at request {statistics.mean(l.kept_at_request for l in values):.2f} dB, "
                      f"{statistics.mean(l.refits for l in values):.2f} refits, "
                      f"encode {statistics.mean(l.seconds for l in values):.1f} s "
                      f"({max(l.seconds for l in values):.1f} s at most); "
                      f"fit files within the rate promise {fit_promised} of {len(values)}, "
                      f"kept files {promised} of {len(values)}."]
    return lines + [""]


def pair_table(old: dict[tuple[str, float], Landing], new: dict[tuple[str, float], Landing]) -> list[str]:
    """Kept files of the images both folders traced: PSNR at the request and seconds, new against old."""
    both = sorted(old.keys() & new.keys())
    lines = ["## New against old", "",
             "| image | bpp | old kept at request | new kept at request | difference | old s | new s |",
             "|---|---|---|---|---|---|---|"]
    for key in both:
        a, b = old[key], new[key]
        lines.append(f"| {key[0]} | {key[1]:g} | {a.kept_at_request:.2f} | {b.kept_at_request:.2f} | "
                     f"{b.kept_at_request - a.kept_at_request:+.2f} | {a.seconds:.1f} | {b.seconds:.1f} |")
    if both:
        differences = [new[k].kept_at_request - old[k].kept_at_request for k in both]
        better = sum(d > 0 for d in differences)
        lines += ["", f"{len(both)} images: {statistics.mean(differences):+.2f} dB at the request on average, "
                      f"{better} better; encode {statistics.mean(old[k].seconds for k in both):.1f} -> "
                      f"{statistics.mean(new[k].seconds for k in both):.1f} s mean."]
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="one or two folders of traces")
    args = parser.parse_args(argv)
    if len(args.folders) > 2:
        parser.error("at most two folders (old, new)")
    read = [read_folder(folder) for folder in args.folders]
    lines: list[str] = []
    for folder, landings in zip(args.folders, read):
        lines += folder_table(folder, landings)
    if len(read) == 2:
        lines += pair_table(*read)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
