"""Shared test helpers: the synthetic image, pixel hashes and `.coco` crafting.

The crafting functions build files byte by byte with valid CRCs, independently
of `inrcodec.format.container`, so the parser is tested against an outside
implementation of the framing rules rather than against itself.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from inrcodec.train.encoder import EncodeResult

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
EXPECTED = TESTS / "expected" / "samples.json"
SIGNATURE = b"\x89COCO\r\n\x1a\n"
SCALE_K_MIN = -32  # the HEAD stores scale indices offset by this
SAMPLE_NAMES = sorted(p.name for p in DATA.glob("*.coco"))


def synthetic_image(width: int = 48, height: int = 32) -> np.ndarray:
    """Deterministic uint8 RGB [height, width, 3]: gradients, a checkerboard and a disc.

    Red and green ramp across the image, blue is an 8-pixel checkerboard (hard
    edges in both directions) and a disc inverts the red ramp (curved edges).
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = np.where((x // 8 + y // 8) % 2 == 0, 40.0, 215.0)
    disc = (x - 0.6 * width) ** 2 + (y - 0.5 * height) ** 2 < (0.3 * min(width, height)) ** 2
    red = np.where(disc, 255 - red, red)
    return np.stack([red, green, blue], axis=-1).round().astype(np.uint8)


def image_folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """A folder `root`/images holding synthetic PNGs: file name -> (width, height)."""
    from PIL import Image

    folder = root / "images"
    folder.mkdir()
    for name, (width, height) in sizes.items():
        Image.fromarray(synthetic_image(width, height)).save(folder / name)
    return folder


TINY_BPP = 6.0  # reachable for 48x32 (the network alone is ~2.5 bpp), so one short refit at most
TINY_ITERATIONS = 30


@functools.cache
def encode_tiny(bpp: float | None = TINY_BPP, lmbda: float | None = None, seed: int = 0,
                width: int = 48, height: int = 32, iterations: int = TINY_ITERATIONS):
    """(EncodeResult, notes) for the synthetic image; cached, so tests share encodes."""
    import inrcodec

    return inrcodec.encode_with_report(synthetic_image(width, height), bpp=bpp, lmbda=lmbda, seed=seed,
                                       iterations=iterations, device="cpu")


def pixel_md5(pixels: np.ndarray) -> str:
    """md5 of a uint8 [H, W, 3] array, shape included."""
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    h = hashlib.md5(f"{pixels.shape[0]}x{pixels.shape[1]}x3:".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Span:
    """Where one section lies in a file (byte offsets)."""

    kind: bytes
    start: int  # the type field
    payload_start: int
    payload_end: int  # == where the CRC starts
    end: int  # one past the CRC


def spans(data: bytes) -> list[Span]:
    """Sections of a well-formed file, CEND included (no checks: test inputs only)."""
    pos, out = len(SIGNATURE) + 2, []
    while pos < len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        out.append(Span(kind, pos, pos + 8, pos + 8 + length, pos + 12 + length))
        pos += 12 + length
    return out


def payloads(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every section, CEND included."""
    return [(s.kind, data[s.payload_start : s.payload_end]) for s in spans(data)]


def frame(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    """One section with a correct CRC unless `crc` is given."""
    if crc is None:
        crc = zlib.crc32(kind + payload)
    return kind + struct.pack("<I", len(payload)) + payload + struct.pack("<I", crc)


def build(sections: list[tuple[bytes, bytes]], version: tuple[int, int] = (1, 0)) -> bytes:
    """A file from (type, payload) pairs, framed as given (add CEND yourself)."""
    return SIGNATURE + bytes(version) + b"".join(frame(k, p) for k, p in sections)


def replace_section(data: bytes, kind: bytes, payload: bytes) -> bytes:
    """The same file with one section's payload replaced (CRC fixed)."""
    return build([(k, payload if k == kind else p) for k, p in payloads(data)], version=(data[9], data[10]))


@dataclass
class Head:
    """Raw HEAD fields, packed without any range check (to craft bad files)."""

    width: int
    height: int
    n_levels: int
    synth: list[int]
    arm: list[int]
    layers: list[list[int]]  # [weight_exp, bias_exp, weight_scale_k, bias_scale_k]
    tile: list[int] | None = None  # [tile_width, tile_height]: version 2 and 3 files only
    up_taps: list[list[int]] | None = None  # per 2x step, four i16 Q12 taps: version 3 files only

    @classmethod
    def parse(cls, payload: bytes, major: int = 1) -> Head:
        width, height, n_levels = struct.unpack_from("<HHB", payload)
        pos = 5
        synth = list(payload[pos + 1 : pos + 1 + payload[pos]])
        pos += 1 + len(synth)
        arm = list(payload[pos + 1 : pos + 1 + payload[pos]])
        pos += 1 + len(arm)
        tile = None
        if major >= 2:
            tile, pos = list(payload[pos : pos + 2]), pos + 2
        up_taps = None
        if major >= 3:
            up_taps = [list(struct.unpack_from("<4h", payload, pos + 8 * i)) for i in range(n_levels - 1)]
            pos += 8 * (n_levels - 1)
        rest = payload[pos:]
        layers = [[rest[i], rest[i + 1], rest[i + 2] + SCALE_K_MIN, rest[i + 3] + SCALE_K_MIN]
                  for i in range(0, len(rest), 4)]
        return cls(width, height, n_levels, synth, arm, layers, tile, up_taps)

    def pack(self) -> bytes:
        out = struct.pack("<HHB", self.width, self.height, self.n_levels)
        out += bytes([len(self.synth), *self.synth, len(self.arm), *self.arm])
        if self.tile is not None:
            out += bytes(self.tile)
        for taps in self.up_taps or []:
            out += struct.pack("<4h", *taps)
        for we, be, wk, bk in self.layers:
            out += bytes([we, be, wk - SCALE_K_MIN, bk - SCALE_K_MIN])
        return out


def head_of(data: bytes) -> Head:
    return Head.parse(dict(payloads(data))[b"HEAD"], major=data[9])


def with_head(data: bytes, head: Head) -> bytes:
    return replace_section(data, b"HEAD", head.pack())


def listing(folder: Path) -> list[str]:
    """Every name in a folder, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir())


def tiny_encode_as(**architecture: object) -> EncodeResult:
    """A tiny encode (48x32 synthetic image, 2 bpp) with every effort's architecture changed by `architecture`.

    Imports the package only when called: the rest of this module crafts
    files without it.
    """
    import inrcodec
    from inrcodec.train import encoder

    saved = dict(encoder.ARCHITECTURES)
    try:
        for effort, arch in saved.items():
            encoder.ARCHITECTURES[effort] = dataclasses.replace(arch, **architecture)
        return inrcodec.encode_with_report(synthetic_image(48, 32), bpp=2.0, iterations=TINY_ITERATIONS,
                                           device="cpu", seed=0)[0]
    finally:
        encoder.ARCHITECTURES.update(saved)
