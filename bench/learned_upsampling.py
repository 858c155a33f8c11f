"""Would learned upsampling of the latents pay? A float-only question for a format after 2.0.

    python -m bench.learned_upsampling --images ../shared/data/kodak \
        --pick kodim01:4e-3:2.2e-3,kodim03:1.5e-3:8e-4 --variants learned \
        --out bench/results/learned-upsampling-<date>

Formats 1.0 and 2.0 sample every latent level at the pixel centres with the
same fixed bicubic kernel (`format.sampling`). Cool-chic (from its third
version) upsamples instead with learned filters, one 2x step at a time. This
prototype does that for the default effort's architecture (format 2.0's
context): level k reaches the image's resolution through k steps of 2x
upsampling, each a separable pair of 4-tap filters (one per output phase,
the second the mirror of the first), edges replicated. Every level has its
own filter, shared by its steps' rows and columns, four numbers, started at
bicubic's 2x taps (Keys, a = -0.75), and trained with the synthesis MLP (its
optimizer group and learning rate). Variants:

    base: the shipped fixed bicubic sampling;
    fixed: the 2x steps with their filters held at bicubic's (what the
        hierarchy alone changes);
    learned: the 2x steps with learned filters.

A decoder could keep rendering at any size: upsample to the encoded size,
then resample that bicubically.

Nothing here is written to a file: each fit is measured in float (networks
unquantized, latents rounded, colour rounded to 8 bits), the baseline the
same way (`bench.conv_synthesis.psnr_8bit`); the rate is the context model's
whole-image latent estimate plus 7 bits per added number. Each variant's
point is compared with the line through the baseline's points on that image
(`bench.fixed_lambda.baseline_psnr_at`) and with the baseline's fit at the
same lambda, moved to its rate along `encoder.PSNR_PER_LN_RATE`
(`same_lambda_summary`). Every variant runs with CROP_MARGIN
4 (the shipped 3 leaves too few true cells under a window for repeated
4-tap steps; the baseline's fits do not depend on it). Rows go to
upsampling.csv (resumable), the comparison to upsampling.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.conv_synthesis import float_fit_figures, float_fit_summary
from bench.fixed_lambda import fitted, float_fit, pending, picks
from bench.results import append_csv_row, machine, utc_now
from inrcodec.format.architecture import Architecture
from inrcodec.train import encoder
from inrcodec.train import model as coconet
from inrcodec.train.encoder import PSNR_PER_LN_RATE
from inrcodec.train.model import Crop, CocoNet, Window, _split

CSV_NAME = "upsampling.csv"
COLUMNS = ("image", "variant", "lmbda", "steps", "latent_bpp", "weight_bpp", "psnr", "fit_s", "torch_threads",
           "machine", "date")
VARIANTS = ("base", "fixed", "learned")
# A 4-tap step from a crop edge spoils the two coarse cells nearest it, i.e.
# four fine ones; a margin of m coarse cells leaves 2m - 4 true fine ones, so
# m = 4 holds through any number of steps.
MARGIN = 4
# Pairs whose rates are within this ratio are also summarized alone: moving
# along PSNR_PER_LN_RATE over a wider gap is an extrapolation.
NEAR_RATE_RATIO = 1.15


def bicubic_2x_taps() -> torch.Tensor:
    """Keys' cubic (a = -0.75) taps of the even output of a 2x step: source cells i - 2 .. i + 1 at distances 1.75 .. 1.25."""
    a = -0.75

    def keys(x: float) -> float:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1 if x <= 1 else a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a

    return torch.tensor([keys(d) for d in (1.75, 0.75, 0.25, 1.25)])


class UpSynthesis(nn.Sequential):
    """The synthesis MLP, plus each coarse level's 2x filter as a parameter (so it trains in the MLP's group).

    Iterating it yields the MLP's layers only (`model.mlp_columns`).
    """

    def __init__(self, mlp: nn.Sequential, n_levels: int, learned: bool) -> None:
        super().__init__(*mlp)
        self.up_taps = nn.Parameter(bicubic_2x_taps().repeat(n_levels - 1, 1), requires_grad=learned)


