"""The sweep `--effort max` writes, from the sweeps of its two encodes run apart.

    python -m bench.max_of DEFAULT/rd.csv LONG/rd.csv --out DIR [--long-effort max]

`--effort max` encodes an image with the default effort's schedule, then with its own long one,
and keeps the better file (`inrcodec.train.encoder.max_candidates`, `candidate_rank`). Each of
those encodes is what an encode with that schedule alone writes (same seed, same bytes), so a
default-effort sweep and a sweep of the long fit alone (`--effort max` before 2026-12-04, or
`--long-effort`) give max's files without running both again. For each (image, requested bpp)
both sweeps have, DIR/rd.csv gets the file `candidate_rank` keeps, its setting renamed to
effort=max and its encode seconds the sum of the two (peak memory the larger), plus every
non-inrcodec row of the default sweep (the anchors). `python -m bench summary DIR` then gives
max's BD-rates.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.compare_runs import request_of
from bench.results import read_csv, write_fresh_rd
from inrcodec.train.encoder import candidate_rank


def by_request(rows: list[dict[str, str]], effort: str) -> dict[tuple[str, float], dict[str, str]]:
    """The inrcodec rows of `effort` with a target rate, by (image, requested bpp)."""
    found = {}
    for row in rows:
        request = request_of(row, effort)
        if request is not None:
            found[request] = row
    return found


def max_row(default: dict[str, str], long: dict[str, str], requested: float) -> dict[str, Any]:
    """The row `--effort max` would write: the better file by `candidate_rank` (the default's on a tie)."""
    def rank(row: dict[str, str]) -> tuple[bool, float]:
        return candidate_rank(float(row["psnr"]), float(row["bpp"]), requested, None)

    kept = max((default, long), key=rank)
    return {
        **kept,
        "setting": f"bpp={requested:g};effort=max",
        "encode_s": float(default["encode_s"]) + float(long["encode_s"]),
        "encode_peak_mb": max(float(default["encode_peak_mb"]), float(long["encode_peak_mb"])),
    }


def max_sweep(default_rows: list[dict[str, str]], long_rows: list[dict[str, str]],
              long_effort: str) -> list[dict[str, Any]]:
    """The anchors of the default sweep, then max's rows for the requests both sweeps have."""
    defaults, longs = by_request(default_rows, "default"), by_request(long_rows, long_effort)
    common = sorted(set(defaults) & set(longs), key=lambda key: (key[1], key[0]))
    if not common:
        raise SystemExit("no (image, requested bpp) is in both sweeps")
    anchors = [row for row in default_rows if row["codec"] != "inrcodec"]
    return anchors + [max_row(defaults[key], longs[key], key[1]) for key in common]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("default", type=Path, help="rd.csv of a default-effort sweep")
    parser.add_argument("long", type=Path, help="rd.csv of a sweep of max's long fit alone")
    parser.add_argument("--long-effort", default="max", help="the effort the long sweep's rows name")
    parser.add_argument("--out", type=Path, required=True, help="folder to write rd.csv into")
    args = parser.parse_args(argv)
    rows = max_sweep(read_csv(args.default), read_csv(args.long), args.long_effort)
    out = write_fresh_rd(args.out, rows)
    print(f"{out}: {len(rows)} rows")


if __name__ == "__main__":
    main()
