"""The HEAD section: image size, architecture and per-layer quantization.

All integers little-endian. Layout (see formats/coco.md for the table):

    u16 width, u16 height, u8 n_levels,
    u8 n_synth_hidden, u8 width x n_synth_hidden,
    u8 n_arm_hidden,   u8 width x n_arm_hidden,
    u8 tile_width, u8 tile_height                    (versions 2 and 3)
    i16 x 4 per step, n_levels - 1 steps              (version 3 only)
    per layer (synthesis layers, then context-model layers):
        u8 weight_exp, u8 bias_exp, u8 weight_scale_index, u8 bias_scale_index

Every value is range-checked on write and on read; the limits are what keep
the decoder's memory and its exact integer arithmetic bounded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import CocoFormatError
from .architecture import MAX_CONTEXT_TILE, MAX_HIDDEN_LAYERS, MAX_LEVELS, MIN_CONTEXT_TILE, Architecture
from .fixedpoint import ACT_FRAC_BITS, MAX_LAYER_WIDTH, MAX_WEIGHT_EXP, SCALE_K_MAX, SCALE_K_MIN
from .upsampling import UP_TAP_MAX, UP_TAP_MIN, UP_TAPS

MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 1 << 25  # 32 Mpx: the latent pyramid then needs < 400 MiB


@dataclass(frozen=True)
class LayerCoding:
    """How one layer's integers are scaled and entropy-coded.

    Attributes:
        weight_exp: weights are integers times 2**-weight_exp (0..16).
        bias_exp: biases are integers times 2**-bias_exp (0..weight_exp+12).
        weight_scale_k: Laplace scale index of the weights (-32..127).
        bias_scale_k: Laplace scale index of the biases (-32..127).
    """

    weight_exp: int
    bias_exp: int
    weight_scale_k: int
    bias_scale_k: int


@dataclass(frozen=True)
class Header:
    """Everything needed before the entropy-coded sections can be read."""

    width: int
    height: int
    arch: Architecture
    layers: tuple[LayerCoding, ...]  # synthesis layers, then context-model layers
    # Version 3: per 2x step, into resolution 0 first, the four Q12 filter
    # taps (`upsampling`); empty otherwise.
    up_taps: tuple[tuple[int, ...], ...] = ()

    def layer_shapes(self) -> list[tuple[tuple[int, int], tuple[int]]]:
        """(weight shape [out, in], bias shape [out]) of every layer, in order."""
        shapes = []
        for widths in (self.arch.synth_widths(), self.arch.arm_widths()):
            shapes += [((b, a), (b,)) for a, b in zip(widths, widths[1:])]
        return shapes

    def n_synth_layers(self) -> int:
        return len(self.arch.synth_hidden) + 1


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise CocoFormatError(f"header field {name} = {value} is outside {lo}..{hi}")
    return value


def validate(header: Header) -> Header:
    """Raise CocoFormatError unless every field is within the documented limits."""
    _check("width", header.width, 1, MAX_IMAGE_SIDE)
    _check("height", header.height, 1, MAX_IMAGE_SIDE)
    _check("width*height", header.width * header.height, 1, MAX_IMAGE_PIXELS)
    arch = header.arch
    _check("n_levels", arch.n_levels, 1, MAX_LEVELS)
    for name, hidden in (("synth", arch.synth_hidden), ("arm", arch.arm_hidden)):
        _check(f"n_{name}_hidden", len(hidden), 0, MAX_HIDDEN_LAYERS)
        for w in hidden:
            _check(f"{name} hidden width", w, 1, MAX_LAYER_WIDTH)
    if arch.context_tile:
        for name, side in zip(("tile_width", "tile_height"), arch.context_tile):
            _check(name, side, MIN_CONTEXT_TILE, MAX_CONTEXT_TILE)
    n_steps = arch.n_levels - 1 if arch.learned_upsampling else 0
    if len(header.up_taps) != n_steps or any(len(taps) != UP_TAPS for taps in header.up_taps):
        raise CocoFormatError(f"expected {n_steps} sets of {UP_TAPS} upsampling taps")
    for taps in header.up_taps:
        for tap in taps:
            _check("upsampling tap", tap, UP_TAP_MIN, UP_TAP_MAX)
    if len(header.layers) != len(header.layer_shapes()):
        raise CocoFormatError("layer descriptor count does not match the architecture")
    for layer in header.layers:
        _check("weight_exp", layer.weight_exp, 0, MAX_WEIGHT_EXP)
        _check("bias_exp", layer.bias_exp, 0, layer.weight_exp + ACT_FRAC_BITS)
        _check("weight_scale_index", layer.weight_scale_k, SCALE_K_MIN, SCALE_K_MAX)
        _check("bias_scale_index", layer.bias_scale_k, SCALE_K_MIN, SCALE_K_MAX)
    return header


def pack_header(header: Header) -> bytes:
    validate(header)
    arch = header.arch
    out = struct.pack("<HHB", header.width, header.height, arch.n_levels)
    for hidden in (arch.synth_hidden, arch.arm_hidden):
        out += bytes([len(hidden), *hidden])
    if arch.format_major >= 2:
        out += bytes(arch.context_tile)
    for taps in header.up_taps:
        out += struct.pack(f"<{UP_TAPS}h", *taps)
    for layer in header.layers:
        out += bytes([layer.weight_exp, layer.bias_exp,
                      layer.weight_scale_k - SCALE_K_MIN, layer.bias_scale_k - SCALE_K_MIN])
    return out


class _Reader:
    """Bounds-checked little-endian reads from one payload."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise CocoFormatError("HEAD section is too short")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def widths(self, name: str) -> tuple[int, ...]:
        (n,) = self.take("<B")
        _check(f"n_{name}_hidden", n, 0, MAX_HIDDEN_LAYERS)
        return self.take(f"<{n}B")


