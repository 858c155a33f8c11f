"""Training variants compared at fixed lambdas: where is the quality gap not?

    python -m bench.fixed_lambda --images ../shared/data/kodak \
        --pick kodim01:2.2e-3:1.5e-3,kodim03:8e-4:4e-4 --variants base,soft,synth48 \
        --out bench/results/fixed-lambda-<date>

Each variant fits each picked image once per lambda (no rate target, no
landing: what `inrcodec encode --lmbda` does with the default effort), then
the file is written and decoded as usual, so bpp and PSNR are the real
file's. Comparing variants at the same lambda says little (a variant may
move the rate), so each variant's files are compared with the baseline's
rate-distortion curve on the same image: the baseline's PSNR at the
variant's bpp, read off the straight line through its points in
(ln bpp, PSNR), the segment around that bpp or the nearest one when outside
(marked "outside"). The end-to-end question (does it survive the rate
landing?) is `python -m bench rd`'s.

Variants:
    base        the default effort's schedule and architecture.
    soft        soft-rounded noisy latents (`CocoNet.noisy_latents`),
                temperature 0.5 -> 0.2 over the noise phase.
    synth48     one hidden synthesis layer of 48 (592 multiply-adds per
                pixel; the default is 16x16, 528).
    synth32x2   two hidden synthesis layers of 32 (1456 multiply-adds).
    pretrained  the networks start from the shipped pretrained weights
                (`inrcodec.train.pretrained`) and train at the long fits'
                learning rate.
    long-slow   four times the steps with the latents at learning rate 0.03
                (the default: 0.1).
    fine-<lr>   the full-resolution latents alone at learning rate <lr>
                (e.g. fine-0.03; the other levels stay at 0.1).
    latent-<lr> all the latents at learning rate <lr>.
    synth-<lr>  the synthesis MLP at peak learning rate <lr>.
    context-<lr> the context model at peak learning rate <lr>.
    init=<path> the synthesis and context model start from the weights in
                <path> (a networks.json of `bench.pretrain_networks`).
    ste-<f>     the final straight-through phase's fraction of the steps.
    floor-<f>   where the cosine learning rate ends (fraction of the peak).
    beta1-<d>, beta2-<d>  Adam's moment decays.
    crop-<px>   the training crop's side.
    steps-<n>   the fit's steps (with "+": compare at equal time).
    arm-<w>x<w> the context model's hidden widths (e.g. arm-8x8, arm-12;
                the default is 16x16): a cheaper step for a few percent of
                the rate.
    synthesis-<w>x<w> the synthesis MLP's hidden widths (e.g.
                synthesis-24x24; the default is 16x16).
    These combine with "+": latent-0.15+fine-0.03, init=nets.json+synth-0.005.
    --effort fast|default|max picks the schedule they change (default: the
    default effort's).
Rows go to fixed_lambda.csv (resumable per image, variant and lambda);
fixed_lambda.md gives each file against the baseline.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bench.results import append_csv_row, machine, utc_now
from bench.run import find_images
from inrcodec.format.architecture import Architecture
from inrcodec.imageio import load_image
from inrcodec.train import encoder
from inrcodec.train.fit import Fitter, RateTarget, Schedule
from inrcodec.train.model import CocoNet
from inrcodec.train.pretrained import load_networks_file, start_from_pretrained

CSV_NAME = "fixed_lambda.csv"
COLUMNS = ("image", "variant", "lmbda", "steps", "synth_hidden", "bpp", "psnr", "latent_bpp",
           "level0_nonzero", "fit_s", "torch_threads", "machine", "date")


@dataclass(frozen=True)
class Variant:
    """A change to the default effort's training: its schedule and architecture."""

    schedule: Schedule
    architecture: Architecture
    networks: Path | None = None  # pretrained starting weights (see `bench.pretrain_networks`)


def variants(steps: int | None = None, effort: str = "default") -> dict[str, Variant]:
    """The variants, around `effort`'s schedule (with `steps` steps instead, if given)."""
    base_schedule = encoder.SCHEDULES[effort]
    if steps is not None:
        base_schedule = replace(base_schedule, iterations=steps)
    base_arch = encoder.ARCHITECTURES[effort]
    return {
        "base": Variant(base_schedule, base_arch),
        "soft": Variant(replace(base_schedule, soft_rounding=(0.5, 0.2)), base_arch),
        "pretrained": Variant(replace(base_schedule, pretrained=True), base_arch),
        "synth48": Variant(base_schedule, replace(base_arch, synth_hidden=(48,))),
        "synth32x2": Variant(base_schedule, replace(base_arch, synth_hidden=(32, 32))),
        "long-slow": Variant(replace(base_schedule, iterations=4 * base_schedule.iterations, lr_latent=0.03),
                             base_arch),
    }


