"""Render a decoded CocoNet at any output size, in bounded memory.

The network is a function of continuous coordinates: each latent grid is
sampled at the output's pixel centres (bicubic, `sampling.sample_exact`) and
the synthesis MLP maps the samples to colour. Format 3.0 first brings every
level to the encoded size through its learned 2x steps
(`upsampling.LevelPlanes`), then samples those planes bicubically at the
output's pixel centres (`sampling.resample_q12`; nothing to do at the
encoded size). Output rows are produced in
bands of about `TILE_PIXELS` pixels so memory does not grow with the output.
All arithmetic is exact integer arithmetic in numpy float64 arrays (see
`fixedpoint`), hence the same pixels on any machine or thread count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import UsageError
from .blas import one_blas_thread
from .bitstream import CocoStream
from .context import grid_sizes
from .fixedpoint import ACT_FRAC_BITS, ACT_LIMIT, run_int_mlp_columns
from .sampling import AxisTaps, pixel_taps, resample_q12, sample_exact
from .upsampling import LevelPlanes

MAX_RENDER_SIDE = 65536
MAX_RENDER_PIXELS = 1 << 26  # 8192 x 8192: the uint8 output alone is 192 MiB
TILE_PIXELS = 1 << 18


def check_render_size(width: int, height: int) -> None:
    """Refuse output sizes outside the documented limits."""
    if not (1 <= width <= MAX_RENDER_SIDE and 1 <= height <= MAX_RENDER_SIDE):
        raise UsageError(f"output size {width}x{height} is outside 1..{MAX_RENDER_SIDE} per side")
    if width * height > MAX_RENDER_PIXELS:
        raise UsageError(f"output size {width}x{height} has {width * height} pixels, over the limit of {MAX_RENDER_PIXELS}")


def q12_to_uint8_(rgb_q12: np.ndarray) -> np.ndarray:
    """Map Q12 colour in [0, 1] to 0..255 with round-half-up, exactly, in place (overwrites its float64 input).

    The result is still float64 (whole numbers 0..255): assigning it to a
    uint8 array converts it.
    """
    half = 1 << (ACT_FRAC_BITS - 1)
    rgb_q12 *= 255
    rgb_q12 += half
    rgb_q12 /= 1 << ACT_FRAC_BITS  # a power of two: exact
    np.floor(rgb_q12, out=rgb_q12)
    return np.clip(rgb_q12, 0, 255, out=rgb_q12)


@one_blas_thread
def render(stream: CocoStream, width: int | None = None, height: int | None = None, *,
           on_rows: Callable[[int], None] | None = None) -> np.ndarray:
    """Render the decoded image, on the CPU.

    Bands of rows render in up to `render_workers()` threads.

    Args:
        stream: a decoded `.coco` file.
        width, height: output size; None for the encoded size.
        on_rows: called with the number of rows finished after each band,
            in band order, from the calling thread.

    Returns:
        uint8 array [height, width, 3].
    """
    header = stream.header
    width = width or header.width
    height = height or header.height
    check_render_size(width, height)
    sizes = grid_sizes(header.height, header.width, header.arch.n_levels)
    grids = stream.latents
    features = (_upsampled_features(grids, header.up_taps, sizes, height, width)
                if header.arch.learned_upsampling else _sampled_features(grids, sizes, height, width))
    out = np.empty((height, width, 3), dtype=np.uint8)
    workers = render_workers()
    band = max(1, min(TILE_PIXELS // width, -(-height // workers)))  # a band for every worker at least
    if header.arch.learned_upsampling:  # the stored-size plane rows a band reads: about TILE_PIXELS pixels too
        band = max(1, min(band, TILE_PIXELS * height // (header.height * header.width)))

    def render_band(r0: int) -> int:
        r1 = min(height, r0 + band)
        x = features(r0, r1).reshape(len(grids), -1)  # [levels, N]
        np.clip(x, -ACT_LIMIT, ACT_LIMIT, out=x)
        rgb = q12_to_uint8_(run_int_mlp_columns(x, stream.synthesis))  # [3, N]
        out[r0:r1] = rgb.T.reshape(r1 - r0, width, 3)  # whole numbers 0..255: the cast is exact
        return r1 - r0

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for rows in (pool.map if pool else map)(render_band, range(0, height, band)):
            if on_rows:
                on_rows(rows)
    finally:
        if pool:  # bands not started yet are dropped (an interrupt, an error)
            pool.shutdown(cancel_futures=True)
    return out


# Bands render in this many threads at most, one per core (numpy releases
# the GIL in its array operations; each thread's BLAS runs on one thread,
# `blas`): kodim01 at 2048x2048 renders in ~310 ms with two instead of ~530
# ms with one, at native size (one band per thread, halves: each band
# recomputes the upsampling's rows around it, so more bands cost more)
# ~31-37 instead of ~46 ms (ad hoc, AMD EPYC family 25, 2 cores; torch's
# two threads took ~330 and ~22 ms). Bands write disjoint rows of the
# output, so the pixels cannot depend on the order the threads finish in.
# Each thread holds one band's features (~TILE_PIXELS pixels x levels in
# float64, ~15 MiB, with temporaries a few times that), so memory stays
# bounded.
MAX_RENDER_WORKERS = 4


def render_workers() -> int:
    """Threads for `render`: the cores this process may run on, at most MAX_RENDER_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(1, min(MAX_RENDER_WORKERS, cores))


Features = Callable[[int, int], np.ndarray]  # output rows r0..r1-1 -> Q12 float64 [levels, r1 - r0, width]


def _sampled_features(grids: list[np.ndarray], sizes: list[tuple[int, int]], height: int, width: int) -> Features:
    """Formats 1.0 and 2.0: each level sampled bicubically at the output's pixel centres."""
    taps = pixel_taps(height, width, sizes)
    return lambda r0, r1: np.stack([sample_exact(g, rows, cols, r0, r1) for g, (rows, cols) in zip(grids, taps)])


def _upsampled_features(grids: list[np.ndarray], up_taps: tuple[tuple[int, ...], ...],
                        sizes: list[tuple[int, int]], height: int, width: int) -> Features:
    """Format 3.0: the levels' full-resolution planes, resampled bicubically unless the output is the encoded size."""
    planes = LevelPlanes(grids, up_taps, sizes)
    if (height, width) == sizes[0]:
        return planes.rows
    rows, cols = AxisTaps(height, sizes[0][0]), AxisTaps(width, sizes[0][1])

    def features(r0: int, r1: int) -> np.ndarray:
        index, _ = rows.slice(r0, r1)
        lo, hi = int(index.min()), int(index.max()) + 1
        return resample_q12(planes.rows(lo, hi), lo, rows, cols, r0, r1)

    return features
