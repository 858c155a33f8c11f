"""`inrcodec demo`: the README's first command, end to end on the sample image."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .api import decode_array, encode_with_report
from .cli import ProgressBar
from .imageio import atomic_output, load_image, save_png

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "kodim03.png"


def run_demo(image: Path | None, bpp: float, effort: str, out_dir: Path,
             echo: Callable[[str], None] = print) -> dict[str, float]:
    """Encode, decode at native size and at 2048x2048, and report the numbers."""
    source = image or SAMPLE
    out_dir.mkdir(parents=True, exist_ok=True)
    echo(f"encoding {source} at {bpp} bpp (effort {effort}) ...")
    bar = ProgressBar(True)
    try:
        result, _ = encode_with_report(source, bpp=bpp, effort=effort, progress=bar)  # type: ignore[arg-type]
    finally:
        bar.close()
    coco = out_dir / (source.stem + ".coco")
    with atomic_output(coco) as fh:
        fh.write(result.data)
    t0 = time.monotonic()
    native = decode_array(result.data)
    t_native = time.monotonic() - t0
    save_png(native, out_dir / (source.stem + ".png"))
    t0 = time.monotonic()
    big = decode_array(result.data, size="2048x2048")
    t_big = time.monotonic() - t0
    save_png(big, out_dir / (source.stem + "-2048x2048.png"))
    original, _ = load_image(source)
    psnr = 10 * np.log10(255.0**2 / np.mean((native.astype(np.float64) - original) ** 2))
    numbers = {
        "bytes": len(result.data), "bpp": result.bpp, "psnr_db": float(psnr),
        "encode_s": result.seconds, "decode_native_s": t_native, "decode_2048_s": t_big,
    }
    echo(f"file        {coco} ({len(result.data)} bytes)")
    echo(f"rate        {result.bpp:.4f} bpp (target {bpp})")
    echo(f"PSNR        {psnr:.2f} dB")
    echo(f"encode      {result.seconds:.1f} s ({result.iterations} steps)")
    echo(f"decode      {t_native:.2f} s native {native.shape[1]}x{native.shape[0]}, {t_big:.2f} s at 2048x2048")
    return numbers
