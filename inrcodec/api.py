"""The Python API: `encode`, `decode`, `inspect`.

    data = inrcodec.encode("photo.png", bpp=0.5)
    image = inrcodec.decode(data, size=(2048, 2048))   # PIL.Image
    pixels = inrcodec.decode_array(data)                # uint8 [H, W, 3]

Decoding needs only numpy and constriction: torch (training) is imported
by the encoding functions alone, so a decode or an `inspect` does not pay
its import (over a second).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import CocoFormatError, UsageError
from .format.bitstream import CocoStream, read_coco, read_sections
from .format.header import header_rows
from .format.render import check_render_size, render
from .imageio import ImageLike, load_image

if TYPE_CHECKING:
    from .train.encoder import EncodeResult, Effort
    from .train.fit import ProgressFn

MIN_BPP, MAX_BPP = 0.02, 8.0
RATE_MISS_NOTE = 0.05  # a file further than this from the requested rate gets a note saying why
MAX_SIDE_PARSED = 1e12  # sizes are clipped here before round(); all are over the limit
EFFORTS = ("fast", "default", "max")
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """Map 'auto' to 'cuda' when a GPU is usable, else 'cpu'; validate the rest (training's device)."""
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available")
    return device


def check_device(device: str) -> None:
    """Refuse a device name other than DEVICES'."""
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")


def encode_with_report(image: ImageLike, *, bpp: float | None = 0.5, lmbda: float | None = None,
                       effort: Effort = "default", device: str = "auto", seed: int = 0,
                       time_limit: float | None = None, iterations: int | None = None,
                       progress: ProgressFn | None = None) -> tuple[EncodeResult, list[str]]:
    """Encode and also return the achieved rate, PSNR, time and input notes."""
    if lmbda is not None:
        if not (0 < lmbda < 10):
            raise UsageError(f"lambda {lmbda} is outside (0, 10)")
        bpp = None
    elif bpp is None or not (MIN_BPP <= bpp <= MAX_BPP) or not math.isfinite(bpp):
        raise UsageError(f"target bpp {bpp} is outside {MIN_BPP}..{MAX_BPP}")
    if effort not in EFFORTS:
        raise UsageError(f"unknown effort {effort!r} (use fast, default or max)")
    if time_limit is not None and not time_limit > 0:
        raise UsageError("time limit must be positive")
    from .train.encoder import EncodeOptions, encode_array

    pixels, notes = load_image(image)
    opts = EncodeOptions(bpp=bpp, lmbda=lmbda, effort=effort, device=resolve_device(device),
                         seed=seed, time_limit=time_limit, iterations=iterations)
    result = encode_array(pixels, opts, progress)
    if bpp is not None:
        notes += _rate_miss_notes(result, bpp)
    return result, notes


def _rate_miss_notes(result: EncodeResult, bpp: float) -> list[str]:
    """A note when the file missed the requested rate by more than RATE_MISS_NOTE, and why."""
    from .train.encoder import latent_section_bits

    miss = result.bpp / bpp - 1
    if abs(miss) <= RATE_MISS_NOTE:
        return []
    fixed_bpp = (len(result.data) * 8 - latent_section_bits(result.data)) / (result.width * result.height)
    if miss > 0 and fixed_bpp > 0.5 * bpp:
        why = f"the network and header alone take {fixed_bpp:.2f} bpp of an image this small"
    else:
        why = "the encoder could not land closer (time limit, few iterations or an unusual image)"
    return [f"the file is {result.bpp:.3f} bpp, {miss:+.0%} from the requested {bpp:g}: {why}"]


def encode(image: ImageLike, *, bpp: float | None = 0.5, lmbda: float | None = None,
           effort: Effort = "default", device: str = "auto", seed: int = 0,
           time_limit: float | None = None) -> bytes:
    """Encode an image (path, PIL image or uint8 array) into `.coco` bytes.

    Args:
        bpp: target rate of the whole file in bits per pixel (0.02..8).
        lmbda: fixed rate-distortion trade-off instead of a target rate.
        effort: "fast", "default" or "max" (more time, better quality). A
            "default" or "max" encode fits twice on a CPU with two or more
            torch threads, at once, in two worker processes
            (`inrcodec.train.side_by_side`); with one thread, a time
            limit under 45 s or a `bpp` of 1 or more, it fits once.
        device: "auto", "cpu" or "cuda" (training only; decoding is exact anywhere).
        seed: random seed; the same seed, machine and torch thread count give the same bytes.
        time_limit: seconds; training is shortened to fit. A fit the limit
            does not cut short is landed as an untimed one (from 120 s the
            default effort also fits the untimed pair).
    """
    result, _ = encode_with_report(image, bpp=bpp, lmbda=lmbda, effort=effort, device=device,
                                   seed=seed, time_limit=time_limit)
    return result.data


def parse_size(size: str | tuple[int, int] | None, scale: float | None,
               native: tuple[int, int]) -> tuple[int, int]:
    """Output (width, height) from 'WxH', 'Wx', 'xH', a (width, height) pair, or a scale factor.

    Raises:
        UsageError: malformed, or outside the render limits (`check_render_size`).
    """
    width, height = native
    if size is not None and scale is not None:
        raise UsageError("give either a size or a scale, not both")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not (math.isfinite(scale) and scale > 0):
            raise UsageError(f"scale {scale!r} must be a positive number")
        # Huge factors would overflow round(); anything past the limit is refused below.
        w, h = (round(min(n * scale, MAX_SIDE_PARSED)) for n in native)
    elif size is None:
        return native
    elif isinstance(size, (tuple, list)):
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size):
            raise UsageError(f"size {size!r} must be a (width, height) pair of integers")
        w, h = size
    elif isinstance(size, str):
        m = re.fullmatch(r"\s*([0-9]{0,12})\s*[xX]\s*([0-9]{0,12})\s*", size)
        if not m or not (m.group(1) or m.group(2)):
            shown = size if len(size) <= 40 else size[:37] + "..."
            raise UsageError(f"size {shown!r} is not WxH, Wx or xH")
        w = int(m.group(1)) if m.group(1) else -1
        h = int(m.group(2)) if m.group(2) else -1
        if w < 0:
            w = max(1, round(width * h / height)) if h else width
        if h < 0:
            h = max(1, round(height * w / width))
    else:
        raise UsageError(f"size must be a 'WxH' string or a (width, height) pair, not {type(size).__name__}")
    check_render_size(int(w), int(h))
    return int(w), int(h)


