"""How many latent bits would a richer context model save? (a question for format 2.0)

    python -m bench.context_headroom --images ../shared/data/kodak --pick kodim01:4e-3,kodim03:1e-3,kodim05:4e-3 \
        --out bench/results/context-headroom-<date>

For each image, one fit at a fixed lambda (the default effort's schedule,
4200 steps, as `inrcodec encode --lmbda` trains). Its latents are then held
fixed, rounded, and fresh context models of several kinds are trained on
them alone (Adam, cosine decay, minibatches of all the pyramid's cells) to
minimise the latents' bits under the Laplace of format 1.0. The bits each
reaches say how much rate a context is worth on latents that were trained
for another one: a lower bound on what training with it would give, since
the latents did not adapt. The scheme of format 1.0 retrained the same way is
the reference, so the post-hoc training's own shortfall cancels.

Contexts (all see the 3x3 neighbourhood of the parent cell):
    two-phase     format 1.0: anchors (x + y even) nothing more; the others
                  their N, S, W, E (all anchors) and a phase flag.
    four-phase    cells (0,0), (1,1), (0,1), (1,0) of each 2x2 block in four
                  steps; each sees its 8 neighbours of earlier steps
                  ((1,1): the 4 diagonals; (0,1): N, S, W, E; (1,0): all 8)
                  and a one-hot step.
    raster        one cell at a time in raster order (what Cool-chic's
                  auto-regressive model sees): the 12 causal neighbours
                  within 2 cells. A bound, not a candidate: it decodes one
                  cell per range-coder call.
Each with format 1.0's hidden widths (16x16) and wider ones (24x24), whose
extra weights the file would carry too (n_weights in the CSV).

Rows go to headroom.csv (resumable per image); headroom.md gives each
scheme's latent rate relative to the two-phase reference.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.results import append_csv_row, machine, utc_now
from bench.run import find_images
from inrcodec.train.context import context_features
from inrcodec.imageio import load_image
from inrcodec.train import encoder
from inrcodec.train.fit import Fitter, RateTarget
from inrcodec.train.model import CocoNet, context_bits, make_mlp

CSV_NAME = "headroom.csv"
COLUMNS = ("image", "lmbda", "fit_steps", "fit_latent_bpp", "fit_psnr", "scheme", "hidden", "n_weights", "latent_bpp",
           "relative_to_two_phase", "level_bpps", "context_steps", "fit_s", "torch_threads", "machine", "date")
SCHEMES = ("two-phase", "four-phase", "raster")
HIDDEN = ((16, 16), (24, 24))
CONTEXT_STEPS = 600
BATCH = 1 << 17
LEARNING_RATE = 1e-2
PARENT_FEATURES = 9  # format 1.0's first features: the parent cell's 3x3 neighbourhood


def _shifted(grid: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Value of cell (y + dy, x + dx) at (y, x), zero outside the grid."""
    h, w = grid.shape
    padded = F.pad(grid, (2, 2, 2, 2))
    return padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]


