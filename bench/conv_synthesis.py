"""Would a 3x3 convolution stage after the synthesis MLP pay? A float-only question for a format 2.0.

    python -m bench.conv_synthesis --images ../shared/data/kodak \
        --pick kodim01:2.2e-3:1.5e-3,kodim03:8e-4:4e-4 --convs 2 \
        --out bench/results/conv-synthesis-<date>

Format 1.0's synthesis maps each pixel's sampled latents to its colour alone.
Cool-chic and C3 end their synthesis with 3x3 convolutions, residual, on the
colour planes: a learned post-filter that lets a pixel's colour depend on its
neighbours'. This prototype appends `n` such layers to the default
architecture, each x + conv3x3(relu(x)) (the first without the ReLU), 3 -> 3
channels, zero-initialised so the fit starts where the baseline does (81
multiply-adds and 84 weights per layer per pixel; the MLP has 528). Borders
replicate the edge pixel. A decoder would run the layers on the rendered
image, at whatever size it renders: the convolution is per output pixel.

Nothing here is written to a file: each fit is measured in float (the
networks unquantized, the latents rounded, the colour rounded to 8 bits),
the baseline the same way; the rate is the context model's whole-image
latent estimate (within ~1 % of a file's latent section) plus 7 bits per
added weight. Each variant's point is compared with the line through the
baseline's points on that image (`bench.fixed_lambda.baseline_psnr_at`).
Rows go to conv.csv (resumable), the comparison to conv.md.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.fixed_lambda import FloatFit, against_baseline, fitted, float_fit, mean_differences, pending, picks
from bench.results import append_csv_row, machine, utc_now
from inrcodec.format.architecture import Architecture
from inrcodec.train import encoder
from inrcodec.train.fit import Fitter
from inrcodec.train.model import Crop, CocoNet, Window

CSV_NAME = "conv.csv"
COLUMNS = ("image", "convs", "lmbda", "steps", "latent_bpp", "weight_bpp", "psnr", "fit_s", "torch_threads",
           "machine", "date")
BITS_PER_WEIGHT = 7.0  # what the file's weights cost today, roughly (`encoder._weight_bits_guess`)


class ConvSynthesis(nn.Module):
    """The synthesis MLP followed by `n_convs` residual 3x3 convolutions on the colour planes."""

    def __init__(self, mlp: nn.Sequential, n_convs: int) -> None:
        super().__init__()
        self.mlp = mlp
        self.convs = nn.ModuleList(nn.Conv2d(3, 3, 3) for _ in range(n_convs))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.zero_()
                conv.bias.zero_()

    def refine(self, planes: torch.Tensor) -> torch.Tensor:
        """[1, 3, h, w] colour planes through the convolutions (each shrinks them by one pixel a side)."""
        for i, conv in enumerate(self.convs):
            inner = planes[:, :, 1:-1, 1:-1]
            planes = inner + conv(planes if i == 0 else F.relu(planes))
        return planes


class ConvNet(CocoNet):
    """A CocoNet whose synthesis ends with residual 3x3 convolutions (`ConvSynthesis`)."""

    def __init__(self, height: int, width: int, arch: Architecture, n_convs: int) -> None:
        super().__init__(height, width, arch)
        self.n_convs = n_convs
        if n_convs:
            self.synthesis = ConvSynthesis(self.synthesis, n_convs)

    def synthesize(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        if not self.n_convs:
            return super().synthesize(crops, win)
        halo = self.n_convs
        # `halo` pixels more on each side where the image has them (the crops'
        # CROP_MARGIN cells cover them); replicated where it has not.
        grown = Window(max(0, win.r0 - halo), min(self.height, win.r1 + halo),
                       max(0, win.c0 - halo), min(self.width, win.c1 + halo))
        rgb = self.synthesis.mlp(self.sample(crops, grown))
        planes = rgb.T.reshape(1, 3, grown.r1 - grown.r0, grown.c1 - grown.c0)
        pads = (halo - (win.c0 - grown.c0), halo - (grown.c1 - win.c1),
                halo - (win.r0 - grown.r0), halo - (grown.r1 - win.r1))
        if any(pads):
            planes = F.pad(planes, pads, mode="replicate")
        return self.synthesis.refine(planes)[0].reshape(3, -1).T

    def added_weights(self) -> int:
        return sum(p.numel() for p in self.synthesis.convs.parameters()) if self.n_convs else 0


def psnr_8bit(fitter: Fitter, pixels: np.ndarray) -> float:
    """Whole-image PSNR of the float model with rounded latents, its colours rounded to 8 bits."""
    model = fitter.model
    out = np.empty_like(pixels)
    with torch.no_grad():
        for win in fitter.bands():
            rec = model.synthesize(model.crop_latents(win, "round"), win).clamp(0, 1)
            out[win.r0 : win.r1] = torch.round(rec * 255).to(torch.uint8).reshape(win.r1 - win.r0, -1, 3).numpy()
    return encoder.psnr_uint8(out, pixels)


def fit(path: Path, n_convs: int, lmbda: float, steps: int | None) -> dict[str, float]:
    """One fixed-lambda fit of the default schedule, measured in float."""
    done = float_fit(path, lambda h, w: ConvNet(h, w, encoder.ARCHITECTURE, n_convs), lmbda, steps)
    model = done.fitter.model
    assert isinstance(model, ConvNet)
    return float_fit_figures(done, model.added_weights())


def float_fit_figures(done: FloatFit, added_weights: int) -> dict[str, float]:
    """A float fit's row: latent bpp, the added weights' bpp at BITS_PER_WEIGHT, 8-bit PSNR, seconds and steps."""
    model = done.fitter.model
    return {"latent_bpp": done.fitter.latent_bpp(),
            "weight_bpp": BITS_PER_WEIGHT * added_weights / (model.height * model.width),
            "psnr": psnr_8bit(done.fitter, done.pixels), "fit_s": done.seconds, "steps": done.steps}


def summarize(rows: list[dict[str, str]]) -> str:
    """conv.md: each variant fit against the baseline's line on its image."""
    return float_fit_summary(rows, "Residual 3x3 convolutions after the synthesis MLP (float, fixed lambdas)",
                             "bench.conv_synthesis", CSV_NAME,
                             "Rate: latent bpp plus the added weights' bpp (the baseline adds none).", "convs", "0")