def _double_rows(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """[h, w] -> [2h, w]: each output row from 4 source rows (odd rows with the taps mirrored), edges replicated."""
    kernel = torch.stack([taps, taps.flip(0)])  # even outputs read i - 2 .. i + 1, odd ones i - 1 .. i + 2
    h = x.shape[0]
    padded = F.pad(x[None, None], (0, 0, 2, 2), mode="replicate")
    out = F.conv2d(padded, kernel[:, None, :, None])[0]  # [2, h + 1, w]
    return torch.stack([out[0, :h], out[1, 1 : h + 1]], dim=1).reshape(2 * h, -1)


def upsample_2x(grid: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """[h, w] -> [2h, 2w]: one 2x step, rows then columns (the definition; `UpNet` applies it as matrices)."""
    return _double_rows(_double_rows(grid, taps).T, taps).T


class UpNet(CocoNet):
    """A CocoNet whose levels reach the image's resolution through 2x steps (`upsample_2x`)."""

    def __init__(self, height: int, width: int, arch: Architecture, learned: bool) -> None:
        super().__init__(height, width, arch)
        self.synthesis = UpSynthesis(self.synthesis, arch.n_levels, learned)

    def sample(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> torch.Tensor:
        """As `CocoNet.sample`, each level through its 2x steps: R @ grid @ C.T with R and C built from the taps.

        The steps are linear and separable, so running them on an identity
        matrix gives each axis's whole chain as one matrix (differentiable
        in the taps): two small products per level, as the shipped sampling.
        """
        cols = []
        for level, crop in enumerate(crops):
            grid, (gy, gx) = _split(crop)
            if level == 0:
                sampled = grid[win.r0 - gy : win.r1 - gy, win.c0 - gx : win.c1 - gx]
            else:
                rows_m = self.chain_matrix(level, 0, gy, grid.shape[0], win.r0, win.r1)
                cols_m = self.chain_matrix(level, 1, gx, grid.shape[1], win.c0, win.c1)
                sampled = rows_m @ grid @ cols_m.T
            cols.append(sampled.reshape(-1))
        return torch.stack(cols).T

    def chain_matrix(self, level: int, axis: int, origin: int, n: int, lo: int, hi: int) -> torch.Tensor:
        """[hi - lo, n]: pixels lo..hi-1 of one axis from the n cells of `level` from `origin` on, through its steps.

        After each step only MARGIN cells around the window are kept, as the
        crops themselves have (the rest is work for nothing); at the level's
        end, its true last cell, which the next step replicates.
        """
        x = torch.eye(n, dtype=self.synthesis.up_taps.dtype, device=self.synthesis.up_taps.device)
        for finer in reversed(range(level)):
            x = _double_rows(x, self.synthesis.up_taps[finer])
            size = self.sizes[finer][axis]
            a, b = max(0, (lo >> finer) - MARGIN), min(size, ((hi - 1) >> finer) + 1 + MARGIN)
            x = x[a - 2 * origin : b - 2 * origin]
            origin = a
        return x[lo - origin : hi - origin]

    def added_weights(self) -> int:
        return self.synthesis.up_taps.numel() if self.synthesis.up_taps.requires_grad else 0


@contextlib.contextmanager
def wide_crops() -> Iterator[None]:
    """The training crops with MARGIN cells around the window for the duration (every variant alike)."""
    shipped, coconet.CROP_MARGIN = coconet.CROP_MARGIN, MARGIN
    try:
        yield
    finally:
        coconet.CROP_MARGIN = shipped


def new_net(variant: str) -> Callable[[int, int], CocoNet]:
    arch = encoder.ARCHITECTURES["default"]
    if variant == "base":
        return lambda h, w: CocoNet(h, w, arch)
    return lambda h, w: UpNet(h, w, arch, learned=variant == "learned")


def fit(path: Path, variant: str, lmbda: float, steps: int | None) -> dict[str, float]:
    """One fixed-lambda fit of the default schedule, measured in float (call within `wide_crops`)."""
    done = float_fit(path, new_net(variant), lmbda, steps)
    model = done.fitter.model
    return float_fit_figures(done, model.added_weights() if isinstance(model, UpNet) else 0)


def summarize(rows: list[dict[str, str]]) -> str:
    """upsampling.md: each variant against the baseline's line on its image, then against its fit at the same lambda."""
    table = float_fit_summary(rows, "Learned 2x upsampling of the latents (float, fixed lambdas)",
                              "bench.learned_upsampling", CSV_NAME,
                              "Rate: latent bpp plus the learned filters' bpp (the baseline adds none).", "variant",
                              "base")
    return table + same_lambda_summary(rows)


def same_lambda_summary(rows: list[dict[str, str]]) -> str:
    """Each variant fit against the baseline's fit of the same image and lambda, moved to its rate along PSNR_PER_LN_RATE.

    One baseline fit per lambda can land well off the line through the
    others (a fit's start moves its rate by a tenth or more at a fixed
    lambda), and a line through two such points extrapolates wildly; the
    encoder's own slope between files of nearby sizes does not.
    """
    base = {(r["image"], r["lmbda"]): r for r in rows if r["variant"] == "base"}
    lines = ["", f"Against the baseline's fit at the same lambda, moved along {PSNR_PER_LN_RATE} dB per unit of "
             "ln(rate) (`encoder.PSNR_PER_LN_RATE`):", "",
             "| image | variant | lambda | rate ratio | difference (dB) |", "|---|---|---|---|---|"]
    differences: dict[str, list[tuple[float, float]]] = {}  # (difference, rate ratio)
    for r in sorted(rows, key=lambda r: (r["variant"], r["image"], float(r["lmbda"]))):
        b = base.get((r["image"], r["lmbda"]))
        if r["variant"] == "base" or b is None:
            continue
        ratio = (float(r["latent_bpp"]) + float(r["weight_bpp"])) / float(b["latent_bpp"])
        difference = float(r["psnr"]) - float(b["psnr"]) - PSNR_PER_LN_RATE * math.log(ratio)
        differences.setdefault(r["variant"], []).append((difference, ratio))
        lines.append(f"| {r['image']} | {r['variant']} | {r['lmbda']} | {ratio:.3f} | {difference:+.2f} |")
    lines += ["", f"Rates within {NEAR_RATE_RATIO:g}x of each other: the pairs where moving along the slope is "
              "not an extrapolation.", "",
              "| variant | fits | better | mean difference (dB) | median | rates within | better | mean | median |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, pairs in sorted(differences.items()):
        near = [d for d, ratio in pairs if 1 / NEAR_RATE_RATIO <= ratio <= NEAR_RATE_RATIO]
        lines.append(f"| {name} | {_stats([d for d, _ in pairs])} | {_stats(near)} |")
    return "\n".join(lines) + "\n"


def _stats(values: list[float]) -> str:
    """Cells: count, how many positive, mean and median (dashes for none)."""
    if not values:
        return "0 | 0 | - | -"
    return (f"{len(values)} | {sum(v > 0 for v in values)} | {sum(values) / len(values):+.2f} | "
            f"{statistics.median(values):+.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda[:lambda...]")
    parser.add_argument("--variants", default="learned", help=f"comma-separated, from {', '.join(VARIANTS[1:])} "
                        "(base always runs)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    chosen_variants = ["base", *(v for v in args.variants.split(",") if v != "base")]
    if not set(chosen_variants) <= set(VARIANTS):
        raise SystemExit(f"--variants {args.variants!r}: from {', '.join(VARIANTS[1:])}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen = picks(args.images, args.pick)
    path = args.out / CSV_NAME
    with wide_crops():
        for image, lmbda, variant in pending(chosen, chosen_variants, fitted(path)):
            result = fit(image, variant, lmbda, args.steps)
            append_csv_row(path, COLUMNS, {
                "image": image.name, "variant": variant, "lmbda": lmbda, "steps": result["steps"],
                "latent_bpp": f"{result['latent_bpp']:.5f}", "weight_bpp": f"{result['weight_bpp']:.5f}",
                "psnr": f"{result['psnr']:.3f}", "fit_s": f"{result['fit_s']:.1f}",
                "torch_threads": torch.get_num_threads(), "machine": machine(), "date": utc_now(),
            })
            print(f"{image.stem} {variant} lambda {lmbda:g}: {result['latent_bpp']:.4f} latent bpp, "
                  f"{result['psnr']:.2f} dB, {result['fit_s']:.0f} s", flush=True)
    with path.open() as f:
        (args.out / "upsampling.md").write_text(summarize(list(csv.DictReader(f))))
    print(f"wrote {args.out / 'upsampling.md'}")


if __name__ == "__main__":
    main()
