"""Learned upsampling of the latents against format 2.0's bicubic sampling, in float at fixed lambdas.

    python -m bench.learned_upsampling --images ../shared/data/kodak \
        --pick kodim01:4e-3:2.2e-3,kodim03:1.5e-3:8e-4 --variants learned \
        --out bench/results/learned-upsampling-<date>

Formats 1.0 and 2.0 sample every latent level at the pixel centres with the
same fixed bicubic kernel (`format.sampling`). Cool-chic (from its third
version) upsamples instead with learned filters, one 2x step at a time.
Format 3.0 does that (`format.upsampling`, trained by `train.model.CocoNet`):
level k reaches the image's resolution through k steps of 2x upsampling,
each a separable pair of 4-tap filters (one per output phase, the second
the mirror of the first), edges replicated. Each step (into resolution r)
has its own four taps, shared by rows, columns and every level passing
through it, started at bicubic's 2x taps (Keys, a = -0.75) and trained with
the synthesis MLP (its optimizer group and learning rate). This script
was the question before the format existed (its first results,
bench/results/learned-upsampling-2026-12-03, came from a prototype of the
same function in this file); it now runs the shipped model. Variants:

    base: format 2.0's fixed bicubic sampling (the default architecture
        without learned upsampling);
    fixed: format 3.0's 2x steps with their filters held at bicubic's (what
        the hierarchy alone changes);
    learned: format 3.0's 2x steps with learned filters.

Nothing here is written to a file: each fit is measured in float (networks
unquantized, latents rounded, colour rounded to 8 bits), the baseline the
same way (`bench.conv_synthesis.psnr_8bit`); the rate is the context model's
whole-image latent estimate plus 7 bits per added number. Each variant's
point is compared with the line through the baseline's points on that image
(`bench.fixed_lambda.baseline_psnr_at`) and with the baseline's fit at the
same lambda, moved to its rate along `encoder.PSNR_PER_LN_RATE`
(`same_lambda_summary`). Every variant runs with format 3.0's crop margin
(`model.UPSAMPLING_CROP_MARGIN`; the baseline's fits do not depend on it). Rows go to
upsampling.csv (resumable), the comparison to upsampling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

from bench.conv_synthesis import float_fit_figures, float_fit_summary
from bench.fixed_lambda import fitted, float_fit, pending, picks
from bench.results import append_csv_row, machine, utc_now
from inrcodec.train import encoder
from inrcodec.train import model as coconet
from inrcodec.train.encoder import PSNR_PER_LN_RATE
from inrcodec.train.model import UPSAMPLING_CROP_MARGIN, CocoNet

CSV_NAME = "upsampling.csv"
COLUMNS = ("image", "variant", "lmbda", "steps", "latent_bpp", "weight_bpp", "psnr", "fit_s", "torch_threads",
           "machine", "date")
VARIANTS = ("base", "fixed", "learned")
# Every variant's crops get format 3.0's margin (`model.UPSAMPLING_CROP_MARGIN`).
MARGIN = UPSAMPLING_CROP_MARGIN
# Pairs whose rates are within this ratio are also summarized alone: moving
# along PSNR_PER_LN_RATE over a wider gap is an extrapolation.
NEAR_RATE_RATIO = 1.15


@contextlib.contextmanager
def wide_crops() -> Iterator[None]:
    """The training crops with MARGIN cells around the window for the duration (every variant alike)."""
    shipped, coconet.CROP_MARGIN = coconet.CROP_MARGIN, MARGIN
    try:
        yield
    finally:
        coconet.CROP_MARGIN = shipped


def new_net(variant: str) -> Callable[[int, int], CocoNet]:
    """The variant's CocoNet: format 2.0's default architecture, or format 3.0's (taps held for `fixed`)."""
    learned = replace(encoder.ARCHITECTURES["default"], learned_upsampling=True)
    if variant == "base":
        return lambda h, w: CocoNet(h, w, replace(learned, learned_upsampling=False))

    def net(h: int, w: int) -> CocoNet:
        model = CocoNet(h, w, learned)
        model.synthesis.up_taps.requires_grad_(variant == "learned")
        return model

    return net


def added_weights(model: CocoNet) -> int:
    """Numbers the variant adds to the file: the learned taps (held taps are the format's, not sent)."""
    taps = getattr(model.synthesis, "up_taps", None)
    return taps.numel() if taps is not None and taps.requires_grad else 0


def fit(path: Path, variant: str, lmbda: float, steps: int | None) -> dict[str, float]:
    """One fixed-lambda fit of the default schedule, measured in float (call within `wide_crops`)."""
    done = float_fit(path, new_net(variant), lmbda, steps)
    return float_fit_figures(done, added_weights(done.fitter.model))