LEARNING_RATE_VARIANTS = {"fine": "lr_latent_finest", "latent": "lr_latent", "synth": "lr_synthesis",
                          "context": "lr_context", "ste": "ste_fraction", "floor": "lr_floor",
                          "warmup": "warmup", "clip": "grad_clip"}
BETA_VARIANTS = {"beta1": 0, "beta2": 1}  # index into Schedule.adam_betas


def hidden_widths(text: str) -> tuple[int, ...] | None:
    """Hidden layer widths written "8x8" or "12" (1 to 64 each); None if `text` is not that."""
    parts = text.split("x")
    if not text or not all(w.isdigit() and 1 <= int(w) <= 64 for w in parts):
        return None
    return tuple(int(w) for w in parts)


def variant(name: str, steps: int | None = None, effort: str = "default") -> Variant:
    """A named variant (see `variants`), or learning-rate ones joined by "+".

    "fine-<lr>" sets the full-resolution latents' rate, "latent-<lr>" every
    level's (the finest keeps its own if also given): "latent-0.15+fine-0.03".
    "ste-<fraction>", "floor-<fraction>", "beta1-<decay>", "beta2-<decay>",
    "crop-<pixels>", "warmup-<fraction>" and "clip-<multiple>" set the
    schedule's straight-through fraction, learning-rate floor, Adam decays,
    training crop, warm-up and gradient clipping.

    Raises:
        ValueError: for any other name.
    """
    known = variants(steps, effort)
    if name in known:
        return known[name]
    base = known["base"]
    changes: dict[str, object] = {}
    betas: dict[int, float] = {}  # Adam decays given, by index
    networks = None
    architecture = base.architecture
    for part in name.split("+"):
        if part.startswith("init="):
            networks = Path(part[len("init="):])
            if not networks.is_file():
                raise ValueError(f"variant {name!r}: no file {networks}")
            continue
        prefix, _, text = part.partition("-")
        if prefix == "arm" and (widths := hidden_widths(text)) is not None:
            architecture = replace(architecture, arm_hidden=widths)
            continue
        if prefix == "synthesis" and (widths := hidden_widths(text)) is not None:
            architecture = replace(architecture, synth_hidden=widths)
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if prefix == "crop" and value == int(value) and 16 <= value <= 4096:
            changes["crop"] = int(value)
        elif prefix == "steps" and value == int(value) and 1 <= value <= 10**6:
            changes["iterations"] = int(value)
        elif prefix in BETA_VARIANTS and 0 < value < 1:
            betas[BETA_VARIANTS[prefix]] = value
        elif prefix in LEARNING_RATE_VARIANTS and 0 < value < 10:
            changes[LEARNING_RATE_VARIANTS[prefix]] = value
        else:
            msg = (f"unknown variant {name!r}; known: {', '.join(known)}, fine-<lr>, latent-<lr>, synth-<lr>, "
                   "context-<lr>, ste-<f>, floor-<f>, beta1-<d>, beta2-<d>, crop-<px>, steps-<n>, arm-<w>x<w>, "
                   "synthesis-<w>x<w>, "
                   "warmup-<f>, clip-<m>, "
                   "init=<path>, joined by +")
            raise ValueError(msg)
    if betas:
        planned = base.schedule.planned_adam_betas(base.schedule.iterations)
        changes["adam_betas"] = tuple(betas.get(i, decay) for i, decay in enumerate(planned))
    return Variant(replace(base.schedule, **changes), architecture, networks)  # type: ignore[arg-type]


def fit_and_write(path: Path, variant: Variant, lmbda: float) -> dict[str, float]:
    """One fixed-lambda fit of `variant`, written and decoded: the file's bpp and PSNR, and the fit's figures."""
    pixels, _ = load_image(path)
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    torch.manual_seed(0)
    model = CocoNet(pixels.shape[0], pixels.shape[1], variant.architecture)
    if variant.networks is not None:
        load_networks_file(variant.networks, model)
    elif variant.schedule.pretrained:
        start_from_pretrained(model)
    fitter = Fitter(image, model, RateTarget(None, lmbda), seed=0)
    start = time.monotonic()
    fitter.run(variant.schedule)
    seconds = time.monotonic() - start
    data = encoder._quantize_and_write(model, image, lmbda, 0)
    return {
        "bpp": len(data) * 8 / (pixels.shape[0] * pixels.shape[1]),
        "psnr": encoder.decoded_psnr(pixels)(data),
        "latent_bpp": fitter.latent_bpp(),
        "level0_nonzero": float((model.quantized_latents("round")[0] != 0).float().mean()),
        "fit_s": seconds,
    }


