"""A starting lambda from the image itself, before any training.

The lambda that lands a fit on a rate depends on the image as much as on the
rate: at 0.25 bpp kodim01 needs ~6x the lambda of kodim03. A plain JPEG of the
image knows that already. At a fixed quality the JPEG's size measures how much
detail the image has: busy images cost more bits at the same quality, so an
extra bit of theirs buys less distortion, and the slope lambda = -dD/dR that
lands a given rate is steeper.

    ln lambda = a + b ln(target latent bpp) + c ln(JPEG bpp at quality 30)

On the calibration fits of `python -m bench.calibrate_rate` this predicts the
lambda needed with a residual of 0.22-0.3 in ln lambda, where the target
alone (`fit.initial_lambda`) leaves ~1.0 and the step-600 probe
(`fit.RATE_MODEL`) 0.4-0.5 (see PRIOR_MODEL). A long fit starts at this lambda and its probe
leaves it alone (the steering still corrects it): training at a steady lambda
from the first step is what rate-distortion training wants.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image

JPEG_QUALITY = 30
# Coefficients (a, b, c) above, from `python -m bench.calibrate_rate` (its
# "Prior" section) on fits of the default effort's length.
# On its 36 fits (kodim01-12 at 0.25 / 0.5 / 1 bpp, 4200 steps) the residual
# is 0.22 in ln lambda (0.25 with each image left out of its own fit), where
# the probe's model refitted on the same fits leaves 0.50.
PRIOR_MODEL = (-5.85, -1.53, 3.11)
PRIOR_SOURCE = "bench/results/rate-model-prior-2026-12-01"
# The prior is for fits at least this long (the calibration's length). Short
# fits (`--effort fast`) keep the generic start and the probe: with a prior
# of their own (bench/results/rate-prior-fast-2026-12-01) their landing lost
# 0.41 dB on average over Kodak kodim01-12 at 0.25-1 bpp, 1.22 dB at 0.25
# (bench/results/kodak-fast-prior-2026-12-01). The landing after a short fit
# was tuned on fits that end far off: kodim03 at 0.25 bpp ended 24 % over,
# and its refits and the rescue dead zone took it from 27.31 to 25.04 dB.
MIN_STEPS = 3600
# JPEG bpp below this is treated as this, to keep the log finite. Baseline
# JPEG spends ~0.125 bpp even on a flat image (a DC and an end-of-block code
# per 8x8 block); Kodak's images cost 0.45-1.03 bpp.
MIN_JPEG_BPP = 0.05


@functools.cache
def _jpeg_overhead_bytes() -> int:
    """Bytes of a JPEG that carry no image: headers and tables (a one-block flat image)."""
    return len(_jpeg_bytes(np.full((8, 8, 3), 128, dtype=np.uint8))) - 2  # ~2 bytes for the flat block


def _jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def jpeg_bpp(pixels: np.ndarray) -> float:
    """Bits per pixel of the image's JPEG at JPEG_QUALITY (4:2:0), headers left out.

    Args:
        pixels: uint8 [H, W, 3].
    """
    height, width, _ = pixels.shape
    payload = len(_jpeg_bytes(np.ascontiguousarray(pixels))) - _jpeg_overhead_bytes()
    return max(MIN_JPEG_BPP, 8.0 * payload / (height * width))


def prior_log_lambda(target_latent_bpp: float, complexity: float) -> float:
    """ln lambda that should land a fit on `target_latent_bpp` for an image of `jpeg_bpp` `complexity`."""
    a, b, c = PRIOR_MODEL
    return a + b * math.log(target_latent_bpp) + c * math.log(max(complexity, MIN_JPEG_BPP))
