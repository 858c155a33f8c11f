"""Summaries computed from ``rd.csv`` alone: dataset-mean RD curves, quality at fixed rates, BD-rates.

Conventions:
    * A codec's dataset-mean curve averages, at each setting, bpp and each metric over the images that
      have rows for *all* of that codec's settings (a partial, resumed sweep doesn't skew the means).
    * Quality at a fixed rate is interpolated per image with PCHIP over log(bpp), NaN outside the
      image's measured bpp range, then averaged over images (NaN if any image is NaN). The same
      interpolation of the dataset-mean curve is given beside it: it is what reading a published mean
      RD plot gives, and lower for concave curves (about 0.3 dB for JPEG on Kodak).
    * Codecs that aim at a rate (settings with a ``bpp=`` target, i.e. inrcodec) are also compared
      file by file with JPEG 4:2:0 at the rate each file actually landed on (``same_rate.csv``): the
      anchor's quality is read off that image's own curve at that bpp. This is the comparison "beats
      JPEG at the same rate" asks for, and it needs no file to land exactly on the requested rate.
    * BD-rates (Bjontegaard, VCEG-M33) come from the ``bjontegaard`` package with its ``"pchip"``
      interpolation, over the overlapping quality interval. The headline number compares the
      dataset-mean curves (mean bpp, mean per-image quality) on the images both codecs completed; the
      mean and median of per-image BD-rates are given beside it.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bjontegaard
import numpy as np
from scipy.interpolate import PchipInterpolator

from bench.codecs import CODECS, parse_setting

FIXED_RATES = (0.25, 0.5, 0.75, 1.0)
"""bpp at which quality is reported."""
ANCHORS = ("jpeg420", "webp")
"""Codecs every other codec gets a BD-rate against."""
SAME_RATE_ANCHOR = "jpeg420"
"""Codec that rate-targeting codecs are compared with file by file (see `same_rate`)."""
RATE_TOLERANCES = (0.02, 0.05)
"""Relative misses of the requested rate counted in `same_rate`."""
METRICS = ("psnr", "msssim_db")
"""Quality metrics summarised (both in dB)."""
MEAN_COLUMNS = (
    "bpp",
    "psnr",
    "msssim",
    "msssim_db",
    "encode_s",
    "decode_s",
    "encode_peak_mb",
    "decode_peak_mb",
)

# codec -> image -> setting -> row
Table = dict[str, dict[str, dict[str, dict[str, Any]]]]
Records = list[dict[str, Any]]


@dataclass
class Summary:
    """Everything the report and plots show, as lists of flat records (one per CSV row).

    Attributes:
        codecs: Codec names, in registry order then CSV order.
        versions: Distinct ``codec_version`` strings per codec.
        images: Images each codec completed (all its settings present).
        curves: Dataset-mean RD points: codec, setting, n_images and the means of `MEAN_COLUMNS`.
        fixed: Mean quality at `FIXED_RATES`: codec, metric, bpp, value (mean of per-image values),
            mean_curve_value (read off the dataset-mean curve), n_images, n_in_range.
        bd: BD-rates against each anchor: anchor, codec, metric, the keys of `bd` for the mean curves,
            bd_rate_image_mean, bd_rate_image_median, n_images.
        bd_images: Per-image BD-rates: anchor, codec, metric, image and the keys of `bd`.
        same_rate: Per rate-targeting setting and metric, the files against SAME_RATE_ANCHOR at each
            file's own bpp (see `same_rate`).
    """

    codecs: list[str]
    versions: dict[str, list[str]]
    images: dict[str, list[str]]
    curves: Records = field(default_factory=list)
    fixed: Records = field(default_factory=list)
    bd: Records = field(default_factory=list)
    bd_images: Records = field(default_factory=list)
    same_rate: Records = field(default_factory=list)


def tabulate(rows: Records) -> Table:
    """Index rows by codec, image and setting (a later duplicate row replaces an earlier one)."""
    table: Table = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        table[row["codec"]][row["image"]][row["setting"]] = row
    return table


def complete_images(per_image: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Images that have a row for every setting the codec has anywhere, sorted."""
    settings = {s for by_setting in per_image.values() for s in by_setting}
    return sorted(image for image, by_setting in per_image.items() if by_setting.keys() == settings)


def mean_curve(per_image: dict[str, dict[str, dict[str, Any]]], images: list[str]) -> Records:
    """Dataset-mean RD points of one codec over ``images``, one record per setting, sorted by bpp."""
    if not images:
        return []
    points = [
        {
            "setting": setting,
            "n_images": len(images),
            **{c: float(np.mean([per_image[i][setting][c] for i in images])) for c in MEAN_COLUMNS},
        }
        for setting in per_image[images[0]]
    ]
    return sorted(points, key=lambda p: p["bpp"])


