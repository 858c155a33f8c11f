"""Calibrate the rate model: which lambda lands a fit on its target rate.

    python -m bench.calibrate_rate --images ../shared/data/kodak --pick kodim01,kodim03,kodim05,kodim08,kodim12 \
        --bpps 0.25,0.5,1.0,1.5 --jobs 2 --out bench/results/rate-model-<date>

Each (image, bpp) runs the encoder's fit exactly as `inrcodec encode --bpp`
would (the --effort's schedule, the rate model in `inrcodec.train.fit`
aiming lambda at the probe, the steering), but stops before quantization and
landing. It records the rate
the model saw at the probe, the lambda the fit then held and the latent rate
it ended at. From the miss it infers the lambda that would have landed:

    lambda_needed = lambda_held * (final rate / target) ** (1 / elasticity)

(in the model's terms, i.e. before the halving that comes with dropping the
finest level). The elasticity is REFIT_ELASTICITY unless --elasticity says
otherwise: whole `--effort fast` fits answer lambda at ~0.9 (fixed-lambda
fits at two lambdas 2x apart, bench/results/fixed-lambda-fast-beta2-2026-12-01),
refits of long fits at ~0.6. It then fits
`ln lambda_needed = a + b ln(probe rate) + c ln(target) + d ln(probe MSE)`
by least squares (without d for rows that lack the MSE).

It also records the steering (`inrcodec.train.fit.STEER_AT`): the rate and
lambda at each checkpoint (steer_log, "fraction:rate:lambda;..."). From the
first checkpoint's rate and lambda it fits

    ln(final rate / rate at the first checkpoint) = g - e * (ln lambda moved by the steering)

(g: how far the rate fell on its own after the first checkpoint; e: how hard
it answered the moves) and gives the spread of the final rate around the target, which is
what the steering is for. And it fits a prior that needs no training at all,

    ln lambda_needed = a + b ln(target) + c ln(JPEG bpp of the image at quality 30)

with each image's residual when it is left out of the fit (the "Prior"
section; the JPEG sizes come from --images): a plain JPEG's size measures how
busy the image is. On kodim01-12 it predicted lambda needed better than the
probe's model (bench/results/rate-model-prior-2026-12-01), but neither
starting the fit from it (bench/results/kodak-prior-2026-12-01, -0.14 dB)
nor aiming the probe with it (bench/results/kodak-prior-probe-2026-12-01,
-0.02 dB) did much for the files: the steering already lands the rate.

With the rate at the probe added to the prior's terms it also fits what a
schedule's own rate model would read,

    ln lambda_needed = a + b ln(probe rate) + c ln(target) + e ln(JPEG bpp)

(the "Own rate model" section): on `--effort fast`'s fits of format 3.0 it
left 0.23 in ln lambda where the probe's model left 0.58 and the prior 0.33,
but steering fits with it did not pay end to end
(bench/results/fast-soft-v3-2026-12-06).

Rows go to calibration.csv (resumable); rate_model.md gives the fitted
coefficients, their residuals and the landing error each implies. The closer
the model used for the runs already is, the less the elasticity approximation
matters: run it again after adopting new coefficients.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.results import append_csv_row, machine, read_csv, utc_now
from bench.run import find_images
from inrcodec.train.complexity import JPEG_QUALITY, jpeg_bpp

CSV_NAME = "calibration.csv"
COLUMNS = ("image", "bpp", "iterations", "target_latent_bpp", "lambda_start", "probe_rate", "probe_mse", "lambda_held",
           "dropped_finest", "final_latent_bpp", "lambda_needed", "probe_lambda", "steer_rate", "steer_log", "fit_s",
           "torch_threads", "machine", "date")


def needed_lambda(held: float, final_rate: float, target_rate: float, dropped: bool, elasticity: float) -> float:
    """The lambda that would have landed the fit, in the rate model's terms (before a drop's halving)."""
    from inrcodec.train.fit import DROP_LAMBDA_FACTOR

    needed = held * (max(final_rate, 1e-6) / target_rate) ** (1 / elasticity)
    return needed / DROP_LAMBDA_FACTOR if dropped else needed


def with_elasticity(rows: list[dict[str, str]], elasticity: float) -> list[dict[str, str]]:
    """The rows with lambda_needed inferred again at `elasticity` (rows without the raw columns stay)."""
    out = []
    for row in rows:
        if row.get("lambda_held") and row.get("final_latent_bpp") and row.get("dropped_finest", "") != "":
            needed = needed_lambda(float(row["lambda_held"]), float(row["final_latent_bpp"]),
                                   float(row["target_latent_bpp"]), bool(int(row["dropped_finest"])), elasticity)
            row = {**row, "lambda_needed": f"{needed:.6g}"}
        out.append(row)
    return out


def _calibration_run(image: Path, bpp: float, iterations: int | None, effort: str,
                     elasticity: float) -> dict[str, object]:
    from dataclasses import replace

    from inrcodec.train import encoder
    from inrcodec.train.fit import Fitter

    torch.set_num_threads(1)
    pixels = np.asarray(Image.open(image).convert("RGB"))
    height, width, _ = pixels.shape
    schedule = encoder.schedule_for(effort, bpp)  # type: ignore[arg-type]
    if iterations is not None:
        schedule = replace(schedule, iterations=iterations)
    arch = encoder.ARCHITECTURES[effort]
    target = encoder.rate_target(bpp, height * width, arch)
    torch.manual_seed(0)
    fitter = Fitter(torch.tensor(pixels, dtype=torch.float32) / 255.0,
                    encoder.new_model(height, width, schedule, arch), target, seed=0)
    start = time.monotonic()
    fitter.run(schedule)
    seconds = time.monotonic() - start
    final = fitter.latent_bpp()
    dropped = fitter.model.first_level > 0
    assert target.latent_bpp is not None
    needed = needed_lambda(fitter.lmbda, final, target.latent_bpp, dropped, elasticity)
    return {
        "image": image.name, "bpp": bpp, "iterations": schedule.iterations,
        "target_latent_bpp": f"{target.latent_bpp:.6g}", "lambda_start": f"{target.lmbda:.6g}",
        "probe_rate": f"{fitter.probe_rate:.6g}",
        "probe_mse": f"{fitter.probe_mse:.6g}", "lambda_held": f"{fitter.lmbda:.6g}", "dropped_finest": int(dropped),
        "final_latent_bpp": f"{final:.6g}", "lambda_needed": f"{needed:.6g}",
        "probe_lambda": f"{fitter.steer_log[0][2]:.6g}", "steer_rate": f"{fitter.steer_log[0][1]:.6g}",
        "steer_log": ";".join(f"{at:.2f}:{rate:.4g}:{lam:.4g}" for at, rate, lam in fitter.steer_log),
        "fit_s": f"{seconds:.1f}",
        "torch_threads": 1, "machine": machine(), "date": utc_now(),
    }


def features(row: dict[str, str]) -> list[float]:
    """The rate model's regressors: 1, ln probe rate, ln target, and ln probe MSE where recorded."""
    out = [1.0, math.log(float(row["probe_rate"])), math.log(float(row["target_latent_bpp"]))]
    if row.get("probe_mse"):  # absent in the first calibration (bench/results/rate-model-2026-11-24)
        out.append(math.log(float(row["probe_mse"])))
    return out


