"""Plots of a results folder: dataset-mean RD curves and a visual comparison sheet at equal rate."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.codecs import CODECS, is_learned, parse_setting
from bench.metrics import psnr
from bench.summary import Records, Summary

LABELS = {"psnr": "PSNR (dB)", "msssim_db": "MS-SSIM (dB)"}
RD_PLOTS = {"psnr": "rd_psnr", "msssim_db": "rd_msssim"}
"""File stem (``.png`` and ``.svg``) of the RD plot of each metric."""
SHEET = "visual.png"


def plot_rd(summary: Summary, metric: str, stem: Path, title: str, max_bpp: float = 2.0) -> None:
    """Draw every codec's dataset-mean curve of ``metric`` against bpp into ``stem``.png and .svg.

    Classical codecs are dashed, learned ones solid: the style is chosen per curve, never carried over
    from the previous one.
    """
    fig, ax = plt.subplots(figsize=(7, 5))
    visible: list[float] = []
    for i, codec in enumerate(summary.codecs):
        points = [p for p in summary.curves if p["codec"] == codec]
        bpp = np.array([p["bpp"] for p in points])
        quality = np.array([p[metric] for p in points])
        style = "-" if is_learned(codec) else "--"
        ax.plot(bpp, quality, style, marker="o", markersize=3, color=f"C{i}", label=codec)
        visible.extend(quality[(bpp <= max_bpp) & np.isfinite(quality)])
    ax.set_xlim(0, max_bpp)
    if visible:  # fit the y range to what is inside the x range, not to JPEG at 3 bpp
        pad = 0.05 * (max(visible) - min(visible)) or 1.0
        ax.set_ylim(min(visible) - pad, max(visible) + pad)
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel(LABELS[metric])
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(stem.with_suffix(suffix), dpi=150)
    plt.close(fig)


@dataclass(frozen=True)
class Crop:
    """A square crop of one image for the visual comparison sheet.

    Attributes:
        image: File name of the source image.
        x: Left edge in pixels (moved left if the square would leave the image).
        y: Top edge in pixels (moved up likewise).
        size: Side in pixels (shrunk to the image's short side if larger).
    """

    image: str = "kodim07.png"
    x: int = 384
    y: int = 160
    size: int = 192

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The crop box ``(left, top, right, bottom)`` clamped into a ``width`` x ``height`` image."""
        size = min(self.size, width, height)
        x, y = min(self.x, width - size), min(self.y, height - size)
        return x, y, x + size, y + size


ZOOM = 2
"""Crops are enlarged by pixel replication so that coding artefacts stay visible on screen."""


def _closest(rows: Records, codec: str, image: str, target_bpp: float) -> dict[str, Any] | None:
    candidates = [r for r in rows if r["codec"] == codec and r["image"] == image]
    return min(candidates, key=lambda r: abs(r["bpp"] - target_bpp), default=None)


def visual_sheet(rows: Records, codecs: list[str], source: Path, crop: Crop, target_bpp: float, out: Path) -> None:
    """Compose the same crop from each codec at its setting closest to ``target_bpp`` on that image.

    Each codec re-encodes the one source image at the chosen setting (the CSV keeps no pixels); tiles
    are labelled with the re-encoded whole-image bpp and PSNR. Codecs not installed here are left out.

    Args:
        rows: Rows of ``rd.csv``.
        codecs: Codecs to show, in order.
        source: The source image file (its name must match ``crop.image``).
        crop: Where to crop.
        target_bpp: Rate to compare at.
        out: PNG file to write.
    """
    with Image.open(source) as src:
        img = src.convert("RGB")
    box = crop.box(*img.size)
    tiles = [(img.crop(box), "original")]
    for codec_name in codecs:
        row = _closest(rows, codec_name, crop.image, target_bpp)
        cls = CODECS.get(codec_name)
        if row is None or cls is None or not cls.available():
            print(
                f"visual sheet: skipping {codec_name} (no row for {crop.image} or not installed)",
                file=sys.stderr,
            )
            continue
        codec = cls()
        data = codec.encode(img, parse_setting(row["setting"]))
        rec = codec.decode(data)
        bpp = len(data) * 8 / (img.width * img.height)
        quality = psnr(np.asarray(img), np.asarray(rec))
        tiles.append((rec.crop(box), f"{codec_name} {row['setting']}\n{bpp:.3f} bpp, {quality:.2f} dB"))
    _compose(tiles, f"{crop.image} {box}, closest to {target_bpp} bpp", out)


def _compose(tiles: list[tuple[Image.Image, str]], title: str, out: Path) -> None:
    font = ImageFont.load_default(size=13)
    side, label_h, gap = tiles[0][0].width * ZOOM, 40, 8
    rows = math.ceil(len(tiles) / 4)  # at most 4 per row, rows filled evenly
    cols = math.ceil(len(tiles) / rows)
    sheet = Image.new("RGB", (cols * (side + gap) + gap, 30 + rows * (side + label_h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 8), title, fill="black", font=font)
    for k, (tile, label) in enumerate(tiles):
        x, y = gap + (k % cols) * (side + gap), 30 + (k // cols) * (side + label_h + gap)
        sheet.paste(tile.resize((side, side), Image.Resampling.NEAREST), (x, y))
        draw.multiline_text((x, y + side + 3), label, fill="black", font=font)
    sheet.save(out)


def write_plots(
    results: Path,
    summary: Summary,
    rows: Records,
    images_dir: Path | None,
    crop: Crop,
    target_bpp: float = 0.25,
    max_bpp: float = 2.0,
) -> list[Path]:
    """Write the RD plots and, when the source image is at hand, the visual sheet into ``results``.

    Args:
        results: Results folder.
        summary: Its summary (`bench.summary.summarize`).
        rows: Its ``rd.csv`` rows.
        images_dir: Folder holding the source images, for the visual sheet; None skips the sheet.
        crop: Crop for the visual sheet; if its image isn't in the CSV, the first image there is used.
        target_bpp: Rate of the visual sheet.
        max_bpp: Right end of the RD plots' x axis.

    Returns:
        The files written.
    """
    title = f"{results.name}: mean over images"
    written = []
    for metric, stem in RD_PLOTS.items():
        plot_rd(summary, metric, results / stem, title, max_bpp)
        written += [results / f"{stem}.png", results / f"{stem}.svg"]
    images = sorted({r["image"] for r in rows})
    if images_dir is None or not images:
        return written
    if crop.image not in images:
        crop = Crop(images[0], crop.x, crop.y, crop.size)
    visual_sheet(rows, summary.codecs, images_dir / crop.image, crop, target_bpp, results / SHEET)
    return [*written, results / SHEET]


def sheet_source(runs: list[dict[str, Any]]) -> Path | None:
    """The images folder of the latest ``rd`` run that recorded one, if it still exists."""
    for run in reversed(runs):
        folder = Path(run.get("images", ""))
        if run.get("images") and folder.is_dir():
            return folder
    return None