def _points(records: Records, metric: str) -> tuple[np.ndarray, np.ndarray]:
    bpp = np.array([r["bpp"] for r in records], dtype=float)
    quality = np.array([r[metric] for r in records], dtype=float)
    keep = np.isfinite(bpp) & np.isfinite(quality) & (bpp > 0)
    order = np.argsort(bpp[keep], kind="stable")
    return bpp[keep][order], quality[keep][order]


def quality_at(records: Records, metric: str, rates: tuple[float, ...] = FIXED_RATES) -> np.ndarray:
    """Quality at given bpp by PCHIP interpolation over log(bpp) of one image's (or one mean) curve.

    Args:
        records: RD points with ``bpp`` and ``metric`` keys, any order.
        metric: Quality column, e.g. ``"psnr"``.
        rates: Target bpp.

    Returns:
        Quality at each rate, NaN outside the measured bpp range or with fewer than two points.
    """
    bpp, quality = _points(records, metric)
    strictly = np.diff(bpp, prepend=-math.inf) > 0  # PCHIP needs strictly increasing x
    bpp, quality = bpp[strictly], quality[strictly]
    if len(bpp) < 2:
        return np.full(len(rates), math.nan)
    at = np.asarray(rates, dtype=float)
    values = PchipInterpolator(np.log(bpp), quality, extrapolate=False)(np.log(at))
    return np.where((at >= bpp[0]) & (at <= bpp[-1]), values, math.nan)


