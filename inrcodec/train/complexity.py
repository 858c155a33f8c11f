"""How busy an image is: the size of its plain JPEG.

A JPEG at a fixed low quality spends its bits on edges and texture, so its
size separates busy images (Kodak's kodim01, 05, 08: ~1 bpp at quality 30)
from smooth ones (kodim02, 03, 09, 12: ~0.45 bpp) better than the fit's own
early rate and distortion do (bench/results/rate-model-fast-2026-12-01).
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

# Baseline JPEG spends ~0.125 bpp even on a flat image (a DC and an
# end-of-block code per 8x8 block); Kodak's images cost 0.45-1.03 bpp. The
# floor only keeps logs finite.
JPEG_QUALITY = 30
MIN_JPEG_BPP = 0.05


def _jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


@functools.cache
def _jpeg_overhead_bytes() -> int:
    """Bytes of a JPEG that carry no image: headers and tables (a one-block flat image, ~2 bytes of data)."""
    return len(_jpeg_bytes(np.full((8, 8, 3), 128, dtype=np.uint8))) - 2


def jpeg_bpp(pixels: np.ndarray) -> float:
    """Bits per pixel of a uint8 [H, W, 3] image's JPEG at JPEG_QUALITY (4:2:0), headers left out."""
    height, width, _ = pixels.shape
    payload = len(_jpeg_bytes(pixels)) - _jpeg_overhead_bytes()
    return max(MIN_JPEG_BPP, 8.0 * payload / (height * width))
