"""Time the quantization of a trained network (run after every fit and refit).

    python -m bench.quantize_time [--image PATH] [--steps 200] [--repeats 5] [--threads 2]

Fits the image for a few steps at a fixed lambda (fixed seed), then times
`quantize_model` (the per-tensor step search) and prints the median, the
chosen (weight, bias) exponents and the written file's size, so two trees
can be checked to choose the same.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from inrcodec.format.bitstream import write_coco
from inrcodec.imageio import load_image
from inrcodec.train.encoder import ARCHITECTURE, SCHEDULES
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet
from inrcodec.train.quantize import quantize_model

DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "samples" / "kodim03.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lmbda", type=float, default=4e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pixels, _ = load_image(args.image)
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    fitter = Fitter(image, CocoNet(pixels.shape[0], pixels.shape[1], ARCHITECTURE), RateTarget(None, args.lmbda), seed=0)
    fitter.run(replace(SCHEDULES["fast"], iterations=args.steps))
    seconds = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        qm = quantize_model(fitter.model, image, fitter.lmbda, seed=0)
        seconds.append(time.perf_counter() - t)
    exps = [(c.weight_exp, c.bias_exp) for c in qm.header.layers]
    size = len(write_coco(qm.header, qm.synthesis, qm.arm, qm.latents))
    print(f"{date.today()} {platform.processor() or platform.machine()} threads={args.threads} "
          f"image={args.image.name} steps={args.steps}: quantize_model {1000 * statistics.median(seconds):.0f} ms "
          f"(min {1000 * min(seconds):.0f}); exponents {exps}; {size} bytes")


if __name__ == "__main__":
    main()