def parse_header(payload: bytes, major: int = 1) -> Header:
    """Parse and validate the HEAD payload of a file of version `major`."""
    r = _Reader(payload)
    width, height, n_levels = r.take("<HHB")
    synth_hidden, arm_hidden = r.widths("synth"), r.widths("arm")
    tile = r.take("<2B") if major >= 2 else None  # checked by `validate` below
    arch = Architecture(n_levels, synth_hidden, arm_hidden, tile, learned_upsampling=major >= 3)
    up_taps = tuple(r.take(f"<{UP_TAPS}h") for _ in range(n_levels - 1)) if major >= 3 else ()
    n_layers = len(arch.synth_hidden) + len(arch.arm_hidden) + 2
    layers = []
    for _ in range(n_layers):
        we, be, wk, bk = r.take("<4B")
        layers.append(LayerCoding(we, be, wk + SCALE_K_MIN, bk + SCALE_K_MIN))
    if r.pos != len(payload):
        raise CocoFormatError(f"HEAD section has {len(payload) - r.pos} unexpected trailing bytes")
    return validate(Header(width, height, arch, tuple(layers), up_taps))


def header_rows(header: Header) -> list[tuple[str, str]]:
    """(field, value) pairs for `inrcodec info`."""
    arch = header.arch
    rows = [
        ("width x height", f"{header.width} x {header.height}"),
        ("latent levels", f"{arch.n_levels} (1/1 .. 1/{2 ** (arch.n_levels - 1)})"),
        ("synthesis MLP", " -> ".join(map(str, arch.synth_widths()))),
        ("context model", " -> ".join(map(str, arch.arm_widths()))),
        ("latent context", f"wavefront, {arch.context_tile[0]}x{arch.context_tile[1]} tiles" if arch.context_tile
         else "checkerboard (two phases)"),
        ("latent upsampling", "learned 2x steps: " + ", ".join("/".join(map(str, t)) for t in header.up_taps)
         if arch.learned_upsampling else "bicubic"),
        ("synthesis MACs/pixel", str(arch.multiply_adds_per_pixel())),
    ]
    for i, layer in enumerate(header.layers):
        part = "synth" if i < header.n_synth_layers() else "arm"
        rows.append((f"layer {i} ({part}) steps", f"w 2^-{layer.weight_exp}, b 2^-{layer.bias_exp}"))
    return rows