def fit_model(rows: list[dict[str, str]]) -> tuple[list[float], list[float]]:
    """Least-squares coefficients of ln lambda_needed on `features`; and the residuals."""
    x = np.array([features(r) for r in rows])
    y = log_lambda_needed(rows)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return [float(c) for c in coef], [float(e) for e in y - x @ coef]


def log_lambda_needed(rows: list[dict[str, str]]) -> np.ndarray:
    """ln lambda_needed of each row: what every model here is fitted to."""
    return np.array([math.log(float(r["lambda_needed"])) for r in rows])


def _first_checkpoint_rate(row: dict[str, str]) -> str:
    """The rate at the first steering checkpoint ("reaim_rate" in rate-model-2026-11-29c, one checkpoint then)."""
    return row.get("steer_rate") or row.get("reaim_rate") or ""


def fit_steer_model(rows: list[dict[str, str]]) -> tuple[float, float, list[float]]:
    """Least-squares (g, e) of the steering's rate response (see the module docstring); and the residuals in ln rate.

    The slope is only as good as the spread of the moves made; the summary
    reports that spread next to it.
    """
    moves = np.array([math.log(float(r["lambda_held"]) / float(r["probe_lambda"])) for r in rows])
    decays = np.array([math.log(float(r["final_latent_bpp"]) / float(_first_checkpoint_rate(r))) for r in rows])
    x = np.stack([np.ones_like(moves), -moves], axis=1)
    (g, e), *_ = np.linalg.lstsq(x, decays, rcond=None)
    return float(g), float(e), [float(v) for v in decays - x @ np.array([g, e])]


