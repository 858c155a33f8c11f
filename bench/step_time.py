"""Time one training step of the encoder (the unit of encoding cost).

    python -m bench.step_time [--image PATH] [--steps 60] [--threads 2] [--compile] [--arm-hidden 8x8]
        [--synth-hidden 24x24] [--context-tile 64x32] [--bicubic]

Prints milliseconds per noise-mode step and per whole-image rate measurement,
medians over repeats, on the default architecture and crop, and the seconds
the warm-up took. `--arm-hidden` sizes the context model's hidden layers
(default: the encoder's), `--synth-hidden` the synthesis MLP's, `--context-tile WxH` puts the context model on format 2.0's
wavefront context in tiles of W x H cells, `--context-tile 0` on format 1.0's checkerboard
(default: the default effort's architecture; before 2026-12-03 it was the 1.0 base architecture).
`--bicubic` samples the latents with format 2.0's fixed bicubic taps instead of format 3.0's
learned upsampling (the default effort's since 2026-12-03; so does `--context-tile 0`).
`--compile` runs the step's tensor-only pieces
(the MLPs in columns, `model.mlp_columns`, and the Laplace bits,
`model.context_bits_columns`: the matrix products and most elementwise
work) through `torch.compile` with dynamic shapes (border windows are
smaller), to see whether the issue's "torch.compile where it pays on a CPU"
pays; its warm-up includes the compilation. Compiling the whole synthesis
and context model instead recompiled at nearly every window (the crop
offsets are Python integers) and hit dynamo's recompile limit.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.fixed_lambda import hidden_widths
from inrcodec.train import model as coconet
from inrcodec.train.encoder import ARCHITECTURES, SCHEDULES, schedule_on
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "samples" / "kodim03.png"


def hidden_widths_arg(text: str) -> tuple[int, ...]:
    """argparse type for --arm-hidden and --synth-hidden (`fixed_lambda.hidden_widths`)."""
    widths = hidden_widths(text)
    if widths is None:
        raise argparse.ArgumentTypeError(f"{text!r}: widths like 8x8 or 12, 1 to 64 each")
    return widths


def context_tile_arg(text: str) -> tuple[int, int] | tuple[()]:
    """argparse type for --context-tile: "WxH", or "0" for format 1.0's context (an empty tuple)."""
    if text == "0":
        return ()
    parts = text.split("x")
    if len(parts) != 2 or not all(p.isdigit() and 2 <= int(p) <= 128 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: a tile like 64x32 (2 to 128 each), or 0")
    return int(parts[0]), int(parts[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arm-hidden", type=hidden_widths_arg, default=None,
                        help="the context model's hidden widths, e.g. 8x8")
    parser.add_argument("--synth-hidden", type=hidden_widths_arg, default=None,
                        help="the synthesis MLP's hidden widths, e.g. 24x24")
    parser.add_argument("--context-tile", type=context_tile_arg, default=None,
                        help="format 2.0's wavefront context in tiles of WxH cells (0: format 1.0's checkerboard)")
    parser.add_argument("--bicubic", action="store_true", help="format 2.0's bicubic sampling, not learned upsampling")
    parser.add_argument("--compile", action="store_true", help="torch.compile the synthesis and the context model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    arch = ARCHITECTURES["default"]  # the default effort's: since 2026-12-03 on format 2.0's context
    if args.arm_hidden:
        arch = replace(arch, arm_hidden=args.arm_hidden)
    if args.synth_hidden:
        arch = replace(arch, synth_hidden=args.synth_hidden)
    if args.bicubic or args.context_tile == ():
        arch = replace(arch, learned_upsampling=False)
    if args.context_tile is not None:
        arch = replace(arch, context_tile=args.context_tile or None)
    model = CocoNet(pixels.shape[0], pixels.shape[1], arch)
    fitter = Fitter(image, model, RateTarget(None, 4e-3), seed=0)
    schedule = schedule_on(SCHEDULES["default"], arch)
    temperature = schedule.temperature(0.5)  # the default's noise-phase step (soft rounding when it has it)
    if args.compile:
        coconet.mlp_columns = torch.compile(coconet.mlp_columns, dynamic=True)
        coconet.context_bits_columns = torch.compile(coconet.context_bits_columns, dynamic=True)
    t = time.perf_counter()
    for _ in range(10):  # warm-up: allocator, taps (and compilation)
        fitter.step(schedule, 1.0, "noise", temperature)
    warm_up_s = time.perf_counter() - t
    step_ms, measure_ms = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.steps):
            fitter.step(schedule, 1.0, "noise", temperature)
        step_ms.append(1000 * (time.perf_counter() - t) / args.steps)
        t = time.perf_counter()
        fitter.latent_bpp()
        measure_ms.append(1000 * (time.perf_counter() - t))
    print(f"{date.today()} {platform.processor() or platform.machine()} threads={args.threads} "
          f"image={args.image.name} crop={schedule.crop} arm={'x'.join(map(str, arch.arm_hidden))} "
          f"synth={'x'.join(map(str, arch.synth_hidden))} context_tile={'x'.join(map(str, arch.context_tile or (0,)))}"
          f"{' learned-upsampling' if arch.learned_upsampling else ''}"
          f"{' compiled' if args.compile else ''}"
          f"{f' soft-rounding T={temperature:.3f}' if temperature is not None else ''}: "
          f"step {statistics.median(step_ms):.1f} ms, rate measurement {statistics.median(measure_ms):.1f} ms, "
          f"warm-up (10 steps) {warm_up_s:.1f} s")


if __name__ == "__main__":
    main()
