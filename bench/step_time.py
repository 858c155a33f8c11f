"""Time one training step of the encoder (the unit of encoding cost).

    python -m bench.step_time [--image PATH] [--steps 60] [--threads 2]

Prints milliseconds per noise-mode step and per whole-image rate measurement,
medians over repeats, on the default architecture and crop.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inrcodec.train.encoder import ARCHITECTURE, SCHEDULES
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "samples" / "kodim03.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    model = CocoNet(pixels.shape[0], pixels.shape[1], ARCHITECTURE)
    fitter = Fitter(image, model, RateTarget(None, 4e-3), seed=0)
    schedule = SCHEDULES["default"]
    for _ in range(10):  # warm-up: allocator, taps
        fitter.step(schedule, 1.0, "noise")
    step_ms, measure_ms = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.steps):
            fitter.step(schedule, 1.0, "noise")
        step_ms.append(1000 * (time.perf_counter() - t) / args.steps)
        t = time.perf_counter()
        fitter.latent_bpp()
        measure_ms.append(1000 * (time.perf_counter() - t))
    print(f"{date.today()} {platform.processor() or platform.machine()} threads={args.threads} "
          f"image={args.image.name} crop={schedule.crop}: "
          f"step {statistics.median(step_ms):.1f} ms, rate measurement {statistics.median(measure_ms):.1f} ms")


if __name__ == "__main__":
    main()