def _steer_lines(rows: list[dict[str, str]]) -> list[str]:
    rows = [r for r in rows if _first_checkpoint_rate(r)]  # absent before steering (calibrations up to 2026-11-29b)
    if len(rows) < 3:
        return []
    g, e, residuals = fit_steer_model(rows)
    moves = [math.log(float(r["lambda_held"]) / float(r["probe_lambda"])) for r in rows]
    landing = [math.log(float(r["final_latent_bpp"]) / float(r["target_latent_bpp"])) for r in rows]
    return [
        "",
        "## Steering",
        "",
        f"Fitted on {len(rows)} rows: `ln(final rate / rate at the first checkpoint) = {g:.3f} "
        f"{'-' if e >= 0 else '+'} {abs(e):.3f} * (ln lambda moved)`; residual sd "
        f"{statistics.pstdev(residuals):.3f} in ln rate. Moves made: "
        f"{min(moves):+.2f} .. {max(moves):+.2f} in ln lambda.",
        "",
        f"Final latent rate / target over these fits: sd {statistics.pstdev(landing):.3f} in ln rate, "
        f"mean {statistics.fmean(landing):+.3f}, worst {max(landing, key=abs):+.3f}.",
    ]


def fit_prior(rows: list[dict[str, str]], complexity: dict[str, float],
              with_probe: bool = False) -> tuple[list[float], list[float], list[float]]:
    """Least-squares (a, b, c) of the prior (see the module docstring); its residuals, and each image's left out of its fit.

    `complexity`: `jpeg_bpp` per image name. The left-out residuals
    (each image predicted by a model fitted on the others) are what a new
    image can expect. `with_probe`: the rate at the probe too, as a
    schedule's own rate model would read it (see the module docstring):
    coefficients (a, b, c, e) of 1, ln probe rate, ln target, ln JPEG bpp.
    """
    x = np.array([[1.0, *([math.log(float(r["probe_rate"]))] if with_probe else []),
                   math.log(float(r["target_latent_bpp"])), math.log(complexity[r["image"]])] for r in rows])
    y = log_lambda_needed(rows)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    names = np.array([r["image"] for r in rows])
    left_out = np.zeros_like(y)
    for name in set(names):
        keep = names != name
        if keep.sum() >= x.shape[1]:
            own, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
            left_out[~keep] = y[~keep] - x[~keep] @ own
        else:
            left_out[~keep] = math.nan
    return [float(c) for c in coef], [float(e) for e in y - x @ coef], [float(e) for e in left_out]


def _prior_lines(rows: list[dict[str, str]], images: Path | None) -> list[str]:
    from inrcodec.train import fit

    if images is None:
        return []
    complexity = {}
    for name in {r["image"] for r in rows}:
        path = images / name
        if not path.exists():
            return ["", "## Prior", "", f"Not fitted: {path} is missing."]
        complexity[name] = jpeg_bpp(np.asarray(Image.open(path).convert("RGB")))
    coef, residuals, left_out = fit_prior(rows, complexity)
    generic = [float(n) - math.log(fit.initial_lambda(float(r["bpp"]))) for n, r in zip(log_lambda_needed(rows), rows)]
    return [
        "",
        "## Prior",
        "",
        f"Fitted on these rows: `ln lambda = {coef[0]:.3f} + {coef[1]:.3f} "
        f"ln(target latent bpp) + {coef[2]:.3f} ln(JPEG bpp at quality {JPEG_QUALITY})`.",
        "",
        f"Residual sd {statistics.pstdev(residuals):.3f} in ln lambda; with each image left out of the fit "
        f"that predicts it, {statistics.pstdev([e for e in left_out if not math.isnan(e)]):.3f}. The generic "
        f"start (`fit.initial_lambda`) misses lambda needed by sd {statistics.pstdev(generic):.3f} "
        f"(mean {statistics.fmean(generic):+.3f}).",
        "",
        "| image | JPEG bpp | mean residual (ln) | left out (ln) |",
        "|---|---|---|---|",
        *(f"| {name} | {complexity[name]:.3f} | "
          f"{statistics.fmean(e for e, r in zip(residuals, rows) if r['image'] == name):+.2f} | "
          f"{statistics.fmean(e for e, r in zip(left_out, rows) if r['image'] == name):+.2f} |"
          for name in sorted(complexity)),
        *_own_model_lines(rows, complexity),
    ]


