"""Pretrain the synthesis and context networks on other images: a starting point for every fit.

    python -m bench.pretrain_networks --images ../shared/data/set5 \
        --names baby,bird,butterfly,head,woman --lambdas 4e-4,1.5e-3,5e-3 \
        --steps 12000 --out bench/results/pretrain-<date>

Every fit starts its synthesis MLP and context model from random weights and
spends much of a short fit learning what any image teaches: how a latent
pyramid maps to colour, how latents are distributed around their parents.
Here one synthesis and one context model are fitted jointly to several
images at several lambdas (one latent pyramid per image and lambda, the
networks shared; each step draws a few of them and a random crop of each),
so the networks learn what is common to them. The images must not be the
ones the result is judged on: issue 4 judges on Kodak kodim01-12, so the
shipped networks were trained on Set5 (bench/results/pretrain-set5-2026-12-01).

Writes networks.json (the two networks' weights, float32 values as JSON
numbers, with the architecture and how they were made; no pickle) and
pretrain.csv (the loss along the way). `python -m bench.fixed_lambda
--variants init=<networks.json>` fits from them; copied to
`inrcodec/train/pretrained_networks.json` they are what fits whose schedule
says so start from (`inrcodec.train.pretrained`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from bench.results import append_csv_row, machine, utc_now
from bench.run import find_images
from inrcodec.imageio import load_image
from inrcodec.train import encoder
from inrcodec.train.fit import LR_FLOOR
from inrcodec.train.model import CocoNet, Window
from inrcodec.train.optim import Adam
from inrcodec.train.pretrained import network_state

COLUMNS = ("step", "loss", "psnr", "bits_per_pixel", "seconds")
LOG_EVERY = 250


def random_window(gen: np.random.Generator, height: int, width: int, crop: int) -> Window:
    """A crop clipped at the border, every pixel equally likely (as `Fitter._window`)."""
    r0 = int(gen.integers(1 - crop, height)) if crop < height else 0
    c0 = int(gen.integers(1 - crop, width)) if crop < width else 0
    return Window(max(0, r0), min(height, r0 + crop), max(0, c0), min(width, c0 + crop))


def crop_loss(model: CocoNet, image: torch.Tensor, win: Window, lmbda: float,
              crop: int) -> tuple[torch.Tensor, float, float]:
    """The fit's loss on one window with noisy latents: (loss, MSE, bits per pixel)."""
    q, q_rate = model.noisy_latents(win)
    rec = model.synthesize(q, win)
    target = image[win.r0 : win.r1, win.c0 : win.c1].reshape(-1, 3)
    mse = ((rec - target) ** 2).mean()
    bits, _ = model.latent_bits(q_rate, win)
    weight = win.n_pixels / (min(crop, model.height) * min(crop, model.width))
    return weight * (mse + lmbda * bits / win.n_pixels), float(mse.detach()), float(bits.detach()) / win.n_pixels


Pyramid = tuple[CocoNet, torch.Tensor, float]  # a model holding one image's latents, the image, its lambda


def shared_pyramids(images: dict[str, torch.Tensor], lambdas: list[float]) -> tuple[CocoNet, list[Pyramid]]:
    """One latent pyramid per image and lambda, all using the networks of the first model returned."""
    arch = encoder.ARCHITECTURES["default"]  # the networks a default-effort fit can start from
    shared = CocoNet(8, 8, arch)  # holds the networks every pyramid shares
    pyramids = []
    for name, image in images.items():
        for lmbda in lambdas:
            model = CocoNet(image.shape[0], image.shape[1], arch)
            model.synthesis, model.arm = shared.synthesis, shared.arm
            pyramids.append((model, image, lmbda))
    return shared, pyramids


def train(shared: CocoNet, pyramids: list[Pyramid], args: argparse.Namespace, gen: np.random.Generator,
          log: Path) -> None:
    """Fit the pyramids and the shared networks: each step a crop of `args.batch` pyramids, cosine-decayed Adam."""
    opt = Adam([[g for m, _, _ in pyramids for g in m.latents], shared.synthesis.parameters(),
                shared.arm.parameters()])
    batch = min(args.batch, len(pyramids))
    start = time.monotonic()
    sums = np.zeros(3)
    for step in range(args.steps):
        scale = LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group, rate in zip(opt.param_groups, (args.lr_latent, args.lr_networks, args.lr_networks)):
            group["lr"] = rate * scale
        opt.zero_grad()
        for index in gen.choice(len(pyramids), size=batch, replace=False):
            model, image, lmbda = pyramids[index]
            win = random_window(gen, model.height, model.width, args.crop)
            loss, mse, bpp = crop_loss(model, image, win, lmbda, args.crop)
            loss.backward()
            sums += (float(loss.detach()), mse, bpp)
        opt.step()
        if (step + 1) % LOG_EVERY == 0:
            mean_loss, mse, bpp = sums / (LOG_EVERY * batch)
            sums[:] = 0
            row = {"step": step + 1, "loss": f"{mean_loss:.6f}", "psnr": f"{-10 * math.log10(max(mse, 1e-10)):.2f}",
                   "bits_per_pixel": f"{bpp:.4f}", "seconds": f"{time.monotonic() - start:.0f}"}
            append_csv_row(log, COLUMNS, row)
            print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--names", required=True, help="comma-separated image stems to train on")
    parser.add_argument("--lambdas", default="4e-4,1.5e-3,5e-3")
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--batch", type=int, default=4, help="latent pyramids (image, lambda) per step")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--lr-latent", type=float, default=0.1)
    parser.add_argument("--lr-networks", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.manual_seed(args.seed)
    gen = np.random.default_rng(args.seed)
    by_stem = {p.stem: p for p in find_images(args.images)}
    names = args.names.split(",")
    missing = [n for n in names if n not in by_stem]
    if missing:
        raise SystemExit(f"no image {', '.join(missing)} in {args.images}")
    lambdas = [float(x) for x in args.lambdas.split(",")]
    images = {n: torch.tensor(load_image(by_stem[n])[0], dtype=torch.float32) / 255.0 for n in names}
    shared, pyramids = shared_pyramids(images, lambdas)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    train(shared, pyramids, args, gen, args.out / "pretrain.csv")
    arch = shared.arch
    payload = {
        "what": "inrcodec synthesis and context-model weights pretrained by bench.pretrain_networks",
        "architecture": {"n_levels": arch.n_levels, "synth_hidden": list(arch.synth_hidden),
                         "arm_hidden": list(arch.arm_hidden)},
        "trained_on": names, "lambdas": lambdas, "steps": args.steps, "batch": args.batch, "crop": args.crop,
        "lr_latent": args.lr_latent, "lr_networks": args.lr_networks, "seed": args.seed,
        "machine": machine(), "date": utc_now(),
        "networks": network_state(shared),
    }
    (args.out / "networks.json").write_text(json.dumps(payload))
    print(f"wrote {args.out / 'networks.json'} in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
