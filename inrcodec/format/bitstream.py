"""Assemble and parse whole `.coco` files (no training code here).

Section order in a version 1.0 or 2.0 file: HEAD, NETW, LATS, CEND. Ancillary
(lower-case) sections may appear anywhere between them and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import CocoFormatError
from .blas import one_blas_thread
from .container import SECTION_OVERHEAD, PREFIX_SIZE, Section, pack_sections, unpack_sections
from . import wavefront
from .entropy import decode_latents, decode_weights, encode_latents, encode_weights
from .fixedpoint import WEIGHT_LIMIT, IntLinear
from .header import Header, pack_header, parse_header

REQUIRED_SECTIONS = (b"HEAD", b"NETW", b"LATS")


@dataclass
class CocoStream:
    """A parsed and entropy-decoded `.coco` file.

    Attributes:
        header: the HEAD section.
        synthesis: integer synthesis layers.
        arm: integer context-model layers.
        latents: float64 integer grids, finest level first.
        version: (major, minor) of the file.
        section_sizes: bytes per section type, framing included.
    """

    header: Header
    synthesis: list[IntLinear]
    arm: list[IntLinear]
    latents: list[np.ndarray]
    version: tuple[int, int] = (1, 0)
    section_sizes: dict[str, int] = field(default_factory=dict)


def _weight_tensors(layers: list[IntLinear]) -> list[np.ndarray]:
    return [t for layer in layers for t in (layer.weight, layer.bias)]


def _scale_indices(header: Header) -> list[int]:
    return [k for c in header.layers for k in (c.weight_scale_k, c.bias_scale_k)]


@one_blas_thread
def write_coco(header: Header, synthesis: list[IntLinear], arm: list[IntLinear],
               latents: list[np.ndarray]) -> bytes:
    """Entropy-code a quantized CocoNet into a complete `.coco` file."""
    for t in _weight_tensors(synthesis + arm):
        if np.abs(t).max(initial=0) >= WEIGHT_LIMIT:
            raise ValueError("integer weight outside the codable range")
    netw = encode_weights(_weight_tensors(synthesis + arm), _scale_indices(header))
    tile = header.arch.context_tile
    lats = wavefront.encode_latents(latents, arm, tile) if tile else encode_latents(latents, arm)
    return pack_sections([Section(b"HEAD", pack_header(header)), Section(b"NETW", netw), Section(b"LATS", lats)],
                         major=header.arch.format_major)


def read_sections(data: bytes) -> tuple[tuple[int, int], Header, dict[bytes, bytes], dict[str, int]]:
    """Frame-level parse: version, header, critical payloads and section sizes."""
    version, sections = unpack_sections(data)
    payloads: dict[bytes, bytes] = {}
    sizes = {"signature+version": PREFIX_SIZE}
    for section in sections:
        name = section.kind.decode()
        sizes[name] = sizes.get(name, 0) + len(section.payload) + SECTION_OVERHEAD
        if not section.critical:
            continue  # unknown ancillary sections are skipped by rule
        if section.kind not in REQUIRED_SECTIONS:
            raise CocoFormatError(f"unknown critical section {name}")
        if section.kind in payloads:
            raise CocoFormatError(f"duplicate section {name}")
        if section.kind != REQUIRED_SECTIONS[len(payloads)]:
            raise CocoFormatError(f"section {name} out of order")
        payloads[section.kind] = section.payload
    sizes["CEND"] = SECTION_OVERHEAD
    missing = [k.decode() for k in REQUIRED_SECTIONS if k not in payloads]
    if missing:
        raise CocoFormatError(f"missing section(s): {', '.join(missing)}")
    return version, parse_header(payloads[b"HEAD"], version[0]), payloads, sizes


def _int_layers(header: Header, tensors: list[np.ndarray]) -> list[IntLinear]:
    layers = []
    for i, coding in enumerate(header.layers):
        layers.append(IntLinear(tensors[2 * i], tensors[2 * i + 1], coding.weight_exp, coding.bias_exp))
    return layers


@one_blas_thread
def read_coco(data: bytes) -> CocoStream:
    """Parse, check and entropy-decode a `.coco` file.

    Raises:
        CocoFormatError: for anything wrong with the file.
    """
    version, header, payloads, sizes = read_sections(data)
    shapes = [s for pair in header.layer_shapes() for s in pair]
    layers = _int_layers(header, decode_weights(payloads[b"NETW"], shapes, _scale_indices(header)))
    n_synth = header.n_synth_layers()
    synthesis, arm = layers[:n_synth], layers[n_synth:]
    arch = header.arch
    if arch.context_tile:
        latents = wavefront.decode_latents(payloads[b"LATS"], header.height, header.width, arch.n_levels, arm,
                                           arch.context_tile)
    else:
        latents = decode_latents(payloads[b"LATS"], header.height, header.width, arch.n_levels, arm)
    return CocoStream(header, synthesis, arm, latents, version, sizes)
