"""Trace one encode's rate landing: every training run and every file it writes.

    python -m bench.landing_trace --image PATH --bpp 0.5 [--effort fast] [--time-limit S] [--seed N]
        [--set FIELD=VALUE ...]

Prints one line per fit or refit (steps, lambda after it, seconds) and per
file written (bpp, PSNR of its decoded pixels, first latent level, dead
zone), then the file the encoder returned. Inside the fit, a line per
probe and steering checkpoint (the step, the latent rate it measured,
lambda before and after, the first latent level after: a level dropped
there shows), above the fit's own line. This is what the ad-hoc traces
behind `encoder._land_rate`'s constants looked at. Scoring each file decodes
it (~0.3 s on a Kodak image), so the encode takes that much longer than
untraced; the files and the returned one are the same as untraced.

`--set FIELD=VALUE` (repeatable) changes a field of the schedule the fit
runs (`fit.Schedule`; VALUE a number, `none`, or numbers joined by commas
for a tuple), e.g. `--set soft_rounding=none` traces the default effort's
plain-noise fit, the second of its pair below 0.15 bpp or under a time
limit short of 120 s (with one thread an encode fits only the first);
from 0.15 bpp (`encoder.FIRM_LANDING_BPP`), untimed or under a limit of
120 s or more (`encoder.GENEROUS_TIME_LIMIT`), the second is the first
with the seed plus one (`--seed 1`, `encoder.default_candidates`). Only
the effort's own candidates change, not `schedule_on`'s format 1.0 rule.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.results import machine
from inrcodec.imageio import load_image
from inrcodec.train import encoder
from inrcodec.train.fit import Fitter, ProgressFn, Schedule
from inrcodec.train.shrink import n_moved


@contextmanager
def traced(pixels: np.ndarray, lines: list[str]) -> Iterator[None]:
    """Record every `Fitter.run`, probe, steering and file (`encoder._quantize_and_write`) into `lines`."""
    run, write = Fitter.run, encoder._quantize_and_write
    probe, steer = Fitter.probe, Fitter.steer
    n_pixels = pixels.shape[0] * pixels.shape[1]
    psnr_of = encoder.decoded_psnr(pixels)

    def lambda_move(self: Fitter, what: str, move: Callable[[], None]) -> None:
        before = self.lmbda
        move()
        rate = "-" if self.rate is None else f"{self.rate:.4f}"
        lines.append(f"  {what:5s} at step {self.steps:5d}  latent bpp {rate}  lambda {before:.3e} -> "
                     f"{self.lmbda:.3e}  first level {self.model.first_level}")

    def traced_probe(self: Fitter, confidence: float = 1.0,
                     own_model: tuple[float, float, float, float] | None = None) -> None:
        lambda_move(self, "probe", lambda: probe(self, confidence, own_model))

    def traced_steer(self: Fitter, fraction_done: float, strength: float = 1.0,
                     timed_gain: float | None = None, may_drop: bool = True) -> None:
        lambda_move(self, "steer", lambda: steer(self, fraction_done, strength, timed_gain, may_drop))

    def traced_run(self: Fitter, schedule: Schedule, progress: ProgressFn | None = None,
                   deadline: float | None = None, phase: str = "fit", lr_peak: float = 1.0) -> int:
        start = time.monotonic()
        steps = run(self, schedule, progress, deadline, phase, lr_peak)
        lines.append(f"{phase:5s} {steps:5d} steps  lambda {self.lmbda:.3e}  {time.monotonic() - start:6.1f} s")
        return steps

    def traced_write(model: Any, *args: Any) -> bytes:
        start = time.monotonic()
        data = write(model, *args)
        seconds = time.monotonic() - start
        moved = n_moved(model.shrink)
        lines.append(f"file  {len(data) * 8 / n_pixels:.4f} bpp  {psnr_of(data):.2f} dB  "
                     f"first level {model.first_level}  dead zone {model.dead_zone:.3f}  "
                     f"moved {moved:6d}  {seconds:4.1f} s")
        return data

    Fitter.run, encoder._quantize_and_write = traced_run, traced_write  # type: ignore[method-assign]
    Fitter.probe, Fitter.steer = traced_probe, traced_steer  # type: ignore[method-assign]
    try:
        yield
    finally:
        Fitter.run, encoder._quantize_and_write = run, write  # type: ignore[method-assign]
        Fitter.probe, Fitter.steer = probe, steer  # type: ignore[method-assign]


@contextmanager
def schedule_changed(changes: dict[str, Any]) -> Iterator[None]:
    """Every schedule the effort picks (`encoder.schedule_for`) with `changes` applied."""
    schedule_for = encoder.schedule_for

    def changed(effort: encoder.Effort, bpp: float | None) -> Schedule:
        return replace(schedule_for(effort, bpp), **changes)

    encoder.schedule_for = changed  # type: ignore[assignment]
    try:
        yield
    finally:
        encoder.schedule_for = schedule_for  # type: ignore[assignment]


def schedule_change(text: str) -> tuple[str, Any]:
    """argparse type for --set: FIELD=VALUE, VALUE a number, `none`, or numbers joined by commas (a tuple)."""
    name, _, value = text.partition("=")
    if name not in {f.name for f in fields(Schedule)} or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: FIELD=VALUE with FIELD one of Schedule's fields")
    if value.lower() == "none":
        return name, None
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    try:
        numbers = [int(v) if v.lstrip("-").isdigit() else float(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: VALUE must be a number, none, true/false or numbers a,b")
    return name, tuple(numbers) if len(numbers) > 1 else numbers[0]


def trace(pixels: np.ndarray, options: encoder.EncodeOptions,
          changes: dict[str, Any] | None = None) -> tuple[list[str], encoder.EncodeResult]:
    """The trace lines of one encode and its result, its schedules changed by `changes`."""
    lines: list[str] = []
    with traced(pixels, lines), schedule_changed(changes or {}):
        result = encoder.encode_array(pixels, options)
    return lines, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--bpp", type=float, required=True)
    parser.add_argument("--effort", choices=["fast", "default", "max"], default="fast")
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the encoder's seed (`inrcodec encode --seed`)")
    parser.add_argument("--set", type=schedule_change, action="append", default=[], metavar="FIELD=VALUE",
                        help="change a field of the fit's schedule (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pixels, _ = load_image(args.image)
    options = encoder.EncodeOptions(bpp=args.bpp, effort=args.effort, time_limit=args.time_limit, seed=args.seed)
    lines, result = trace(pixels, options, dict(args.set))
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"{args.image.name} at {args.bpp} bpp, --effort {args.effort}"
          + (f", --time-limit {args.time_limit}" if args.time_limit else "")
          + (f", --seed {args.seed}" if args.seed else "")
          + "".join(f", --set {name}={value}" for name, value in args.set)
          + f"; {machine()}, {args.threads} threads, {when}")
    print("\n".join(lines))
    print(f"kept  {result.bpp:.4f} bpp  {result.psnr:.2f} dB  {result.iterations} steps  {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
