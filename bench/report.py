"""``report.md``: a results folder's tables, plots, settings and provenance, generated, never hand-typed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.metrics import MSSSIM_MIN_SIDE
from bench.plot import LABELS, RD_PLOTS, SHEET
from bench.results import RD_CSV, utc_now
from bench.summary import (ANCHORS, FIXED_RATES, METRICS, RATE_TOLERANCES, SAME_RATE_ANCHOR, Records, Summary,
                           within_column)

REPORT = "report.md"

METHOD = f"""\
- **Rate**: bpp = whole file bytes x 8 / pixels (container and headers included).
- **PSNR**: 8-bit RGB, MSE over all pixels and all three channels together.
- **MS-SSIM**: `pytorch_msssim.ms_ssim` on 8-bit RGB (0..255, 5 scales, 11-tap Gaussian window,
  per channel then averaged); in dB as -10 log10(1 - MS-SSIM). NaN for images whose short side is
  below {MSSSIM_MIN_SIDE} px (too small for 5 scales).
- **Dataset-mean curves**: at each setting, mean over images of bpp and of each metric, over the
  images that have all of the codec's settings.
- **Quality at fixed rates**: per image, PCHIP interpolation over log(bpp), NaN outside the image's
  measured range; then the mean over images (NaN if any image is out of range). In brackets, the
  same interpolation of the dataset-mean curve, as one would read it off the plot.
- **BD-rate** (Bjontegaard): `bjontegaard` package, `method="pchip"`, on the overlap of the quality
  ranges; points that don't improve quality over a cheaper point are dropped first. The headline
  number compares dataset-mean curves on the images both codecs completed; the mean and median of
  per-image BD-rates follow in brackets (per image: `bd_per_image.csv`). Negative = fewer bits than the
  anchor at equal quality. `*`: the quality interval both curves cover is under 75 % of the narrower
  curve's range (the interval is in `bd.csv`).
- **Time**: wall clock of `encode` and `decode` (`time.perf_counter`), one run each, in the process
  that ran the row (`torch_threads` in `rd.csv`).
- **Peak memory**: peak resident set size during the call minus RSS just before it, in MB (10^6 bytes),
  via Linux's resettable high-water mark (`/proc/self/clear_refs`, `VmHWM`). Includes native
  allocations; memory the process already held is not counted again, so it is a lower bound.
