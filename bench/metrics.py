"""Distortion metrics and the resource measurements taken around each encode and decode."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")

MSSSIM_MIN_SIDE = 161
"""Smallest short side MS-SSIM accepts: 5 scales of an 11-tap window need > (11 - 1) * 2**4 px."""


def psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR in dB of 8-bit images, MSE taken over all pixels and channels together.

    Args:
        ref: Reference, uint8 ``[H, W, 3]``.
        rec: Reconstruction, uint8 ``[H, W, 3]``.

    Returns:
        ``10 log10(255^2 / MSE)``; ``inf`` for identical images.
    """
    mse = np.mean((ref.astype(np.float64) - rec.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(ref: np.ndarray, rec: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003; 5 scales, 11-tap Gaussian window) of 8-bit RGB images, in [0, 1].

    Computed per channel on 0..255 values by ``pytorch_msssim`` (as CompressAI does) and averaged over
    R, G and B.

    Args:
        ref: Reference, uint8 ``[H, W, 3]``.
        rec: Reconstruction, uint8 ``[H, W, 3]``.

    Returns:
        MS-SSIM, or NaN when the short side is below `MSSSIM_MIN_SIDE` (too small for 5 scales).
    """
    if min(ref.shape[:2]) < MSSSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        # [H, W, 3] uint8 -> [1, 3, H, W] float32 in channels-last memory, where torch's depthwise
        # Gaussian convolutions run several times faster than on planar (NCHW-contiguous) tensors.
        planar = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float()
        return planar.contiguous(memory_format=torch.channels_last)

    # One thread: for this small job, thread hand-offs cost more than they save, and on a busy machine
    # several times more (measured 0.2 s vs 1.8 s on 2 shared cores). The codec keeps its threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return float(_ms_ssim(to_tensor(ref), to_tensor(rec), data_range=255.0))
    finally:
        torch.set_num_threads(threads)


def msssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - MS-SSIM)``, which spreads out values near 1."""
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


_PROC_SELF = Path("/proc/self")


def _status_kib(field: str) -> int:
    text = (_PROC_SELF / "status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        msg = f"no {field} in /proc/self/status"
        raise RuntimeError(msg)
    return int(match.group(1))


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS; False where that isn't possible (not Linux, or no /proc)."""
    try:
        (_PROC_SELF / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Measured:
    """What `measure` observed around one call.

    Attributes:
        seconds: Wall-clock time of the call (``time.perf_counter``).
        peak_mb: Peak resident set size during the call minus the RSS just before it, in MB (10^6 bytes);
            NaN where the peak can't be reset (anything but Linux).
    """

    seconds: float
    peak_mb: float


def measure(fn: Callable[[], T]) -> tuple[T, Measured]:
    """Run ``fn`` once and measure its wall time and peak RSS increase.

    On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the process's high-water mark (VmHWM)
    to its current RSS, so VmHWM after the call is the peak *during* the call, including native
    allocations (codec libraries, torch) that ``tracemalloc`` can't see. Memory the process already
    held (allocator caches from earlier calls) is reused without showing up, so this is a lower bound
    on what a fresh process would need.
    """
    resettable = _reset_peak()
    before = _status_kib("VmRSS") if resettable else 0
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak_mb = (_status_kib("VmHWM") - before) * 1024 / 1e6 if resettable else math.nan
    return result, Measured(seconds, peak_mb)