def decode_array(data: bytes, size: str | tuple[int, int] | None = None, scale: float | None = None,
                 device: str = "cpu", max_pixels: int | None = None) -> np.ndarray:
    """Decode `.coco` bytes to uint8 RGB [H, W, 3] at any size.

    Args:
        device: accepted for compatibility ("auto", "cpu" or "cuda"); decoding
            runs on the CPU in numpy whatever it says. Its arithmetic is
            exact integers, so a GPU would give the same pixels, and no
            Kodak-sized decode is long enough to pay for torch's import.
        max_pixels: refuse files whose encoded image has more pixels than this
            (checked from the header, before any entropy decoding). Decoding
            time grows with the encoded area whatever the file size, so a
            service decoding untrusted files should set it, as with Pillow's
            `Image.MAX_IMAGE_PIXELS`. None: the format's own limit (32 Mpx).

    Raises:
        CocoFormatError: the bytes are not a valid `.coco` file.
        UsageError: the requested size is outside the limits, or the encoded
            image is larger than `max_pixels`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("decode expects the bytes of a .coco file")
    check_device(device)
    _, header, _, _ = read_sections(bytes(data))  # cheap checks first
    if max_pixels is not None and header.width * header.height > max_pixels:
        raise UsageError(f"the file holds a {header.width}x{header.height} image, "
                         f"over the limit of {max_pixels} pixels (max_pixels)")
    width, height = parse_size(size, scale, (header.width, header.height))
    stream = read_coco(bytes(data))
    return render(stream, width, height)


def decode(data: bytes, size: str | tuple[int, int] | None = None, scale: float | None = None,
           device: str = "cpu", max_pixels: int | None = None) -> Image.Image:
    """Decode `.coco` bytes to a PIL RGB image (see `decode_array`)."""
    return Image.fromarray(decode_array(data, size, scale, device, max_pixels), "RGB")


@dataclass
class CocoInfo:
    """What `inrcodec info` shows."""

    version: tuple[int, int]
    width: int
    height: int
    file_bytes: int
    bpp: float
    fields: list[tuple[str, str]]
    section_sizes: dict[str, int]


def inspect(data: bytes) -> CocoInfo:
    """Header fields and section sizes of a `.coco` file (no pixel decoding)."""
    version, header, _, sizes = read_sections(bytes(data))
    return CocoInfo(version, header.width, header.height, len(data),
                    len(data) * 8 / (header.width * header.height), header_rows(header), sizes)


__all__ = ["CocoFormatError", "CocoStream", "decode", "decode_array", "encode", "encode_with_report", "inspect"]