"""


def _num(value: float, fmt: str) -> str:
    return "–" if math.isnan(value) else format(value, fmt)


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _bd_table(summary: Summary, metric: str) -> str:
    anchors = [a for a in ANCHORS if a in summary.codecs]
    found = {(r["anchor"], r["codec"]): r for r in summary.bd if r["metric"] == metric}
    rows = []
    for codec in summary.codecs:
        cells = [codec]
        for anchor in anchors:
            r = found.get((anchor, codec))
            if r is None:
                cells.append("–")
                continue
            flag = "*" if r["overlap"] < 0.75 else ""
            cells.append(
                f"{_num(r['bd_rate'], '+.1f')} %{flag} "
                f"({_num(r['bd_rate_image_mean'], '+.1f')} / {_num(r['bd_rate_image_median'], '+.1f')})"
            )
        rows.append(cells)
    return _table(["codec", *(f"vs {a}" for a in anchors)], rows)


def _fixed_table(summary: Summary, metric: str) -> str:
    found = {(r["codec"], r["bpp"]): r for r in summary.fixed if r["metric"] == metric}

    def cell(r: dict[str, Any]) -> str:
        return f"{_num(r['value'], '.2f')} ({_num(r['mean_curve_value'], '.2f')})"

    rows = [[codec, *(cell(found[codec, rate]) for rate in FIXED_RATES)] for codec in summary.codecs]
    return _table(["codec", *(f"{rate} bpp" for rate in FIXED_RATES)], rows)


def _same_rate_table(summary: Summary, metric: str) -> str:
    rows = []
    for r in (r for r in summary.same_rate if r["metric"] == metric):
        rows.append([
            r["codec"],
            _num(r["target_bpp"], "g"),
            _num(r["mean_bpp"], ".3f"),
            _num(r["value"], ".2f"),
            _num(r["anchor_value"], ".2f"),
            _num(r["difference"], "+.2f"),
            f"{r['n_better']} / {r['n_compared']}",
            " / ".join(str(r[within_column(t)]) for t in RATE_TOLERANCES),
            f"{_num(r['encode_s_mean'], '.0f')} / {_num(r['encode_s_max'], '.0f')}",
        ])
    within = " / ".join(f"{round(t * 100)} %" for t in RATE_TOLERANCES)
    header = ["codec", "requested bpp", "mean bpp", "mean", f"{SAME_RATE_ANCHOR} at same bpp", "difference",
              "files better", f"within {within}", "encode s mean / max"]
    return _table(header, rows)


def _cost_table(summary: Summary) -> str:
    rows = []
    for codec in summary.codecs:
        points = [p for p in summary.curves if p["codec"] == codec]
        mean = {k: sum(p[k] for p in points) / len(points) if points else math.nan for k in ("encode_s", "decode_s")}
        peak = {k: max((p[k] for p in points), default=math.nan) for k in ("encode_peak_mb", "decode_peak_mb")}
        rows.append(
            [
                codec,
                _num(mean["encode_s"], ".3f"),
                _num(mean["decode_s"], ".3f"),
                _num(peak["encode_peak_mb"], ".1f"),
                _num(peak["decode_peak_mb"], ".1f"),
            ]
        )
    header = ["codec", "encode s (mean)", "decode s (mean)", "encode peak MB (max)", "decode peak MB (max)"]
    return _table(header, rows)


def _codec_table(summary: Summary, runs: list[dict[str, Any]]) -> str:
    options = {}
    for run in runs:  # later runs win: they reflect the code that wrote the newest rows
        options.update(run.get("options", {}))
    rows = []
    for codec in summary.codecs:
        settings = ", ".join(f"`{p['setting']}`" for p in summary.curves if p["codec"] == codec)
        fixed = ", ".join(f"`{k}={v}`" for k, v in options.get(codec, {}).items()) or "–"
        version = "<br>".join(summary.versions[codec])
        rows.append([codec, version, fixed, settings or "–", str(len(summary.images[codec]))])
    return _table(["codec", "version", "fixed options", "settings (by mean bpp)", "images"], rows)


def _runs_section(runs: list[dict[str, Any]], rows: Records) -> str:
    table = _table(
        ["command", "started (UTC)", "wall s", "rows written", "failed", "jobs"],
        [
            [
                f"`{r['command']}`",
                r["started"],
                str(r["wall_s"]),
                str(r["rows_written"]),
                "interrupted" if r["rows_failed"] is None else str(r["rows_failed"]),
                str(r["jobs"]),
            ]
            for r in runs
        ],
    )
    machines = sorted({r["machine"] for r in rows})
    dates = sorted(r["date"] for r in rows)
    lines = [table if runs else "No `runs.jsonl`: the commands that produced the rows are unknown.", ""]
    lines += [f"- Machine: {m}" for m in machines]
    if dates:
        lines.append(f"- Rows finished between {dates[0]} and {dates[-1]} (UTC).")
    return "\n".join(lines)


def _curves_table(summary: Summary) -> str:
    rows = [
        [
            p["codec"],
            f"`{p['setting']}`",
            _num(p["bpp"], ".4f"),
            _num(p["psnr"], ".3f"),
            _num(p["msssim_db"], ".3f"),
        ]
        for p in summary.curves
    ]
    return _table(["codec", "setting", "bpp", "PSNR dB", "MS-SSIM dB"], rows)


def render(results: Path, summary: Summary, rows: Records, runs: list[dict[str, Any]]) -> str:
    """The Markdown text of a results folder's report."""
    n_images = len({r["image"] for r in rows})
    parts = [
        f"# Rate–distortion benchmark: {results.name}",
        f"Generated by `python -m bench` from `{RD_CSV}` ({len(rows)} rows, {n_images} images) "
        f"at {utc_now()}. Do not edit: rerun `python -m bench summary` instead.",
    ]
    for metric in METRICS:
        parts += [
            f"## BD-rate, {LABELS[metric]}",
            "Dataset-mean curves (per-image mean / median in brackets).\n\n" + _bd_table(summary, metric),
        ]
    for metric in METRICS:
        parts += [
            f"## {LABELS[metric]} at fixed rates",
            "Mean of per-image values (read off the dataset-mean curve in brackets).\n\n"
            + _fixed_table(summary, metric),
        ]
    if summary.same_rate:
        for metric in METRICS:
            parts += [
                f"## {LABELS[metric]} at the rate each file landed on",
                f"Files of rate-targeting codecs against {SAME_RATE_ANCHOR} on the same image at that file's "
                "own bpp (interpolated on the image's curve), averaged over the images.\n\n"
                + _same_rate_table(summary, metric),
            ]
    plots = [f"![{LABELS[m]}]({stem}.png)" for m, stem in RD_PLOTS.items() if (results / f"{stem}.png").exists()]
    if (results / SHEET).exists():
        plots.append(f"![Visual comparison]({SHEET})")
    parts += ["## Plots", "\n\n".join(plots) or "No plots yet: run `python -m bench plot`."]
    parts += ["## Speed and memory", "Over all settings and images of each codec.\n\n" + _cost_table(summary)]
    parts += ["## Codecs and settings", _codec_table(summary, runs)]
    parts += ["## Runs and machine", _runs_section(runs, rows)]
    parts += ["## Method", METHOD]
    parts += [
        "## Dataset-mean RD points",
        "<details><summary>Table</summary>\n\n" + _curves_table(summary) + "\n\n</details>",
    ]
    return "\n\n".join(parts) + "\n"


def write_report(results: Path, summary: Summary, rows: Records, runs: list[dict[str, Any]]) -> Path:
    """Write ``results/report.md`` and return its path."""
    path = results / REPORT
    path.write_text(render(results, summary, rows, runs))
    return path