def _monotone(bpp: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # BD-rate interpolates log-rate as a function of quality, which needs quality strictly increasing:
    # keep, in bpp order, only points that improve on every cheaper point.
    keep: list[int] = []
    best = -math.inf
    for i, q in enumerate(quality):
        if q > best and (not keep or bpp[i] > bpp[keep[-1]]):
            keep.append(i)
            best = q
    return bpp[keep], quality[keep]


def bd(anchor: Records, test: Records, metric: str) -> dict[str, float]:
    """Bjontegaard deltas of ``test`` against ``anchor`` (PCHIP interpolation, ``bjontegaard`` package).

    Args:
        anchor: RD points of the reference codec.
        test: RD points of the codec under test.
        metric: Quality column.

    Returns:
        ``bd_rate``: mean rate difference in % at equal quality (negative: test needs fewer bits);
        ``bd_quality_db``: mean quality difference at equal rate; ``quality_lo``/``quality_hi``: the
        quality interval integrated over (where both curves exist); ``overlap``: that interval's share
        of the narrower curve's quality range (well below 1, the BD-rate describes only part of a
        curve). NaN where a curve has fewer than two usable points or the curves don't overlap.
    """
    (ra, qa), (rt, qt) = _monotone(*_points(anchor, metric)), _monotone(*_points(test, metric))
    result = dict.fromkeys(("bd_rate", "bd_quality_db", "quality_lo", "quality_hi", "overlap"), math.nan)
    if min(len(ra), len(rt)) < 2:
        return result
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    result.update(quality_lo=lo, quality_hi=hi, overlap=max(hi - lo, 0.0) / min(qa[-1] - qa[0], qt[-1] - qt[0]))
    if hi <= lo:
        return result
    # The package warns when the overlap is below a share of the *union* of both ranges, which a
    # deliberately wide anchor sweep always triggers; `overlap` above is the more telling number.
    kwargs = {"method": "pchip", "require_matching_points": False, "min_overlap": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result["bd_rate"] = float(bjontegaard.bd_rate(ra, qa, rt, qt, **kwargs))
        result["bd_quality_db"] = float(bjontegaard.bd_psnr(ra, qa, rt, qt, **kwargs))
    return result


def _codec_order(names: set[str]) -> list[str]:
    known = [name for name in CODECS if name in names]
    return known + sorted(names - set(known))


def _fixed_rates(table: Table, codec: str, images: list[str]) -> Records:
    records = []
    curve = mean_curve(table[codec], images)
    for metric in METRICS:
        per_image = np.array([quality_at(list(table[codec][i].values()), metric) for i in images])
        on_curve = quality_at(curve, metric)
        for j, rate in enumerate(FIXED_RATES):
            column = per_image[:, j] if len(images) else np.array([math.nan])
            records.append(
                {
                    "codec": codec,
                    "metric": metric,
                    "bpp": rate,
                    "value": float(np.mean(column)),
                    "mean_curve_value": float(on_curve[j]),
                    "n_images": len(images),
                    "n_in_range": int(np.isfinite(column).sum()),
                }
            )
    return records


def target_bpp(setting: str) -> float | None:
    """The requested rate of a setting such as ``bpp=0.5;effort=default``; None without one."""
    value = parse_setting(setting).get("bpp")
    return float(value) if isinstance(value, (int, float)) else None


def within_column(tolerance: float) -> str:
    """Column of `same_rate` counting files within ``tolerance`` of the requested rate."""
    return f"n_within_{round(tolerance * 100)}pct"


def same_rate(table: Table, codec: str, anchor: str, images: list[str]) -> Records:
    """A rate-targeting codec's files against ``anchor`` at the rate each file landed on.

    One record per (setting with a ``bpp=`` target, metric): the mean achieved bpp, the codec's mean
    quality, the anchor's mean quality interpolated on each image's own curve at that file's bpp
    (images outside the anchor's measured range are left out of both means), their difference, how
    many files beat the anchor, and how many landed within each of RATE_TOLERANCES of the request.
    """
    records: Records = []
    targets = {s: target_bpp(s) for i in images for s in table[codec][i]}
    for setting, target in sorted(((s, t) for s, t in targets.items() if t is not None), key=lambda st: st[1]):
        files = [(i, table[codec][i][setting]) for i in images if setting in table[codec][i]]
        mean_bpp = float(np.mean([row["bpp"] for _, row in files]))
        misses = [abs(row["bpp"] / target - 1) for _, row in files]
        landing = {
            **{within_column(t): sum(m <= t for m in misses) for t in RATE_TOLERANCES},
            "encode_s_mean": float(np.mean([row["encode_s"] for _, row in files])),
            "encode_s_max": float(max(row["encode_s"] for _, row in files)),
        }
        for metric in METRICS:
            pairs = []
            for image, row in files:
                reference = quality_at(list(table[anchor][image].values()), metric, (row["bpp"],))[0]
                if math.isfinite(reference) and math.isfinite(row[metric]):
                    pairs.append((row[metric], float(reference)))
            ours = np.array([p[0] for p in pairs])
            theirs = np.array([p[1] for p in pairs])
            records.append({
                "codec": codec,
                "anchor": anchor,
                "setting": setting,
                "target_bpp": target,
                "metric": metric,
                "n_images": len(files),
                "n_compared": len(pairs),
                "mean_bpp": mean_bpp,
                "value": float(ours.mean()) if len(pairs) else math.nan,
                "anchor_value": float(theirs.mean()) if len(pairs) else math.nan,
                "difference": float((ours - theirs).mean()) if len(pairs) else math.nan,
                "n_better": int((ours > theirs).sum()),
                **landing,
            })
    return records


def _bd_against(table: Table, images: dict[str, list[str]], anchor: str, codec: str) -> tuple[Records, Records]:
    common = sorted(set(images[anchor]) & set(images[codec]))
    summary, per_image = [], []
    for metric in METRICS:
        head: dict[str, Any] = {"anchor": anchor, "codec": codec, "metric": metric}
        each = [
            {
                **head,
                "image": i,
                **bd(list(table[anchor][i].values()), list(table[codec][i].values()), metric),
            }
            for i in common
        ]
        rates = np.array([e["bd_rate"] for e in each], dtype=float)
        finite = rates[np.isfinite(rates)]
        whole = bd(mean_curve(table[anchor], common), mean_curve(table[codec], common), metric)
        summary.append(
            {
                **head,
                **whole,
                "bd_rate_image_mean": float(np.mean(finite)) if len(finite) else math.nan,
                "bd_rate_image_median": float(np.median(finite)) if len(finite) else math.nan,
                "n_images": len(common),
            }
        )
        per_image.extend(each)
    return summary, per_image


def summarize(rows: Records) -> Summary:
    """Compute all summaries from the rows of ``rd.csv``."""
    table = tabulate(rows)
    codecs = _codec_order(set(table))
    images = {c: complete_images(table[c]) for c in codecs}
    versions = {c: sorted({r["codec_version"] for r in rows if r["codec"] == c}) for c in codecs}
    summary = Summary(codecs=codecs, versions=versions, images=images)
    for codec in codecs:
        summary.curves.extend({"codec": codec, **p} for p in mean_curve(table[codec], images[codec]))
        summary.fixed.extend(_fixed_rates(table, codec, images[codec]))
        if codec != SAME_RATE_ANCHOR and SAME_RATE_ANCHOR in table:
            summary.same_rate.extend(same_rate(table, codec, SAME_RATE_ANCHOR, images[codec]))
    for anchor in (a for a in ANCHORS if a in table):
        for codec in (c for c in codecs if c != anchor):
            whole, each = _bd_against(table, images, anchor, codec)
            summary.bd.extend(whole)
            summary.bd_images.extend(each)
    return summary


def write_records(path: Path, records: Records) -> None:
    """Write records as a CSV with the first record's keys as header (floats to 6 significant digits)."""
    with path.open("w", newline="") as f:
        if not records:
            return
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        for r in records:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})


def write_summary(results: Path, rows: Records) -> Summary:
    """Summarise the rows of ``rd.csv`` into CSVs in ``results``.

    Writes ``summary.csv`` (mean curves), ``fixed_rate.csv``, ``bd.csv``, ``bd_per_image.csv`` and
    ``same_rate.csv``.
    """
    summary = summarize(rows)
    write_records(results / "summary.csv", summary.curves)
    write_records(results / "fixed_rate.csv", summary.fixed)
    write_records(results / "bd.csv", summary.bd)
    write_records(results / "bd_per_image.csv", summary.bd_images)
    write_records(results / "same_rate.csv", summary.same_rate)
    return summary
