"""One sweep from several: the rows of a base sweep, with inrcodec files re-encoded since taken from newer sweeps.

    python -m bench.merge_runs BASE/rd.csv NEWER/rd.csv [NEWER/rd.csv ...] --out DIR

A change to the encoder often touches only some rates (or images), and the
files of the others stay byte for byte what they were. Rather than encoding
every request again, the sweep the encoder writes now can be put together:
every row of BASE (the anchors and the inrcodec files), each inrcodec row
replaced by the row of the last NEWER sweep that encoded the same image with
the same setting. Only inrcodec rows are taken from the newer sweeps; rows
they have that BASE lacks are added. DIR/rd.csv is written afresh; then
`python -m bench summary DIR` gives its BD-rates. Whoever merges must know
that the base's files are still what the encoder writes (say how in the
results folder's PROVENANCE).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.codecs import parse_setting
from bench.results import read_csv, write_fresh_rd

_Key = tuple[str, tuple[tuple[str, object], ...]]


def _key(row: dict[str, str]) -> _Key:
    """An encode's image and setting, the setting parsed (``bpp=1`` and ``bpp=1.0`` are one request)."""
    return row["image"], tuple(sorted(parse_setting(row["setting"]).items()))


def merged_rows(base: list[dict[str, str]], newer: list[list[dict[str, str]]]) -> tuple[list[dict[str, str]], int]:
    """BASE's rows with inrcodec rows replaced (or added) from the newer sweeps (the last one wins); and how many."""
    latest: dict[_Key, dict[str, str]] = {}
    for rows in newer:
        latest.update({_key(row): row for row in rows if row["codec"] == "inrcodec"})
    merged, taken = [], 0
    for row in base:
        newer_row = latest.pop(_key(row), None) if row["codec"] == "inrcodec" else None
        merged.append(row if newer_row is None else newer_row)
        taken += newer_row is not None
    return merged + list(latest.values()), taken + len(latest)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="rd.csv of the base sweep (anchors included)")
    parser.add_argument("newer", type=Path, nargs="+",
                        help="rd.csv of sweeps whose inrcodec rows win, the last one over the others")
    parser.add_argument("--out", type=Path, required=True, help="folder to write rd.csv into")
    args = parser.parse_args(argv)
    rows, taken = merged_rows(read_csv(args.base), [read_csv(path) for path in args.newer])
    out = write_fresh_rd(args.out, rows)
    print(f"{out}: {len(rows)} rows, {taken} from the newer sweeps")


if __name__ == "__main__":
    main()