def _own_model_lines(rows: list[dict[str, str]], complexity: dict[str, float]) -> list[str]:
    """The prior with the probe's rate: a schedule's own rate model (see the module docstring)."""
    coef, residuals, left_out = fit_prior(rows, complexity, with_probe=True)
    return [
        "",
        "## Own rate model (the prior with the rate at the probe)",
        "",
        f"Fitted on these rows: `ln lambda = {coef[0]:.3f} + {coef[1]:.3f} ln(probe rate) + {coef[2]:.3f} "
        f"ln(target latent bpp) + {coef[3]:.3f} ln(JPEG bpp at quality {JPEG_QUALITY})` "
        f"(own_rate_model = ({', '.join(f'{c:.3f}' for c in coef)})).",
        "",
        f"Residual sd {statistics.pstdev(residuals):.3f} in ln lambda; with each image left out of the fit "
        f"that predicts it, {statistics.pstdev([e for e in left_out if not math.isnan(e)]):.3f}.",
    ]


def write_summary(out: Path, elasticity: float, images: Path | None = None) -> None:
    """The fitted models and their residuals, from the CSV (and, for the prior, the images)."""
    rows = with_elasticity(read_csv(out / CSV_NAME), elasticity)
    coef, residuals = fit_model(rows)
    lines = [
        "# Rate model calibration",
        "",
        f"Generated by `python -m bench.calibrate_rate` from {CSV_NAME} ({len(rows)} fits of "
        f"{rows[0]['iterations']} steps, 1 torch thread each; lambda needed inferred at elasticity "
        f"{elasticity}). Machine: {rows[0]['machine']}; rows dated "
        f"{min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}.",
        "",
        f"Fitted: `ln lambda = {coef[0]:.3f} + {coef[1]:.3f} ln(probe rate) + {coef[2]:.3f} ln(target latent bpp)"
        + (f" + {coef[3]:.3f} ln(probe MSE)`" if len(coef) > 3 else "`"),
        f"(RATE_MODEL = ({', '.join(f'{c:.2f}' for c in coef)})).",
        "",
        f"Residual sd: {statistics.pstdev(residuals):.3f} in ln lambda, i.e. about "
        f"{100 * (math.exp(elasticity * statistics.pstdev(residuals)) - 1):.0f} % in rate at elasticity {elasticity}.",
        "",
        "| image | bpp | probe rate | lambda held | final latent bpp / target | lambda needed | residual (ln) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, res in zip(rows, residuals):
        ratio = float(row["final_latent_bpp"]) / float(row["target_latent_bpp"])
        lines.append(f"| {row['image']} | {row['bpp']} | {float(row['probe_rate']):.3f} | "
                     f"{float(row['lambda_held']):.2e} | {ratio:.2f} | {float(row['lambda_needed']):.2e} | {res:+.2f} |")
    lines += _steer_lines(rows)
    lines += _prior_lines(rows, images)
    (out / "rate_model.md").write_text("\n".join(lines) + "\n")


def _done(path: Path) -> set[tuple[str, float]]:
    if not path.exists():
        return set()
    with path.open(newline="") as f:
        return {(row["image"], float(row["bpp"])) for row in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> None:
    from inrcodec.train.encoder import REFIT_ELASTICITY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--pick", default=None, help="comma-separated image stems (default: all)")
    parser.add_argument("--bpps", default="0.25,0.5,1.0,1.5")
    parser.add_argument("--effort", default="default", choices=("fast", "default", "max"),
                        help="the schedule fitted (default: the default effort's)")
    parser.add_argument("--iterations", type=int, default=None, help="override the effort's steps (tests)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--elasticity", type=float, default=REFIT_ELASTICITY,
                        help="-d ln(rate) / d ln(lambda) assumed to infer the lambda needed (default: the refits')")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    images = find_images(args.images)
    if args.pick:
        wanted = set(args.pick.split(","))
        images = [p for p in images if p.stem in wanted]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / CSV_NAME
    done = _done(path)
    tasks = [(image, float(b)) for b in args.bpps.split(",") for image in images if (image.name, float(b)) not in done]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_calibration_run, image, bpp, args.iterations, args.effort, args.elasticity)
                   for image, bpp in tasks]
        for future in futures:
            row = future.result()
            append_csv_row(path, COLUMNS, row)
            print(f"{row['image']} {row['bpp']} bpp: probe {row['probe_rate']}, lambda {row['lambda_held']} -> "
                  f"{row['final_latent_bpp']} (target {row['target_latent_bpp']}), needed {row['lambda_needed']}",
                  flush=True)
    write_summary(args.out, args.elasticity, args.images)


if __name__ == "__main__":
    main()