def picks(images: Path, pick: str) -> list[tuple[Path, list[float]]]:
    """The images and lambdas of a --pick "name:lambda[:lambda...],...", all checked before any fit.

    Raises:
        SystemExit: an image not in `images`, or a lambda that is not a positive number.
    """
    by_stem = {p.stem: p for p in find_images(images)}
    chosen = []
    for item in pick.split(","):
        name, *texts = item.split(":")
        if name not in by_stem:
            raise SystemExit(f"no image {name!r} in {images}")
        try:
            lambdas = [float(text) for text in texts]
        except ValueError:
            lambdas = []
        if not lambdas or not all(0 < lmbda < math.inf for lmbda in lambdas):
            raise SystemExit(f"--pick {item!r}: name:lambda[:lambda...] with positive lambdas")
        chosen.append((by_stem[name], lambdas))
    return chosen


def pending(chosen: list[tuple[Path, list[float]]], labels: list[str], done: set[tuple[str, str, float]],
            ) -> Iterator[tuple[Path, float, str]]:
    """The (image, lambda, variant label) fits of a resumable sweep not yet in its CSV (`fitted`), in run order."""
    for image, lambdas in chosen:
        for lmbda in lambdas:
            for label in labels:
                if (image.name, label, lmbda) not in done:
                    yield image, lmbda, label


@dataclass
class FloatFit:
    """A fixed-lambda fit measured in float (`float_fit`)."""

    fitter: Fitter
    pixels: np.ndarray
    seconds: float
    steps: int


def float_fit(path: Path, new_net: Callable[[int, int], CocoNet], lmbda: float, steps: int | None) -> FloatFit:
    """Fit `new_net(height, width)` (built after seeding torch with 0) to an image at a fixed lambda.

    The default effort's schedule, or `steps` steps of it. Prototypes that
    no file can carry (`bench.synthesis_slopes`, `bench.conv_synthesis`)
    measure the result in float.
    """
    pixels, _ = load_image(path)
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    torch.manual_seed(0)
    model = new_net(pixels.shape[0], pixels.shape[1])
    schedule = encoder.SCHEDULES["default"]
    if steps is not None:
        schedule = replace(schedule, iterations=steps)
    fitter = Fitter(image, model, RateTarget(None, lmbda), seed=0)
    start = time.monotonic()
    fitter.run(schedule)
    return FloatFit(fitter, pixels, time.monotonic() - start, schedule.iterations)


def fitted(path: Path, variant_column: str = "variant") -> set[tuple[str, str, float]]:
    """The (image, variant, lambda) triples already in a resumable CSV (none if it does not exist)."""
    if not path.exists():
        return set()
    with path.open() as f:
        return {(r["image"], r[variant_column], float(r["lmbda"])) for r in csv.DictReader(f)}


def baseline_psnr_at(points: list[tuple[float, float]], bpp: float) -> tuple[float, bool]:
    """The baseline's PSNR at `bpp` on the line through its (bpp, PSNR) points in ln bpp; and whether outside them."""
    pts = sorted((math.log(b), p) for b, p in points)
    x = math.log(bpp)
    outside = x < pts[0][0] or x > pts[-1][0]
    i = min(max(np.searchsorted([p[0] for p in pts], x) - 1, 0), len(pts) - 2)
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0), outside


Row = dict[str, str]


def against_baseline(rows: list[Row], column: str, base: str,
                     rate_of: Callable[[Row], float]) -> tuple[list[tuple[Row, list[str]]], dict[str, list[float]]]:
    """Each fit against the baseline's line on its image (`baseline_psnr_at`).

    Rows are grouped by image, the baseline's (`column` == `base`) first,
    then by variant and lambda. Returns each row with its two cells (the
    baseline's PSNR at the row's rate and the difference, empty for the
    baseline and where it has fewer than two points), and the differences
    by variant.
    """
    shown: list[tuple[Row, list[str]]] = []
    differences: dict[str, list[float]] = {}
    for image in sorted({r["image"] for r in rows}):
        mine = [r for r in rows if r["image"] == image]
        line = [(rate_of(r), float(r["psnr"])) for r in mine if r[column] == base]
        for r in sorted(mine, key=lambda r: (r[column] != base, r[column], float(r["lmbda"]))):
            cells = ["", ""]
            if r[column] != base and len(line) >= 2:
                reference, outside = baseline_psnr_at(line, rate_of(r))
                difference = float(r["psnr"]) - reference
                differences.setdefault(r[column], []).append(difference)
                cells = [f"{reference:.2f}" + (" (outside)" if outside else ""), f"{difference:+.2f}"]
            shown.append((r, cells))
    return shown, differences