def _step_of(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Four-phase decoding step of cells (y, x): (0,0) -> 0, (1,1) -> 1, (0,1) -> 2, (1,0) -> 3."""
    a, b = y % 2, x % 2
    return torch.where((a == 0) & (b == 0), 0, torch.where((a == 1) & (b == 1), 1, torch.where(a == 0, 2, 3)))


def context_rows(scheme: str, grid: torch.Tensor, parent: torch.Tensor | None) -> torch.Tensor:
    """[cells, features] context of every cell of one level under `scheme`, raster order.

    Every scheme starts from format 1.0's parent features (`context_features`);
    "two-phase" is format 1.0's context itself.
    """
    reference = context_features(grid, parent)
    if scheme == "two-phase":
        return reference
    h, w = grid.shape
    y = torch.arange(h)[:, None].expand(h, w)
    x = torch.arange(w)[None, :].expand(h, w)
    if scheme == "four-phase":
        step = _step_of(y, x)
        feats = [_shifted(grid, dy, dx) * (_step_of(y + dy, x + dx) < step).float()
                 for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))]
        feats += [(step == k).float() for k in range(4)]
    elif scheme == "raster":
        feats = [_shifted(grid, dy, dx) for dy in (-2, -1) for dx in range(-2, 3)]
        feats += [_shifted(grid, 0, -2), _shifted(grid, 0, -1)]
    else:
        raise ValueError(f"unknown scheme {scheme!r}")
    return torch.cat([reference[:, :PARENT_FEATURES], torch.stack([f.reshape(-1) for f in feats], dim=1)], dim=1)


def train_context(scheme: str, hidden: tuple[int, ...], latents: list[torch.Tensor],
                  steps: int = CONTEXT_STEPS, seed: int = 0) -> tuple[list[float], int]:
    """Train a context model of `scheme` on fixed integer latents; bits per level and its weight count."""
    rows = [context_rows(scheme, g, latents[i + 1] if i + 1 < len(latents) else None) for i, g in enumerate(latents)]
    sizes = [r.shape[0] for r in rows]
    feats, values = torch.cat(rows), torch.cat([g.reshape(-1) for g in latents])
    torch.manual_seed(seed)
    model = make_mlp([feats.shape[1], *hidden, 2])
    with torch.no_grad():  # a broad start, as the encoder's context model has
        model[-1].bias.copy_(torch.tensor([0.0, 1.0]))
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = LEARNING_RATE * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        pick = torch.randint(0, len(values), (min(BATCH, len(values)),))
        loss = context_bits(values[pick], model(feats[pick])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        bits = context_bits(values, model(feats))
    return [float(b.sum()) for b in bits.split(sizes)], sum(p.numel() for p in model.parameters())


def fit_latents(path: Path, lmbda: float, steps: int) -> tuple[list[torch.Tensor], float, float, float]:
    """A fixed-lambda fit of the default effort's schedule: rounded latents, latent bpp, PSNR, seconds."""
    pixels, _ = load_image(path)
    image = torch.tensor(pixels, dtype=torch.float32) / 255.0
    torch.manual_seed(0)
    model = CocoNet(pixels.shape[0], pixels.shape[1], encoder.ARCHITECTURE)
    fitter = Fitter(image, model, RateTarget(None, lmbda), seed=0)
    start = time.monotonic()
    # The default's schedule as an encode runs it on this architecture (format 1.0's context: plain noise).
    fitter.run(replace(encoder.schedule_on(encoder.SCHEDULES["default"], encoder.ARCHITECTURE), iterations=steps))
    seconds = time.monotonic() - start
    latents = [g.detach().clone() for g in model.quantized_latents("round")]
    return latents, fitter.latent_bpp(), -10 * math.log10(max(fitter.image_mse(), 1e-10)), seconds


def _done(out: Path) -> set[str]:
    path = out / CSV_NAME
    if not path.exists():
        return set()
    with path.open() as f:
        return {row["image"] for row in csv.DictReader(f)}


def measure(path: Path, lmbda: float, steps: int, out: Path) -> None:
    latents, fit_bpp, fit_psnr, fit_s = fit_latents(path, lmbda, steps)
    n_pixels = latents[0].numel()
    results = []
    for scheme in SCHEMES:
        for hidden in HIDDEN:
            level_bits, n_weights = train_context(scheme, hidden, latents)
            results.append((scheme, hidden, n_weights, [b / n_pixels for b in level_bits]))
    reference = {hidden: sum(bpps) for scheme, hidden, _, bpps in results if scheme == "two-phase"}
    for scheme, hidden, n_weights, bpps in results:
        append_csv_row(out / CSV_NAME, COLUMNS, {
            "image": path.name, "lmbda": lmbda, "fit_steps": steps, "fit_latent_bpp": f"{fit_bpp:.5f}",
            "fit_psnr": f"{fit_psnr:.3f}", "scheme": scheme, "hidden": "x".join(map(str, hidden)),
            "n_weights": n_weights, "latent_bpp": f"{sum(bpps):.5f}",
            "relative_to_two_phase": f"{sum(bpps) / reference[HIDDEN[0]] - 1:+.4f}",
            "level_bpps": " ".join(f"{b:.4f}" for b in bpps), "context_steps": CONTEXT_STEPS,
            "fit_s": f"{fit_s:.1f}", "torch_threads": torch.get_num_threads(), "machine": machine(), "date": utc_now(),
        })
        print(f"{path.name} {scheme} {hidden}: {sum(bpps):.4f} latent bpp "
              f"({sum(bpps) / reference[HIDDEN[0]] - 1:+.1%} against two-phase 16x16)", flush=True)


def summarize(out: Path) -> str:
    """headroom.md: per scheme and width, the latent rate against two-phase 16x16, per image and mean."""
    with (out / CSV_NAME).open() as f:
        rows = list(csv.DictReader(f))
    images = sorted({r["image"] for r in rows})
    lines = [
        "# Context-model headroom (post-hoc, fixed latents)",
        "",
        f"Generated by `python -m bench.context_headroom` from {CSV_NAME}; {rows[0]['machine']}, "
        f"{min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}.",
        "",
        "Latent rate reached by a fresh context model trained on each fit's rounded latents, relative to",
        "format 1.0's two-phase context (16x16) trained the same way. The bits of the context model's own",
        "weights (the weights column) are not included.",
        "",
        "| scheme | hidden | weights | " + " | ".join(images) + " | mean |",
        "|---|---|---|" + "---|" * (len(images) + 1),
    ]
    keys = sorted({(r["scheme"], r["hidden"]) for r in rows}, key=lambda k: (SCHEMES.index(k[0]), k[1]))
    for scheme, hidden in keys:
        group = {r["image"]: r for r in rows if (r["scheme"], r["hidden"]) == (scheme, hidden)}
        values = [float(group[i]["relative_to_two_phase"]) for i in images if i in group]
        cells = [f"{float(group[i]['relative_to_two_phase']):+.1%}" if i in group else "" for i in images]
        weights = next(iter(group.values()))["n_weights"]
        lines.append(f"| {scheme} | {hidden} | {weights} | " + " | ".join(cells) + f" | {np.mean(values):+.1%} |")
    lines += ["", "| image | lambda | fit latent bpp | fit PSNR (dB) |", "|---|---|---|---|"]
    for image in images:
        r = next(r for r in rows if r["image"] == image)
        lines.append(f"| {image} | {r['lmbda']} | {r['fit_latent_bpp']} | {r['fit_psnr']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda, e.g. kodim01:4e-3")
    parser.add_argument("--steps", type=int, default=4200, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    by_stem = {p.stem: p for p in find_images(args.images)}
    done = _done(args.out)
    for item in args.pick.split(","):
        name, lmbda = item.split(":")
        if name not in by_stem:
            raise SystemExit(f"no image {name!r} in {args.images}")
        if by_stem[name].name in done:
            continue
        measure(by_stem[name], float(lmbda), args.steps, args.out)
    (args.out / "headroom.md").write_text(summarize(args.out))
    print(f"wrote {args.out / 'headroom.md'}")


if __name__ == "__main__":
    main()