def summarize(rows: list[dict[str, str]]) -> str:
    """upsampling.md: each variant against the baseline's line on its image, then against its fit at the same lambda."""
    table = float_fit_summary(rows, "Learned 2x upsampling of the latents (float, fixed lambdas)",
                              "bench.learned_upsampling", CSV_NAME,
                              "Rate: latent bpp plus the learned filters' bpp (the baseline adds none).", "variant",
                              "base")
    return table + same_lambda_summary(rows)


def same_lambda_summary(rows: list[dict[str, str]]) -> str:
    """Each variant fit against the baseline's fit of the same image and lambda, moved to its rate along PSNR_PER_LN_RATE.

    One baseline fit per lambda can land well off the line through the
    others (a fit's start moves its rate by a tenth or more at a fixed
    lambda), and a line through two such points extrapolates wildly; the
    encoder's own slope between files of nearby sizes does not.
    """
    base = {(r["image"], r["lmbda"]): r for r in rows if r["variant"] == "base"}
    lines = ["", f"Against the baseline's fit at the same lambda, moved along {PSNR_PER_LN_RATE} dB per unit of "
             "ln(rate) (`encoder.PSNR_PER_LN_RATE`):", "",
             "| image | variant | lambda | rate ratio | difference (dB) |", "|---|---|---|---|---|"]
    differences: dict[str, list[tuple[float, float]]] = {}  # (difference, rate ratio)
    for r in sorted(rows, key=lambda r: (r["variant"], r["image"], float(r["lmbda"]))):
        b = base.get((r["image"], r["lmbda"]))
        if r["variant"] == "base" or b is None:
            continue
        ratio = (float(r["latent_bpp"]) + float(r["weight_bpp"])) / float(b["latent_bpp"])
        difference = float(r["psnr"]) - float(b["psnr"]) - PSNR_PER_LN_RATE * math.log(ratio)
        differences.setdefault(r["variant"], []).append((difference, ratio))
        lines.append(f"| {r['image']} | {r['variant']} | {r['lmbda']} | {ratio:.3f} | {difference:+.2f} |")
    lines += ["", f"Rates within {NEAR_RATE_RATIO:g}x of each other: the pairs where moving along the slope is "
              "not an extrapolation.", "",
              "| variant | fits | better | mean difference (dB) | median | rates within | better | mean | median |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, pairs in sorted(differences.items()):
        near = [d for d, ratio in pairs if 1 / NEAR_RATE_RATIO <= ratio <= NEAR_RATE_RATIO]
        lines.append(f"| {name} | {_stats([d for d, _ in pairs])} | {_stats(near)} |")
    return "\n".join(lines) + "\n"


def _stats(values: list[float]) -> str:
    """Cells: count, how many positive, mean and median (dashes for none)."""
    if not values:
        return "0 | 0 | - | -"
    return (f"{len(values)} | {sum(v > 0 for v in values)} | {sum(values) / len(values):+.2f} | "
            f"{statistics.median(values):+.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda[:lambda...]")
    parser.add_argument("--variants", default="learned", help=f"comma-separated, from {', '.join(VARIANTS[1:])} "
                        "(base always runs)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    chosen_variants = ["base", *(v for v in args.variants.split(",") if v != "base")]
    if not set(chosen_variants) <= set(VARIANTS):
        raise SystemExit(f"--variants {args.variants!r}: from {', '.join(VARIANTS[1:])}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen = picks(args.images, args.pick)
    path = args.out / CSV_NAME
    with wide_crops():
        for image, lmbda, variant in pending(chosen, chosen_variants, fitted(path)):
            result = fit(image, variant, lmbda, args.steps)
            append_csv_row(path, COLUMNS, {
                "image": image.name, "variant": variant, "lmbda": lmbda, "steps": result["steps"],
                "latent_bpp": f"{result['latent_bpp']:.5f}", "weight_bpp": f"{result['weight_bpp']:.5f}",
                "psnr": f"{result['psnr']:.3f}", "fit_s": f"{result['fit_s']:.1f}",
                "torch_threads": torch.get_num_threads(), "machine": machine(), "date": utc_now(),
            })
            print(f"{image.stem} {variant} lambda {lmbda:g}: {result['latent_bpp']:.4f} latent bpp, "
                  f"{result['psnr']:.2f} dB, {result['fit_s']:.0f} s", flush=True)
    with path.open() as f:
        (args.out / "upsampling.md").write_text(summarize(list(csv.DictReader(f))))
    print(f"wrote {args.out / 'upsampling.md'}")


if __name__ == "__main__":
    main()