def float_fit_summary(rows: list[dict[str, str]], title: str, module: str, csv_name: str, rate_note: str,
                      column: str, base: str) -> str:
    """A markdown table of float fits (`latent_bpp`, `weight_bpp`, `psnr` columns) against the baseline's line.

    Each row is compared with the line through the fits of `column` == `base`
    on its image (`bench.fixed_lambda.against_baseline`), then the mean
    difference per variant.
    """
    lines = [
        f"# {title}",
        "",
        f"Generated by `python -m {module}` from {csv_name}; {rows[0]['machine']}, "
        f"{rows[0]['torch_threads']} torch threads, {min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}.",
        rate_note,
        "",
        f"| image | {column} | lambda | rate (bpp) | PSNR (dB) | baseline at that rate | difference | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def rate(r: dict[str, str]) -> float:
        return float(r["latent_bpp"]) + float(r["weight_bpp"])

    shown, differences = against_baseline(rows, column, base, rate)
    for r, cells in shown:
        lines.append(f"| {r['image']} | {r[column]} | {r['lmbda']} | {rate(r):.4f} | {float(r['psnr']):.2f} | "
                     + " | ".join(cells) + f" | {float(r['fit_s']):.0f} |")
    lines += mean_differences(column, differences)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda[:lambda...]")
    parser.add_argument("--convs", default="2", help="comma-separated layer counts to try (0, the baseline, always runs)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        counts = sorted({0, *(int(c) for c in args.convs.split(","))})
    except ValueError:
        raise SystemExit(f"--convs {args.convs!r}: comma-separated integers") from None
    if counts[0] < 0 or counts[-1] > 4:
        raise SystemExit("--convs: between 0 and 4 layers")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen = picks(args.images, args.pick)
    path = args.out / CSV_NAME
    done = fitted(path, "convs")
    for image, lmbda, label in pending(chosen, [str(n) for n in counts], done):
        n_convs = int(label)
        result = fit(image, n_convs, lmbda, args.steps)
        append_csv_row(path, COLUMNS, {
            "image": image.name, "convs": n_convs, "lmbda": lmbda, "steps": result["steps"],
            "latent_bpp": f"{result['latent_bpp']:.5f}", "weight_bpp": f"{result['weight_bpp']:.5f}",
            "psnr": f"{result['psnr']:.3f}", "fit_s": f"{result['fit_s']:.1f}",
            "torch_threads": torch.get_num_threads(), "machine": machine(), "date": utc_now(),
        })
        print(f"{image.stem} convs {n_convs} lambda {lmbda:g}: {result['latent_bpp']:.4f} latent bpp, "
              f"{result['psnr']:.2f} dB", flush=True)
    with path.open() as f:
        (args.out / "conv.md").write_text(summarize(list(csv.DictReader(f))))
    print(f"wrote {args.out / 'conv.md'}")


if __name__ == "__main__":
    main()
