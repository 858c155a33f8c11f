"""Does a richer latent context pay once the latents are trained for it? A float-only question for a format 2.0.

    python -m bench.trained_context --images ../shared/data/kodak \
        --pick kodim01:4e-3:1.5e-3,kodim03:1e-3:4e-4 --schemes raster,four-phase \
        --out bench/results/trained-context-<date>

`bench.context_headroom` measured what a richer context saves on latents
trained for format 1.0's (post hoc: -3.6 % four-phase, -10 % raster). The
latents of a fit adapt to the context model they are charged under, so the
saving of a fit trained with the richer context may be larger; this
measures it. Each scheme's context model replaces format 1.0's during the
whole fit (same schedule, same learning rates, same Laplace):

    two-phase   format 1.0's features (the parent cell's 3x3 neighbourhood;
                non-anchors their N, S, W, E and a flag), computed per cell:
                the reference for the generic path (tested equal to
                `CocoNet.latent_bits`), not run by default.
    four-phase  the parent's 3x3, and cells (0,0), (1,1), (0,1), (1,0) of
                each 2x2 block in four steps, each seeing its 8 neighbours
                of earlier steps and a one-hot step (21 features).
    raster      the parent's 3x3 and the 12 causal neighbours within 2
                cells in raster order (Cool-chic's kind of context; 21
                features). Decoding it one cell at a time is too slow for
                issue 4's 300 ms; a wavefront order (all cells of one
                anti-diagonal x + 2y at once, ~w + 2h steps per level)
                would be the candidate if this pays.
    wavefront-<T>  raster's neighbours but (y - 1, x + 2), only within the
                same T x T tile of the level (zero across tile edges): what
                a decoder can run one anti-diagonal x + 2y of every tile at
                a time, all tiles at once, ~3T batched steps per level
                (format 2.0 as first drafted).
    wavefront12-<T>  all 12 of raster's neighbours within T x T tiles:
                fronts x + 3y, ~4T batched steps per level (format 2.0's
                context).
    wavefront-<W>x<H>, wavefront12-<W>x<H>  the same in tiles W cells wide
                and H tall: W + 2H fronts (W + 3H). Tile edges cost the
                cells on the top two rows (N neighbours) and on the two
                columns at either side (W or NE ones), so for a given
                number of fronts tiles twice as wide as tall lose fewest.
Every scheme keeps format 1.0's hidden widths (16x16); the baseline is
format 1.0's own context model (`CocoNet`).

Nothing here is written to a file: each fit is measured in float (the
networks unquantized, the latents rounded, the colour rounded to 8 bits),
the baseline the same way; the rate is the context model's whole-image
latent estimate (within ~1 % of a file's latent section) plus 7 bits per
context weight beyond format 1.0's. Each variant's point is compared with
the line through the baseline's points on that image
(`bench.fixed_lambda.baseline_psnr_at`). Rows go to context.csv
(resumable), the comparison to context.md.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.conv_synthesis import float_fit_figures, float_fit_summary
from bench.fixed_lambda import fitted, float_fit, pending, picks
from bench.results import append_csv_row, machine, utc_now
from inrcodec.format.architecture import Architecture
from inrcodec.train.context import context_features
from inrcodec.train import encoder
from inrcodec.train.model import Crop, CocoNet, Window, _split, context_bits, make_mlp

CSV_NAME = "context.csv"
COLUMNS = ("image", "scheme", "lmbda", "steps", "latent_bpp", "weight_bpp", "psnr", "fit_s", "torch_threads",
           "machine", "date")
BASELINE = "format-1.0"
SCHEMES = ("two-phase", "four-phase", "raster", "wavefront-<T>", "wavefront12-<T>")
PARENT_FEATURES = 9  # the parent cell's 3x3 neighbourhood, first in every scheme
EIGHT_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
RASTER_NEIGHBOURS = tuple((dy, dx) for dy in (-2, -1) for dx in range(-2, 3)) + ((0, -2), (0, -1))
WAVEFRONT_NEIGHBOURS = tuple(n for n in RASTER_NEIGHBOURS if n != (-1, 2))  # decoded before x + 2y's front


def tile_of(scheme: str) -> tuple[int, int] | None:
    """(rows, columns) of a "wavefront-<T>", "-<W>x<H>" or "wavefront12-..." scheme's tiles (4 to 256); else None."""
    if not scheme.startswith(("wavefront-", "wavefront12-")):
        return None
    parts = scheme.split("-", 1)[1].split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and 4 <= int(p) <= 256 for p in parts):
        raise ValueError(f"unknown scheme {scheme!r}: wavefront-<T> or -<W>x<H> take tile sides of 4 to 256")
    cols, rows = int(parts[0]), int(parts[-1])
    return rows, cols


