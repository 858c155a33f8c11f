"""Refresh the README's results block from a committed results folder.

    python -m bench.readme bench/results/kodak-2026-11-22

Rewrites the text between `<!-- results:start -->` and `<!-- results:end -->`
in README.md from the folder's `bd.csv`, `fixed_rate.csv` and `rd.csv`, so no
number in the README is typed by hand.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from bench.summary import within_column

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _fmt(value: str, pattern: str) -> str:
    number = float(value)
    return "–" if math.isnan(number) else pattern.format(number)


def results_block(results: Path, readme_dir: Path) -> str:
    """Markdown: headline PSNR table, BD-rates vs JPEG 4:2:0, the plot, provenance."""
    bd = [r for r in _read(results / "bd.csv") if r["anchor"] == "jpeg420" and r["metric"] == "psnr"]
    fixed = [r for r in _read(results / "fixed_rate.csv") if r["metric"] == "psnr"]
    rows = _read(results / "rd.csv")
    rates = sorted({float(r["bpp"]) for r in fixed})
    codecs = list(dict.fromkeys(r["codec"] for r in fixed))
    bd_by_codec = {r["codec"]: r for r in bd}
    lines = ["| codec | " + " | ".join(f"PSNR @ {b:g} bpp" for b in rates) + " | BD-rate vs JPEG 4:2:0 | images |",
             "|---" * (len(rates) + 3) + "|"]
    for codec in codecs:
        cells = [_fmt(next(r["value"] for r in fixed if r["codec"] == codec and float(r["bpp"]) == b), "{:.2f}")
                 for b in rates]
        bd_row = bd_by_codec.get(codec)
        bd_cell = _fmt(bd_row["bd_rate"], "{:+.1f} %") if bd_row else "–"
        n = bd_row["n_images"] if bd_row else next(r["n_images"] for r in fixed if r["codec"] == codec)
        lines.append(f"| {codec} | " + " | ".join(cells) + f" | {bd_cell} | {n} |")
    learned = [r for r in rows if r["codec"] == "inrcodec"]
    machine = learned[0]["machine"] if learned else rows[0]["machine"]
    dates = sorted(r["date"][:10] for r in rows)
    rel = results.resolve().relative_to(readme_dir.resolve())
    return "\n".join([
        f"Kodak kodim01–12, RGB PSNR; PSNR at fixed rates is the mean of per-image values (pchip over log-bpp);"
        f" BD-rate on the dataset-mean curves (pchip, `bjontegaard`). Machine: {machine}; runs dated "
        f"{dates[0]} to {dates[-1]}. Full report: [{rel}/report.md]({rel}/report.md).",
        "",
        *lines,
        "",
        *_same_rate_lines(results),
        f"![PSNR vs bpp]({rel}/rd_psnr.png)",
    ])


def _same_rate_lines(results: Path) -> list[str]:
    """inrcodec's files against JPEG 4:2:0 at each file's own rate (`same_rate.csv`), if the folder has it."""
    path = results / "same_rate.csv"
    if not path.exists():
        return []
    rows = [r for r in _read(path) if r["metric"] == "psnr" and r["codec"] == "inrcodec"]
    if not rows:
        return []
    lines = ["Each inrcodec file against JPEG 4:2:0 on the same image at the rate the file landed on "
             "(PSNR means over the images compared: those whose JPEG curve reaches that rate):", "",
             "| requested bpp | mean bpp | inrcodec PSNR | JPEG 4:2:0 PSNR at same bpp | difference | images compared "
             "| within 5 % of rate | encode s mean / max |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {float(r['target_bpp']):g} | {_fmt(r['mean_bpp'], '{:.3f}')} | {_fmt(r['value'], '{:.2f}')} "
                     f"| {_fmt(r['anchor_value'], '{:.2f}')} | {_fmt(r['difference'], '{:+.2f}')} "
                     f"| {r['n_compared']} / {r['n_images']} | {r[within_column(0.05)]} / {r['n_images']} "
                     f"| {_fmt(r['encode_s_mean'], '{:.0f}')} / {_fmt(r['encode_s_max'], '{:.0f}')} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{args.readme} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    block = results_block(args.results, args.readme.parent)
    args.readme.write_text(f"{head}{START}\n{block}\n{END}{tail}")


if __name__ == "__main__":
    main()
