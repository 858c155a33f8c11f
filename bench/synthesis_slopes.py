"""Would the synthesis gain from the latents' local slopes? A float-only question for a format 2.0.

    python -m bench.synthesis_slopes --images ../shared/data/kodak \
        --pick kodim01:2.2e-3:1.5e-3,kodim03:8e-4:4e-4 --slope-levels 01 \
        --out bench/results/synthesis-slopes-<date>

Format 1.0's synthesis sees, at each pixel, one value per latent level (the
bicubic surface there): a pixel's colour cannot depend on its neighbours'
full-resolution latents, where Cool-chic's 3x3 convolutions let it. This
prototype also gives the synthesis MLP each chosen level's slopes, the
central differences of its surface one native pixel either side in x and y
(clamped at the borders, in cells of that level). They stay a continuous
function of the coordinates (a decoder at another size would sample the
surface at +-1 native pixel), so rendering at any size survives.

Nothing here is written to a file: each fit is measured in float (the
synthesis and context model unquantized, the latents rounded), the baseline
the same way, and each variant's point is compared with the line through the
baseline's points on that image (`bench.fixed_lambda.baseline_psnr_at`). The
baseline re-creates its synthesis as the variant does, so both start from the
same random stream. Rows go to slopes.csv (resumable), the comparison to
slopes.md.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.fixed_lambda import against_baseline, fitted, float_fit, mean_differences, pending, picks
from bench.results import append_csv_row, machine, utc_now
from inrcodec.format.architecture import Architecture
from inrcodec.train import encoder
from inrcodec.train.model import Crop, CocoNet, Window, make_mlp

CSV_NAME = "slopes.csv"
COLUMNS = ("image", "slope_levels", "lmbda", "steps", "latent_bpp", "psnr", "fit_s", "torch_threads",
           "machine", "date")
BASE = "-"  # the slope_levels value of the baseline: no slopes


class SlopeNet(CocoNet):
    """A CocoNet whose synthesis also sees the x and y slopes of `slope_levels`."""

    def __init__(self, height: int, width: int, arch: Architecture, slope_levels: list[int]) -> None:
        super().__init__(height, width, arch)
        self.slope_levels = slope_levels
        widths = arch.synth_widths()
        self.synthesis = make_mlp([widths[0] + 2 * len(slope_levels), *widths[1:]])
        with torch.no_grad():
            self.synthesis[-1].bias.fill_(0.5)

    def sample(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """[N, levels + 2 * slope levels]: the values, then the x slopes, then the y slopes."""
        if not self.slope_levels:
            return super().sample(crops, win)
        # One pixel more on each side where the image has one; replicated where not.
        grown = Window(max(0, win.r0 - 1), min(self.height, win.r1 + 1),
                       max(0, win.c0 - 1), min(self.width, win.c1 + 1))
        n_levels = len(self.latents)
        planes = super().sample(crops, grown).T.reshape(1, n_levels, grown.r1 - grown.r0, grown.c1 - grown.c0)
        pads = (1 - (win.c0 - grown.c0), 1 - (grown.c1 - win.c1), 1 - (win.r0 - grown.r0), 1 - (grown.r1 - win.r1))
        planes = F.pad(planes, pads, mode="replicate")[0] if any(pads) else planes[0]
        chosen = self.slope_levels
        # Per level cell (2**level pixels), over the two pixels' span.
        cells = torch.tensor([2.0**level / 2 for level in chosen], device=planes.device).view(-1, 1, 1)
        slope_x = (planes[chosen, 1:-1, 2:] - planes[chosen, 1:-1, :-2]) * cells
        slope_y = (planes[chosen, 2:, 1:-1] - planes[chosen, :-2, 1:-1]) * cells
        features = torch.cat([planes[:, 1:-1, 1:-1], slope_x, slope_y])
        return features.reshape(features.shape[0], -1).T


def fit(path: Path, slope_levels: list[int], lmbda: float, steps: int | None) -> dict[str, float]:
    """One fixed-lambda fit of the default schedule: its float PSNR and latent rate with rounded latents."""
    done = float_fit(path, lambda h, w: SlopeNet(h, w, encoder.ARCHITECTURE, slope_levels), lmbda, steps)
    with torch.no_grad():
        psnr = 10 * math.log10(1 / done.fitter.image_mse())
        return {"latent_bpp": done.fitter.latent_bpp(), "psnr": psnr, "fit_s": done.seconds, "steps": done.steps}


def parse_levels(text: str) -> list[int]:
    """"01" -> [0, 1]; BASE -> []."""
    if text == BASE:
        return []
    levels = [int(c) for c in text]
    if sorted(set(levels)) != levels or levels[-1] >= encoder.ARCHITECTURE.n_levels:
        raise ValueError(f"slope levels {text!r}: distinct increasing digits below {encoder.ARCHITECTURE.n_levels}")
    return levels


def summarize(rows: list[dict[str, str]]) -> str:
    """slopes.md: each variant fit against the baseline's line on its image."""
    lines = [
        "# Latent slopes as synthesis inputs (float, fixed lambdas)",
        "",
        f"Generated by `python -m bench.synthesis_slopes` from {CSV_NAME}; {rows[0]['machine']}, "
        f"{rows[0]['torch_threads']} torch threads, {min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}.",
        "",
        "| image | slope levels | lambda | latent bpp | PSNR (dB) | baseline at that bpp | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    shown, differences = against_baseline(rows, "slope_levels", BASE, lambda r: float(r["latent_bpp"]))
    for r, cells in shown:
        lines.append(f"| {r['image']} | {r['slope_levels']} | {r['lmbda']} | {float(r['latent_bpp']):.4f} | "
                     f"{float(r['psnr']):.2f} | " + " | ".join(cells) + " |")
    lines += mean_differences("slope levels", differences)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda[:lambda...]")
    parser.add_argument("--slope-levels", default="01",
                        help="comma-separated variants, each the digits of the levels given slopes (e.g. 01,0)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        variants = {text: parse_levels(text) for text in [BASE, *args.slope_levels.split(",")]}
    except ValueError as error:
        raise SystemExit(str(error)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen = picks(args.images, args.pick)
    path = args.out / CSV_NAME
    done = fitted(path, "slope_levels")
    for image, lmbda, text in pending(chosen, list(variants), done):
        result = fit(image, variants[text], lmbda, args.steps)
        append_csv_row(path, COLUMNS, {
            "image": image.name, "slope_levels": text, "lmbda": lmbda, "steps": result["steps"],
            "latent_bpp": f"{result['latent_bpp']:.5f}", "psnr": f"{result['psnr']:.3f}",
            "fit_s": f"{result['fit_s']:.1f}", "torch_threads": torch.get_num_threads(),
            "machine": machine(), "date": utc_now(),
        })
        print(f"{image.stem} slopes {text} lambda {lmbda:g}: {result['latent_bpp']:.4f} bpp, "
              f"{result['psnr']:.2f} dB", flush=True)
    with path.open() as f:
        (args.out / "slopes.md").write_text(summarize(list(csv.DictReader(f))))
    print(f"wrote {args.out / 'slopes.md'}")


if __name__ == "__main__":
    main()
