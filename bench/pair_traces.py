"""What the default effort's pair of fits keeps, from single-fit traces of each candidate.

    python -m bench.pair_traces FIRST SECOND [OTHER_SECOND ...] [--old-pair OLD_FIRST OLD_SECOND]

An untimed default encode below 1 bpp fits two schedules side by side, one
thread each, and keeps the better file (`encoder.candidate_rank`: within
the rate promise first, then PSNR moved to the request). Each folder holds
`bench.landing_trace` traces of one candidate's fit (`--threads 1`, and
`--set` for the second candidate), which are its files. For each SECOND
folder the pair FIRST + SECOND keeps, per image, the better of the two
kept files; a pair's encode takes as long as its slower fit. Prints one
table of every image both (or all) folders traced, then each pair after the
first against the first pair. With `--old-pair`, the pair of the encoder
before a change (its two candidates' traces) is the one every pair is set
against, on the images every folder traced.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.landing_summary import Landing, read_folder
from inrcodec.train.encoder import candidate_rank, keeps_promise

Traces = dict[tuple[str, float], Landing]  # `landing_summary.read_folder`: (image, requested bpp) -> landing


def pair_kept(first: Landing, second: Landing) -> tuple[Landing, int]:
    """The landing whose kept file the pair returns, and which (1 or 2); the first wins ties, as the encoder's."""
    ranks = [candidate_rank(l.kept_psnr, l.kept_bpp, l.requested, None) for l in (first, second)]
    return (second, 2) if ranks[1] > ranks[0] else (first, 1)


def pair_seconds(first: Landing, second: Landing) -> float:
    """How long a pair's encode takes: its slower fit."""
    return max(first.seconds, second.seconds)


def pair_tables(first: Traces, seconds: list[tuple[Path, Traces]], old: tuple[Traces, Traces] | None = None
                ) -> list[str]:
    """Per image the candidates' kept files at the request and each pair's, then means and pair differences."""
    keys = sorted(set(first).intersection(*(landings.keys() for _, landings in seconds),
                                          *(old if old is not None else ())))
    names = [folder.name for folder, _ in seconds]
    lines = ["| image | bpp | first | " + " | ".join(f"{n} | pair with {n}" for n in names) + " |",
             "|---|---|---|" + "---|---|" * len(names)]
    kept: list[list[Landing]] = [[] for _ in seconds]
    for key in keys:
        row = [key[0], f"{key[1]:g}", f"{first[key].kept_at_request:.2f}"]
        for i, (_, landings) in enumerate(seconds):
            landing, which = pair_kept(first[key], landings[key])
            kept[i].append(landing)
            row += [f"{landings[key].kept_at_request:.2f}", f"{landing.kept_at_request:.2f} ({which})"]
        lines.append("| " + " | ".join(row) + " |")
    if not keys:
        return lines + ["", "No image traced in every folder."]
    lines.append("")
    for name, pair, (_, landings) in zip(names, kept, seconds):
        times = [pair_seconds(first[k], landings[k]) for k in keys]
        promised = sum(keeps_promise(l.kept_bpp, l.requested) for l in pair)
        won = sum(l is landings[k] for l, k in zip(pair, keys))
        lines.append(f"- pair with {name}: {statistics.mean(l.kept_at_request for l in pair):.2f} dB at the "
                     f"request on average, the second fit's file kept {won} of {len(keys)} times, "
                     f"{promised} of {len(keys)} within the rate promise, encode (the slower fit) "
                     f"{statistics.mean(times):.1f} s mean, {max(times):.1f} s at most.")
    if old is None:
        base_label, base = f"pair with {names[0]}", kept[0]
    else:
        base_label, base = "the old pair", [pair_kept(old[0][k], old[1][k])[0] for k in keys]
        old_times = [pair_seconds(old[0][k], old[1][k]) for k in keys]
        lines.append(f"- the old pair: {statistics.mean(l.kept_at_request for l in base):.2f} dB at the request "
                     f"on average, encode (the slower fit) {statistics.mean(old_times):.1f} s mean.")
    for name, pair in zip(names, kept):
        if pair is base:
            continue
        differences = [b.kept_at_request - a.kept_at_request for a, b in zip(base, pair)]
        lines.append(f"- pair with {name} against {base_label}: {statistics.mean(differences):+.2f} dB at the "
                     f"request, {sum(d > 0 for d in differences)} better, {sum(d < 0 for d in differences)} worse "
                     f"(of {len(keys)}).")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="traces of the first candidate's fits")
    parser.add_argument("seconds", type=Path, nargs="+", help="traces of a second candidate's fits, per folder")
    parser.add_argument("--old-pair", type=Path, nargs=2, metavar=("OLD_FIRST", "OLD_SECOND"),
                        help="the two candidates' traces of the encoder before a change: every pair against it")
    args = parser.parse_args(argv)
    first = read_folder(args.first)
    seconds = [(folder, read_folder(folder)) for folder in args.seconds]
    old = None if args.old_pair is None else (read_folder(args.old_pair[0]), read_folder(args.old_pair[1]))
    print(f"# Pairs of fits from traces (first: {args.first}"
          + ("" if args.old_pair is None else f"; old pair: {args.old_pair[0]} and {args.old_pair[1]}") + ")\n")
    print("\n".join(pair_tables(first, seconds, old)))


if __name__ == "__main__":
    main()
