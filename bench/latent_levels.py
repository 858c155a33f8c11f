"""Where a `.coco` file's bits go, level by level, and what each level buys.

    python -m bench.latent_levels FILE.coco --image ORIGINAL.png [--out levels.md]

For every latent level of the file: its cells, the share that are not zero,
their mean magnitude, the bits the file's own context model spends on them
(anchors and non-anchors apart; the range coder's cost per symbol,
`format.entropy.symbol_bits`, so the sum is the LATS section to within the
coder's few bytes), what a context-free code of the level would spend (the
empirical entropy of its values, a bound no static per-level table beats),
and the PSNR of the file's picture with that level set to zero (everything
else as decoded). A level whose bits are most of the file but whose removal
costs little is one the fit overpays; the context model's saving over the
context-free bound says how much of each level's structure it finds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.metrics import psnr
from inrcodec.format.bitstream import CocoStream, read_coco
from inrcodec.format.entropy import phase_cells, phase_parameters, symbol_bits
from inrcodec.format.render import render
from inrcodec.imageio import load_image


@dataclass(frozen=True)
class LevelFigures:
    """One latent level of a file."""

    level: int
    cells: int
    nonzero: float  # share of cells not zero
    mean_magnitude: float
    anchor_bits: float  # under the file's context model
    other_bits: float
    context_free_bits: float  # cells x the empirical entropy of the level's values
    psnr_without: float  # dB, the file's picture with this level zeroed

    @property
    def bits(self) -> float:
        return self.anchor_bits + self.other_bits


def empirical_entropy_bits(values: np.ndarray) -> float:
    """Total bits of `values` coded at their own empirical frequencies."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def phase_bits(stream: CocoStream, level: int, non_anchors: bool) -> float:
    """Bits of one phase of a level under the file's context model."""
    grid = stream.latents[level]
    parent = stream.latents[level + 1] if level + 1 < len(stream.latents) else None
    height, width = grid.shape
    mu, scale_index = phase_parameters(stream.arm, grid, parent, 0, height, non_anchors)
    symbols = grid.reshape(-1)[phase_cells(0, height, width, non_anchors)]
    return symbol_bits(symbols, mu, scale_index)


def level_figures(stream: CocoStream, original: np.ndarray) -> list[LevelFigures]:
    """The figures of every level of a decoded file, finest first."""
    figures = []
    for level, grid in enumerate(stream.latents):
        values = grid.reshape(-1)
        zeroed = replace(stream, latents=[np.zeros_like(g) if i == level else g
                                          for i, g in enumerate(stream.latents)])
        figures.append(LevelFigures(
            level=level, cells=values.size, nonzero=float(np.mean(values != 0)),
            mean_magnitude=float(np.mean(np.abs(values))),
            anchor_bits=phase_bits(stream, level, False), other_bits=phase_bits(stream, level, True),
            context_free_bits=empirical_entropy_bits(values),
            psnr_without=psnr(render(zeroed), original)))
    return figures


def table(figures: list[LevelFigures], n_pixels: int, file_psnr: float, file_bpp: float) -> str:
    """A markdown table of `figures` (rates in bits per image pixel)."""
    lines = [f"File: {file_bpp:.4f} bpp, {file_psnr:.2f} dB.", "",
             "| level | cells | non-zero | mean abs | bpp | anchors | others | context-free bpp "
             "| saved by the context | PSNR without it |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in figures:
        saved = 1 - f.bits / f.context_free_bits if f.context_free_bits > 0 else 0.0
        lines.append(f"| {f.level} | {f.cells} | {f.nonzero:.3f} | {f.mean_magnitude:.3f} | {f.bits / n_pixels:.4f} "
                     f"| {f.anchor_bits / n_pixels:.4f} | {f.other_bits / n_pixels:.4f} "
                     f"| {f.context_free_bits / n_pixels:.4f} | {saved:.0%} | {f.psnr_without:.2f} |")
    total, free = sum(f.bits for f in figures), sum(f.context_free_bits for f in figures)
    lines.append(f"| all | {sum(f.cells for f in figures)} | | | {total / n_pixels:.4f} | | "
                 f"| {free / n_pixels:.4f} | {1 - total / free:.0%} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("coco", type=Path)
    parser.add_argument("--image", required=True, type=Path, help="the original the file was encoded from")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    data = args.coco.read_bytes()
    stream = read_coco(data)
    if stream.header.arch.context_tile:
        # The table splits each level into format 1.0's anchors and non-anchors.
        parser.error(f"{args.coco} is a version {stream.version[0]}.{stream.version[1]} file; "
                     "this table is for version 1.0 (checkerboard) files")
    original, _ = load_image(args.image)
    if original.shape[:2] != (stream.header.height, stream.header.width):
        parser.error(f"{args.image} is {original.shape[1]}x{original.shape[0]}, the file "
                     f"{stream.header.width}x{stream.header.height}")
    n_pixels = stream.header.width * stream.header.height
    text = f"`{args.coco.name}` against `{args.image.name}`\n\n" + table(
        level_figures(stream, original), n_pixels, psnr(render(stream), original), len(data) * 8 / n_pixels)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