def mean_differences(label: str, differences: dict[str, list[float]], counted: str = "fits") -> list[str]:
    """The table of each variant's mean difference from the baseline (`against_baseline`)."""
    lines = ["", f"| {label} | {counted} | mean difference (dB) |", "|---|---|---|"]
    return lines + [f"| {name} | {len(values)} | {np.mean(values):+.2f} |" for name, values in sorted(differences.items())]


def summarize(out: Path) -> str:
    """fixed_lambda.md: every file, and each variant's mean difference from the baseline at its rate."""
    with (out / CSV_NAME).open() as f:
        rows = list(csv.DictReader(f))
    lines = [
        "# Training variants at fixed lambdas",
        "",
        f"Generated by `python -m bench.fixed_lambda` from {CSV_NAME}; {rows[0]['machine']}, "
        f"{rows[0]['torch_threads']} torch threads, {min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}.",
        "",
        "Each file's PSNR against the baseline's at the same bpp (the line through the baseline's",
        "points on that image in ln bpp; \"outside\": beyond them, extended from the nearest segment).",
        "",
        "| image | variant | lambda | steps | bpp | PSNR (dB) | baseline at that bpp | difference | "
        "full-res latents non-zero | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    shown, differences = against_baseline(rows, "variant", "base", lambda r: float(r["bpp"]))
    for r, cells in shown:
        lines.append(f"| {r['image']} | {r['variant']} | {r['lmbda']} | {r['steps']} | {float(r['bpp']):.4f} | "
                     f"{float(r['psnr']):.2f} | " + " | ".join(cells)
                     + f" | {float(r['level0_nonzero']):.1%} | {r['fit_s']} |")
    lines += mean_differences("variant", differences, counted="files")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True,
                        help="comma-separated name:lambda[:lambda...], e.g. kodim01:2.2e-3:1.5e-3")
    parser.add_argument("--variants", default="base,soft",
                        help=f"comma-separated, from {', '.join(variants())}, fine-<lr>, latent-<lr>")
    parser.add_argument("--steps", type=int, default=None,
                        help="the baseline's fit steps (default: the effort's; long-slow fits 4x)")
    parser.add_argument("--effort", choices=tuple(encoder.SCHEDULES), default="default",
                        help="whose schedule the variants change (default: %(default)s)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    chosen = args.variants.split(",")
    try:
        known = {name: variant(name, args.steps, args.effort) for name in chosen}
    except ValueError as error:
        raise SystemExit(str(error)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen_images = picks(args.images, args.pick)
    done = fitted(args.out / CSV_NAME)
    for path, lambdas in chosen_images:
        name = path.stem
        for label in chosen:
            for lmbda in lambdas:
                if (path.name, label, lmbda) in done:
                    continue
                result = fit_and_write(path, known[label], lmbda)
                append_csv_row(args.out / CSV_NAME, COLUMNS, {
                    "image": path.name, "variant": label, "lmbda": lmbda,
                    "steps": known[label].schedule.iterations,
                    "synth_hidden": "x".join(map(str, known[label].architecture.synth_hidden)),
                    "bpp": f"{result['bpp']:.5f}", "psnr": f"{result['psnr']:.3f}",
                    "latent_bpp": f"{result['latent_bpp']:.5f}", "level0_nonzero": f"{result['level0_nonzero']:.4f}",
                    "fit_s": f"{result['fit_s']:.1f}", "torch_threads": torch.get_num_threads(),
                    "machine": machine(), "date": utc_now(),
                })
                print(f"{name} {label} lambda {lmbda:g}: {result['bpp']:.4f} bpp, {result['psnr']:.2f} dB", flush=True)
    (args.out / "fixed_lambda.md").write_text(summarize(args.out))
    print(f"wrote {args.out / 'fixed_lambda.md'}")


if __name__ == "__main__":
    main()