def tiled_neighbours(scheme: str) -> tuple[tuple[int, int], ...]:
    """The same-level neighbours of a tiled scheme."""
    return RASTER_NEIGHBOURS if scheme.startswith("wavefront12-") else WAVEFRONT_NEIGHBOURS


def known_scheme(scheme: str) -> bool:
    try:
        return scheme in SCHEMES[:3] or tile_of(scheme) is not None
    except ValueError:
        return False


def n_features(scheme: str) -> int:
    if tile_of(scheme) is not None:
        return PARENT_FEATURES + len(tiled_neighbours(scheme))
    return {"two-phase": 14, "four-phase": PARENT_FEATURES + 8 + 4, "raster": PARENT_FEATURES + 12}[scheme]


def four_phase_step(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Decoding step of cells (y, x) in level coordinates: (0,0) -> 0, (1,1) -> 1, (0,1) -> 2, (1,0) -> 3."""
    a, b = y % 2, x % 2
    return torch.where(a == b, a, 2 + a)


def level_features(scheme: str, grid: Crop, parent: Crop | None, cells: Window) -> torch.Tensor:
    """[n_cells, features] context of the level cells in `cells` (raster order) under `scheme`.

    `grid` and `parent` are crops (values, origin in level coordinates) that
    reach at least 2 cells beyond `cells` and their parents, or the level's
    border, where zeros stand for the cells outside.
    """
    values, (gy, gx) = grid
    window = (cells.r0, cells.r1, cells.c0, cells.c1)
    if parent is None:
        reference = context_features(values, None, window, (gy, gx))
    else:
        reference = context_features(values, parent[0], window, (gy, gx), parent[1])
    if scheme == "two-phase":
        return reference
    padded = F.pad(values, (2, 2, 2, 2))
    r0, c0 = cells.r0 - gy + 2, cells.c0 - gx + 2
    h, w = cells.r1 - cells.r0, cells.c1 - cells.c0

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[r0 + dy : r0 + dy + h, c0 + dx : c0 + dx + w]

    y = torch.arange(cells.r0, cells.r1, device=values.device)[:, None].expand(h, w)
    x = torch.arange(cells.c0, cells.c1, device=values.device)[None, :].expand(h, w)
    tile = tile_of(scheme)
    if tile is not None:
        rows, cols = tile
        feats = [shifted(dy, dx) * (((y + dy) // rows == y // rows) & ((x + dx) // cols == x // cols)).to(values.dtype)
                 for dy, dx in tiled_neighbours(scheme)]
    elif scheme == "four-phase":
        step = four_phase_step(y, x)
        feats = [shifted(dy, dx) * (four_phase_step(y + dy, x + dx) < step).to(values.dtype)
                 for dy, dx in EIGHT_NEIGHBOURS]
        feats += [(step == k).to(values.dtype) for k in range(4)]
    elif scheme == "raster":
        feats = [shifted(dy, dx) for dy, dx in RASTER_NEIGHBOURS]
    else:
        raise ValueError(f"unknown scheme {scheme!r}")
    return torch.cat([reference[:, :PARENT_FEATURES], torch.stack([f.reshape(-1) for f in feats], dim=1)], dim=1)


class ContextNet(CocoNet):
    """A CocoNet whose context model sees `scheme`'s features, one MLP row per latent cell."""

    def __init__(self, height: int, width: int, arch: Architecture, scheme: str) -> None:
        super().__init__(height, width, arch)
        if not known_scheme(scheme):
            raise ValueError(f"unknown scheme {scheme!r}")
        self.scheme = scheme
        if scheme != "two-phase":
            widths = arch.arm_widths()
            self.arm = make_mlp([n_features(scheme), *widths[1:]])
            with torch.no_grad():  # the broad start of `CocoNet`
                self.arm[-1].bias.copy_(torch.tensor([0.0, 1.0]))

    def latent_bits(self, crops: list[Crop] | list[torch.Tensor], win: Window) -> tuple[torch.Tensor, list[int]]:
        grids = [_split(crop) for crop in crops]
        feats, values = [], []
        for level, grid in enumerate(grids):
            cells = win.at_level(level)
            parent = grids[level + 1] if level + 1 < len(grids) else None
            feats.append(level_features(self.scheme, grid, parent, cells))
            g, (gy, gx) = grid
            values.append(g[cells.r0 - gy : cells.r1 - gy, cells.c0 - gx : cells.c1 - gx].reshape(-1))
        bits = context_bits(torch.cat(values), self.arm(torch.cat(feats))).sum()
        return bits, [win.at_level(i).n_pixels for i in range(len(grids))]

    def added_weights(self) -> int:
        """Context weights beyond format 1.0's."""
        format_1 = make_mlp(self.arch.arm_widths())
        return sum(p.numel() for p in self.arm.parameters()) - sum(p.numel() for p in format_1.parameters())


def new_net(scheme: str):
    """The network factory `float_fit` calls: format 1.0's `CocoNet` for the baseline."""
    if scheme == BASELINE:
        return lambda h, w: CocoNet(h, w, encoder.ARCHITECTURE)
    return lambda h, w: ContextNet(h, w, encoder.ARCHITECTURE, scheme)


def fit(path: Path, scheme: str, lmbda: float, steps: int | None) -> dict[str, float]:
    """One fixed-lambda fit of the default schedule, measured in float."""
    done = float_fit(path, new_net(scheme), lmbda, steps)
    model = done.fitter.model
    return float_fit_figures(done, model.added_weights() if isinstance(model, ContextNet) else 0)


def summarize(rows: list[dict[str, str]]) -> str:
    """context.md: each scheme's fit against the baseline's line on its image."""
    return float_fit_summary(rows, "Context models trained with the latents (float, fixed lambdas)",
                             "bench.trained_context", CSV_NAME,
                             "Rate: latent bpp plus the context weights beyond format 1.0's (7 bits each).",
                             "scheme", BASELINE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--pick", required=True, help="comma-separated name:lambda[:lambda...]")
    parser.add_argument("--schemes", default="raster,four-phase",
                        help=f"comma-separated, of {', '.join(SCHEMES)} ({BASELINE}, the baseline, always runs)")
    parser.add_argument("--steps", type=int, default=None, help="fit steps (default: the default effort's)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    schemes = [s for s in args.schemes.split(",") if s]
    unknown = [s for s in schemes if not known_scheme(s)]
    if unknown or not schemes:
        raise SystemExit(f"--schemes {args.schemes!r}: choose from {', '.join(SCHEMES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    chosen = picks(args.images, args.pick)
    path = args.out / CSV_NAME
    done = fitted(path, "scheme")
    for image, lmbda, scheme in pending(chosen, [BASELINE, *schemes], done):
        result = fit(image, scheme, lmbda, args.steps)
        append_csv_row(path, COLUMNS, {
            "image": image.name, "scheme": scheme, "lmbda": lmbda, "steps": result["steps"],
            "latent_bpp": f"{result['latent_bpp']:.5f}", "weight_bpp": f"{result['weight_bpp']:.5f}",
            "psnr": f"{result['psnr']:.3f}", "fit_s": f"{result['fit_s']:.1f}",
            "torch_threads": torch.get_num_threads(), "machine": machine(), "date": utc_now(),
        })
        print(f"{image.stem} {scheme} lambda {lmbda:g}: {result['latent_bpp']:.4f} latent bpp, "
              f"{result['psnr']:.2f} dB, {result['fit_s']:.0f} s", flush=True)
    with path.open() as f:
        (args.out / "context.md").write_text(summarize(list(csv.DictReader(f))))
    print(f"wrote {args.out / 'context.md'}")


if __name__ == "__main__":
    main()
